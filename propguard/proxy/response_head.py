"""The upstream's response head, parsed without the ``email`` package when it is plain.

Why: ``http.client`` parses every response head with ``email.parser`` (a
feed parser built for mail), a sixth of urllib3's CPU per small request
(about 65 µs on the project's 2-core machine). :func:`parse_headers` gives
the same :class:`http.client.HTTPMessage` (same fields, values, payload,
defects) for a head whose every line is ``token ":" value`` without a bare
CR or LF, and hands anything else (folded lines, a missing colon, stray
CRs) to ``http.client.parse_headers`` itself, with the same limits (line
length, number of fields) either way. :class:`Response` is
``http.client.HTTPResponse`` with that parser; the upstream pool's
connections use it.
"""

from __future__ import annotations

import email.parser
import http.client
import re
from typing import Any

import urllib3.connection

_PLAIN_FIELD = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n]*)\r?\n")


def parse_headers(fp: Any, _class: type = http.client.HTTPMessage) -> http.client.HTTPMessage:
    """``http.client.parse_headers``, without ``email.parser`` for a plain head."""
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]  # the stdlib's limits
    fields = []
    # Not plain: the head ended without its blank line (EOF), or a line is
    # not "token: value" (folded, no colon, stray CR), or the body would be
    # parsed as MIME parts (multipart/*, message/*): the stdlib decides.
    plain = lines[-1] in (b"\r\n", b"\n")
    for line in lines[:-1] if plain else ():
        match = _PLAIN_FIELD.fullmatch(line.decode("iso-8859-1"))
        if match is None or (
            match.group(1).lower() == "content-type"
            and match.group(2).lstrip().lower().startswith(("multipart/", "message/"))
        ):
            plain = False
            break
        fields.append((match.group(1), match.group(2)))
    if not plain:
        text = b"".join(lines).decode("iso-8859-1")
        return email.parser.Parser(_class=_class).parsestr(text)
    message = _class()
    message._headers = fields  # as email's compat32 policy stores them
    message.set_payload("")
    return message


class Response(http.client.HTTPResponse):
    """``http.client.HTTPResponse`` whose head is read by :func:`parse_headers`.

    :meth:`begin` is CPython 3.11's, with the one call changed (the status
    line, ``100 Continue``, framing and keep-alive rules are the stdlib's).
    """

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._read_status()  # type: ignore[attr-defined]
            if status != http.client.CONTINUE:
                break
            http.client._read_headers(self.fp)  # type: ignore[attr-defined]
        self.code = self.status = status
        self.reason = reason.strip()
        if version in ("HTTP/1.0", "HTTP/0.9"):
            self.version = 10
        elif version.startswith("HTTP/1."):
            self.version = 11
        else:
            raise http.client.UnknownProtocol(version)
        self.headers = self.msg = parse_headers(self.fp)
        transfer_encoding = self.headers.get("transfer-encoding")
        if transfer_encoding and transfer_encoding.lower() == "chunked":
            self.chunked = True
            self.chunk_left = None
        else:
            self.chunked = False
        self.will_close = self._check_close()  # type: ignore[attr-defined]
        self.length = None
        length = self.headers.get("content-length")
        if length and not self.chunked:
            try:
                self.length = int(length)
            except ValueError:
                self.length = None
            else:
                if self.length < 0:
                    self.length = None
        if (
            status in (http.client.NO_CONTENT, http.client.NOT_MODIFIED)
            or 100 <= status < 200
            or self._method == "HEAD"  # type: ignore[attr-defined]
        ):
            self.length = 0
        if not self.will_close and not self.chunked and self.length is None:
            self.will_close = True


class Connection(urllib3.connection.HTTPConnection):
    response_class = Response


class HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = Response
