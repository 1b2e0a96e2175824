"""The proxy's response-head parser gives what ``http.client.parse_headers`` gives."""

from __future__ import annotations

import http.client
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from propguard.proxy.response_head import Response, parse_headers


def both(head: bytes) -> tuple[http.client.HTTPMessage, http.client.HTTPMessage]:
    return parse_headers(io.BytesIO(head)), http.client.parse_headers(io.BytesIO(head))


def same(ours: http.client.HTTPMessage, theirs: http.client.HTTPMessage) -> None:
    assert type(ours) is type(theirs)
    assert ours.items() == theirs.items()
    if theirs.is_multipart():  # message/*: the stdlib's own parse in both
        assert [m.items() for m in ours.get_payload()] == [m.items() for m in theirs.get_payload()]
    else:
        assert ours.get_payload() == theirs.get_payload()
    assert [type(d) for d in ours.defects] == [type(d) for d in theirs.defects]
    assert ours.is_multipart() == theirs.is_multipart()
    assert ours.get_content_type() == theirs.get_content_type()
    for name in ("content-length", "transfer-encoding", "connection", "x-missing"):
        assert ours.get(name) == theirs.get(name)
        assert ours.get_all(name) == theirs.get_all(name)


GLANCE = (
    b"Content-Type: application/json\r\nContent-Length: 1203\r\n"
    b"X-Openstack-Request-Id: req-0a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d\r\n"
    b"Date: Tue, 08 Dec 2026 00:00:00 GMT\r\n\r\n"
)


@pytest.mark.parametrize(
    "head",
    [
        GLANCE,
        GLANCE.replace(b"\r\n", b"\n"),
        b"\r\n",
        b"X: \r\nY:\t v  \r\nZ:v\r\n\r\n",  # empty value, tabs, trailing blanks kept
        b"Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n",
        b"X: caf\xe9\r\n\r\n",
        b"X-Folded: a\r\n  b\r\n\r\n",  # obs-fold: the stdlib's answer
        b"No colon here\r\nX: 1\r\n\r\n",
        b"X : 1\r\n\r\n",
        b"X: a\rb\r\n\r\n",  # a bare CR splits the line for email
        b"From nobody\r\nX: 1\r\n\r\n",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n",
        b"Content-Type: message/rfc822\r\n\r\n",
        b"X: 1\r\nY: 2",  # ends without the blank line (EOF)
        b"",
    ],
)
def test_same_message_as_the_stdlib(head: bytes) -> None:
    same(*both(head))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet="abcXYZ-_: \t\r\n\x00!~", max_size=8),
            st.text(alphabet="abc \t:;=\r\n\x00\xe9", max_size=12),
        ),
        max_size=6,
    ),
    st.sampled_from([b"\r\n", b"\n", b""]),
)
def test_any_head_gives_the_stdlib_message(fields: list, end: bytes) -> None:
    head = b"".join(f"{n}:{v}\r\n".encode("latin-1") for n, v in fields) + end
    same(*both(head))


def test_limits_are_the_stdlib_limits() -> None:
    with pytest.raises(http.client.LineTooLong):
        parse_headers(io.BytesIO(b"X: " + b"a" * 70000 + b"\r\n\r\n"))
    with pytest.raises(http.client.HTTPException):
        parse_headers(io.BytesIO(b"X: 1\r\n" * 101 + b"\r\n"))


class _Sock:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self.data))


@pytest.mark.parametrize(
    ("raw", "method"),
    [
        (b"HTTP/1.1 200 OK\r\n" + GLANCE.replace(b"1203", b"2") + b"{}", "GET"),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}",
            "PUT",
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", "GET"),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "DELETE"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "HEAD"),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", "GET"),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}", "GET"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}", "GET"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n{}", "GET"),
        (b"HTTP/1.1 200 OK\r\n\r\n{}", "GET"),
    ],
)
def test_response_framing_is_the_stdlib_framing(raw: bytes, method: str) -> None:
    ours = Response(_Sock(raw), method=method)  # type: ignore[arg-type]
    theirs = http.client.HTTPResponse(_Sock(raw), method=method)  # type: ignore[arg-type]
    ours.begin()
    theirs.begin()
    for attribute in ("status", "reason", "version", "chunked", "length", "will_close"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    same(ours.msg, theirs.msg)
    assert ours.read() == theirs.read()


def test_unknown_protocol_is_refused_as_the_stdlib_refuses_it() -> None:
    with pytest.raises(http.client.UnknownProtocol):
        Response(_Sock(b"HTTP/2.0 200 OK\r\n\r\n"), method="GET").begin()  # type: ignore[arg-type]
