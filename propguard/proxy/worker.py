"""gunicorn's ``gthread`` worker, bounded for slow and hostile clients (``propguard serve``).

Why: a ``gthread`` worker hands a connection to a thread as soon as its
first byte arrives and then reads the request head with a blocking socket
and no deadline, so clients sending one header line a second hold every
thread (64 of them starved normal requests for 8 s and more). Three changes,
each small and on gunicorn's own extension points:

* **The request head is read by the worker's event loop, not by a thread**
  (non-blocking ``recv`` into a per-connection buffer, as nginx does). A
  request reaches a thread only once its head is complete, together with its
  whole body when that is small (at most ``PREREAD_BODY`` bytes: every JSON
  body propguard reads), or with the first ``PREREAD_BODY`` bytes of a large
  one (an image upload, which then streams in its thread). What has not
  arrived within ``head_timeout`` of the connection (or of the request's
  first byte on a kept-alive one) is answered 408 and closed. Waiting clients
  cost a buffer and a connection slot (``worker_connections``), no thread.
* **Every blocking operation on a client socket has an idle deadline**
  (``idle_timeout``): a stalled upload body, or a client that stops reading
  its download, frees its thread after that long; a transfer that moves is
  never cut (it is not a total).
* **A closing connection lingers in its thread**, not in the event loop
  (gunicorn's graceful close waits up to 2 s for the client's FIN there).
* **Chunked bodies are read without re-copying**: gunicorn's
  ``ChunkedReader.read(n)`` copies what is left of the current chunk on every
  call, which capped a chunked upload at about 330 MiB/s of CPU on its own
  (41% of direct at 5 Gbit/s); :class:`StreamingChunkedReader` copies each
  byte once.

TLS and HTTP/2 connections (not used by ``propguard serve``) keep gunicorn's
own path.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import time
from collections import deque
from functools import partial
from typing import Any

from gunicorn.http import body as gbody
from gunicorn.http import message as gmessage
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import ThreadWorker

#: Body bytes read by the event loop before the request goes to a thread.
PREREAD_BODY = 256 * 1024
#: Largest request head (request line and header fields) accepted, a 431 above.
MAX_HEAD = 256 * 1024
#: Set by ``propguard serve`` before the workers fork (see :func:`configure`).
LIMITS = {"head_timeout": 20.0, "idle_timeout": 60.0}

_FIELD = re.compile(rb"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]*:[ \t]*(.*?)[ \t]*$")
#: Field names :func:`head_state` looks at; a head naming none of them has no body.
_FRAMING_NAMES = (b"content-length", b"transfer-encoding", b"expect")
_BODY_408 = (
    b'{"error": {"code": 408, "title": "Request Timeout", '
    b'"message": "The request was not sent in time."}}'
)
_STATUS_408 = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BODY_408), _BODY_408)
)
_STATUS_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0"
    b"\r\n\r\n"
)


def configure(head_timeout: float, idle_timeout: float) -> None:
    """The limits of the workers about to fork (class state survives ``fork``)."""
    LIMITS["head_timeout"] = float(head_timeout)
    LIMITS["idle_timeout"] = float(idle_timeout)


class IdleTimeoutSocket(socket.socket):
    """A client socket whose blocking mode has a per-operation deadline.

    gunicorn switches client sockets between non-blocking (in the poller) and
    blocking (in a thread) with ``setblocking``; here "blocking" means "with
    ``idle_timeout``". Assigned to an accepted socket's ``__class__`` (same
    layout, no new slots).
    """

    __slots__ = ()

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(LIMITS["idle_timeout"])
        else:
            super().setblocking(False)


class StreamingChunkedReader(gbody.ChunkedReader):
    """``read(n)`` that hands out the current chunk piece by piece, copying each byte once."""

    def __init__(self, req: Any, unreader: Any) -> None:
        super().__init__(req, unreader)
        self._rest = memoryview(b"")

    def read(self, size: int) -> bytes:
        if not isinstance(size, int):
            raise TypeError("size must be an integer type")
        if size < 0:
            raise ValueError("Size must be positive.")
        pieces = []
        wanted = size
        while wanted > 0:
            if not self._rest:
                if self.parser is None:
                    break
                try:
                    self._rest = memoryview(next(self.parser))
                except StopIteration:
                    self.parser = None
                    break
                continue
            piece = self._rest[:wanted]
            self._rest = self._rest[wanted:]
            pieces.append(piece)
            wanted -= len(piece)
        return b"".join(pieces)


def head_state(buffer: bytes | bytearray) -> str:
    """``"wait"`` for more bytes, ``"ready"`` for a thread, ``"too_large"`` (431).

    Ready: the head is complete and so is the body, or ``PREREAD_BODY`` bytes
    of it are here, or gunicorn must read on itself (``Expect: 100-continue``,
    which it answers; framing it will refuse anyway).
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return "too_large" if len(buffer) > MAX_HEAD else "wait"
    if end > MAX_HEAD:
        return "too_large"
    body = len(buffer) - end - 4
    if body >= PREREAD_BODY:
        return "ready"
    head = bytes(buffer[:end])
    lowered = head.lower()
    if not any(name in lowered for name in _FRAMING_NAMES):
        return "ready"  # no field that announces a body or asks to wait for one
    lengths, chunked, expect = [], False, False
    for line in head.split(b"\r\n")[1:]:
        match = _FIELD.match(line)
        if match is None:
            return "ready"  # gunicorn answers 400
        name, value = match.group(1).lower(), match.group(2).lower()
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"expect":
            expect = True
    if expect or len(lengths) > 1 or (lengths and chunked):
        return "ready"
    if chunked:
        return "ready" if chunked_complete(buffer, end + 4) else "wait"
    if lengths:
        if not lengths[0].isdigit():
            return "ready"
        return "ready" if body >= int(lengths[0]) else "wait"
    return "ready"


def chunked_complete(buffer: bytes | bytearray, start: int) -> bool:
    """Whether a chunked body starting at ``start`` ends (last chunk and trailers) in ``buffer``.

    Malformed framing counts as complete: gunicorn's parser refuses it.
    """
    pos = start
    while True:
        eol = buffer.find(b"\r\n", pos)
        if eol < 0:
            return False
        size_text = bytes(buffer[pos:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return True
        if size == 0:
            if buffer[eol + 2 : eol + 4] == b"\r\n":
                return True
            return buffer.find(b"\r\n\r\n", eol) >= 0
        pos = eol + 2 + size + 2
        if pos > len(buffer):
            return False


def _receive(conn: Any) -> bool | None:
    """One non-blocking ``recv`` into ``conn``'s head buffer: True if bytes came,
    False if none are there yet, None if the peer closed or the socket failed."""
    try:
        data = conn.sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return None
    if not data:
        return None
    conn.pg_head += data
    return True


class GuardedThreadWorker(ThreadWorker):
    """``gthread`` with the request head (and small bodies) read by the event loop."""

    def init_process(self) -> None:
        # gunicorn's Request builds its body reader from this module global.
        gmessage.ChunkedReader = StreamingChunkedReader
        self.reading_conns: deque[Any] = deque()
        super().init_process()

    def _own_path(self, conn: Any) -> bool:
        return not (
            self.cfg.is_ssl
            or conn.is_http2
            or negotiation.prior_knowledge_allowed(self.cfg, conn.client)
        )

    def enqueue_req(self, conn: Any) -> None:
        if not self._own_path(conn):
            super().enqueue_req(conn)
            return
        if not isinstance(conn.sock, IdleTimeoutSocket) and type(conn.sock) is socket.socket:
            conn.sock.__class__ = IdleTimeoutSocket
        if getattr(conn, "pg_head", None) is None:
            # A new request: what a body drain read ahead of it comes first.
            buffered = conn.parser.unreader.take_buffered() if conn.parser else b""
            conn.pg_head = bytearray(buffered)
            conn.pg_deadline = time.monotonic() + LIMITS["head_timeout"]
        state = head_state(conn.pg_head)
        if state != "wait":
            self._dispatch(conn, state)
            return
        # A kept-alive connection comes here because it is readable: its next
        # request is usually all there, and one recv now saves registering it
        # for a poller round (epoll_ctl twice, one more wake-up) per request.
        conn.sock.setblocking(False)
        got = _receive(conn)
        if got is None:
            self._close(conn, b"")
            return
        if got:
            state = head_state(conn.pg_head)
            if state != "wait":
                self._dispatch(conn, state)
                return
        self.reading_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_readable, conn))

    def _on_head_readable(self, conn: Any, _sock: Any) -> None:
        got = _receive(conn)
        if got is None:
            self._drop_reading(conn)
            self._close(conn, b"")
            return
        if got:
            state = head_state(conn.pg_head)
            if state != "wait":
                self._drop_reading(conn)
                self._dispatch(conn, state)

    def _dispatch(self, conn: Any, state: str) -> None:
        if state == "too_large":
            self._close(conn, _STATUS_431)
            return
        conn.pg_ready = bytes(conn.pg_head)
        conn.pg_head = None
        conn.data_ready = True
        super().enqueue_req(conn)

    def handle(self, conn: Any) -> Any:
        ready = conn.__dict__.pop("pg_ready", None)
        if ready is not None:
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(ready)
        result = super().handle(conn)
        if result is False:
            # gunicorn closes "gracefully" (lingering up to 2 s for the
            # client's FIN) in finish_request, on the event loop: a client
            # that never closes would stall every connection of the worker.
            # Here it lingers in this thread; the second close is a no-op.
            conn.close(graceful=True)
        return result

    def _drop_reading(self, conn: Any) -> None:
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.poller.unregister(conn.sock)
        with contextlib.suppress(ValueError):
            self.reading_conns.remove(conn)

    def _close(self, conn: Any, answer: bytes) -> None:
        if answer:
            with contextlib.suppress(OSError):
                conn.sock.send(answer)  # non-blocking, best effort
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Also answer 408 to requests whose head (or small body) is late."""
        super().murder_pending()
        now = time.monotonic()
        late = [conn for conn in self.reading_conns if conn.pg_deadline <= now]
        for conn in late:
            self._drop_reading(conn)
            self._close(conn, _STATUS_408 if conn.pg_head else b"")
