"""Reading and replacing JSON request bodies on the routes propguard checks.

Bounded (``max_request_body_size``, 413 above), tolerant of short reads and
chunked input, strict about JSON (400). The body Glance receives is always the
one propguard checked, re-serialised: no parser differential (duplicate keys,
odd number forms) can make Glance apply something else.
"""

from __future__ import annotations

import io
from typing import Any

import orjson

from propguard.errors import ApiError


def read_json(environ: dict[str, Any], limit: int) -> Any:
    """The request's JSON document, read whole but never beyond ``limit`` bytes."""
    length_text = environ.get("CONTENT_LENGTH") or ""
    stream = input_stream(environ)
    if length_text:
        try:
            length = int(length_text)
        except ValueError:
            raise ApiError(400, "Invalid Content-Length.") from None
        if length < 0:
            raise ApiError(400, "Invalid Content-Length.")
        if length > limit:
            raise ApiError(413, "Request body is too large.")
        body = read_up_to(stream, length) if stream is not None and length else b""
    elif stream is not None and (
        environ.get("wsgi.input_terminated")
        or "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower()
    ):
        body = read_up_to(stream, limit + 1)
        if len(body) > limit:
            raise ApiError(413, "Request body is too large.")
    else:
        body = b""
    if not body:
        raise ApiError(400, "Body expected in request.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "Malformed JSON in request body.") from None


def replace_json(environ: dict[str, Any], document: Any) -> None:
    """Make ``document`` the request body (what was checked is what is forwarded)."""
    body = orjson.dumps(document)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("webob.is_body_seekable", None)
    environ.pop("webob._parsed_post_vars", None)


def input_stream(environ: dict[str, Any]) -> Any:
    """The request body stream; under uWSGI, a chunked body read with ``uwsgi.chunked_read()``.

    uWSGI's ``wsgi.input`` reads 0 bytes of a chunked body (``--http-socket``
    or ``--http``, with or without ``--http-chunked-input``) and does not set
    ``wsgi.input_terminated``: Glance reads such bodies the same way
    (``glance.common.wsgi._UWSGIChunkFile``).
    """
    if not environ.get("CONTENT_LENGTH") and "chunked" in (
        environ.get("HTTP_TRANSFER_ENCODING") or ""
    ).lower():
        uwsgi = _uwsgi()
        if uwsgi is not None:
            return UwsgiChunkedInput(uwsgi)
    return environ.get("wsgi.input")


def _uwsgi() -> Any:
    try:
        import uwsgi  # only importable inside a uWSGI worker
    except ImportError:
        return None
    return uwsgi


class UwsgiChunkedInput:
    """``read(n)`` over ``uwsgi.chunked_read()``, keeping what a read did not take."""

    def __init__(self, uwsgi: Any) -> None:
        self._uwsgi = uwsgi
        self._buffer = b""
        self._done = False

    def read(self, size: int | None = -1) -> bytes:
        while not self._done and (size is None or size < 0 or len(self._buffer) < size):
            data = self._uwsgi.chunked_read()
            if not data:
                self._done = True
                break
            self._buffer += data
        if size is None or size < 0:
            size = len(self._buffer)
        chunk, self._buffer = self._buffer[:size], self._buffer[size:]
        return chunk


def read_up_to(stream: Any, limit: int) -> bytes:
    """Read ``limit`` bytes or to the end: a WSGI input's ``read(n)`` may return fewer."""
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
