"""The bounded JSON body reader: ``read_json``, ``replace_json``, ``read_up_to``.

Why: propguard reads the body of every checked request before Glance does.
It must read all of it (short reads, chunked input), never more than
``max_request_body_size`` (413 without reading past it), answer bad input
with a 400 as Glance would, and make the document it checked the body Glance
gets.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from propguard.bodies import read_json, read_up_to, replace_json
from propguard.errors import ApiError

LIMIT = 64
DOC = {"name": "cirros", "x_owner_a": "ü"}
BODY = json.dumps(DOC).encode()


class Trickle(io.RawIOBase):
    """A WSGI input whose ``read(n)`` returns at most ``step`` bytes (a slow client)."""

    def __init__(self, data: bytes, step: int = 1) -> None:
        self.data = data
        self.step = step
        self.reads: list[int] = []

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        n = self.step if size < 0 else min(size, self.step)
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


class Untouchable:
    """A WSGI input that must not be read."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read")


def environ(stream: Any = None, length: int | str | None = None, **extra: Any) -> dict[str, Any]:
    """A request's environ: ``stream`` as ``wsgi.input``, ``length`` as ``CONTENT_LENGTH``."""
    env: dict[str, Any] = {"REQUEST_METHOD": "POST", **extra}
    if stream is not None:
        env["wsgi.input"] = stream
    if length is not None:
        env["CONTENT_LENGTH"] = str(length)
    return env


def with_body(body: bytes) -> dict[str, Any]:
    """A request with ``body`` and its Content-Length."""
    return environ(io.BytesIO(body), len(body))


def api_error(env: dict[str, Any], limit: int = LIMIT) -> ApiError:
    with pytest.raises(ApiError) as err:
        read_json(env, limit)
    return err.value


# -- Content-Length -------------------------------------------------------------


def test_content_length_body_is_read_whole() -> None:
    assert read_json(with_body(BODY), LIMIT) == DOC


def test_content_length_stops_the_read() -> None:
    """Only Content-Length bytes are the body, whatever follows on the stream."""
    env = environ(io.BytesIO(BODY + b"garbage"), len(BODY))
    assert read_json(env, LIMIT) == DOC
    assert env["wsgi.input"].read() == b"garbage"


def test_short_reads_are_read_to_content_length() -> None:
    stream = Trickle(BODY, step=3)
    env = environ(stream, len(BODY))
    assert read_json(env, LIMIT) == DOC
    assert len(stream.reads) > len(BODY) // 3  # many reads, none asked past the body
    assert all(size <= len(BODY) for size in stream.reads)


def test_stream_ending_before_content_length_gives_what_was_sent() -> None:
    env = environ(io.BytesIO(BODY), len(BODY) + 10)
    assert read_json(env, LIMIT) == DOC


def test_content_length_exactly_at_the_limit_passes() -> None:
    document = {"k": "v" * (LIMIT - len(json.dumps({"k": ""})))}
    body = json.dumps(document).encode()
    assert len(body) == LIMIT
    assert read_json(with_body(body), LIMIT) == document


def test_content_length_over_the_limit_is_413_unread() -> None:
    env = environ(Untouchable(), LIMIT + 1)
    err = api_error(env)
    assert (err.status, err.message) == (413, "Request body is too large.")


@pytest.mark.parametrize("length", ["abc", "1.5", "0x10", "-1", "-0x1", " -5"])
def test_invalid_or_negative_content_length_is_400(length: str) -> None:
    env = environ(Untouchable(), length)
    err = api_error(env)
    assert (err.status, err.message) == (400, "Invalid Content-Length.")


@pytest.mark.parametrize("length", ["0", "-0", "+0", "00"])
def test_zero_content_length_is_no_body(length: str) -> None:
    env = environ(Untouchable(), length)
    err = api_error(env)
    assert (err.status, err.message) == (400, "Body expected in request.")


def test_content_length_without_an_input_is_no_body() -> None:
    err = api_error(environ(None, 10))
    assert (err.status, err.message) == (400, "Body expected in request.")


# -- chunked (no Content-Length) ------------------------------------------------


CHUNKED_WAYS = [
    {"wsgi.input_terminated": True},
    {"HTTP_TRANSFER_ENCODING": "chunked"},
    {"HTTP_TRANSFER_ENCODING": "Chunked"},
    {"HTTP_TRANSFER_ENCODING": "gzip, chunked"},
]


@pytest.mark.parametrize("chunked", CHUNKED_WAYS)
def test_chunked_body_is_read_to_its_end(chunked: dict[str, Any]) -> None:
    env = environ(Trickle(BODY, step=5), **chunked)
    assert read_json(env, LIMIT) == DOC


@pytest.mark.parametrize("chunked", CHUNKED_WAYS)
def test_chunked_body_exactly_at_the_limit_passes(chunked: dict[str, Any]) -> None:
    body = json.dumps(["x" * (LIMIT - 4)]).encode()
    assert len(body) == LIMIT
    env = environ(io.BytesIO(body), **chunked)
    assert read_json(env, LIMIT) == ["x" * (LIMIT - 4)]


@pytest.mark.parametrize("chunked", CHUNKED_WAYS)
def test_chunked_body_over_the_limit_is_413(chunked: dict[str, Any]) -> None:
    body = json.dumps(["x" * (LIMIT - 3)]).encode()
    assert len(body) == LIMIT + 1
    stream = io.BytesIO(body + b"more never read")
    err = api_error(environ(stream, **chunked))
    assert (err.status, err.message) == (413, "Request body is too large.")
    assert stream.read() == b"more never read"  # read no further than limit + 1


def test_empty_chunked_body_is_no_body() -> None:
    err = api_error(environ(io.BytesIO(b""), **{"wsgi.input_terminated": True}))
    assert (err.status, err.message) == (400, "Body expected in request.")


def test_neither_length_nor_chunked_is_no_body() -> None:
    """Without Content-Length and not chunked, there is no body to read (WSGI)."""
    err = api_error(environ(Untouchable()))
    assert (err.status, err.message) == (400, "Body expected in request.")
    assert api_error(environ(Untouchable(), HTTP_TRANSFER_ENCODING="identity")).status == 400


def test_no_input_at_all_is_no_body() -> None:
    err = api_error(environ(HTTP_TRANSFER_ENCODING="chunked"))
    assert (err.status, err.message) == (400, "Body expected in request.")
    err = api_error({})
    assert (err.status, err.message) == (400, "Body expected in request.")


# -- JSON -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"{", b"{bad", b"[1,]", b"{'a': 1}", b"   ", b"\xff\xfe", b'{"a": 1} x', b"NaN", b"\x00"],
)
def test_malformed_json_is_400(body: bytes) -> None:
    err = api_error(with_body(body))
    assert (err.status, err.message) == (400, "Malformed JSON in request body.")


@pytest.mark.parametrize("document", [[], {}, None, 0, "s", [{"op": "add"}], {"a": [1.5, True]}])
def test_any_json_document_is_returned(document: Any) -> None:
    assert read_json(with_body(json.dumps(document).encode()), LIMIT) == document


def test_error_is_an_openstack_json_answer() -> None:
    response = api_error(with_body(b"{")).wsgi_response
    assert response.status_int == 400
    assert response.content_type == "application/json"
    assert json.loads(response.body) == {
        "error": {"code": 400, "title": "Bad Request", "message": "Malformed JSON in request body."}
    }


# -- replace_json ---------------------------------------------------------------


def test_replace_json_makes_the_document_the_body() -> None:
    env = environ(
        io.BytesIO(b'{"a": 1, "a": 2}'),
        HTTP_TRANSFER_ENCODING="chunked",
        **{"webob.is_body_seekable": True, "webob._parsed_post_vars": ("stale", None)},
    )
    replace_json(env, {"a": 2, "ü": [1, None]})
    body = env["wsgi.input"].read()
    assert json.loads(body) == {"a": 2, "ü": [1, None]}
    assert env["CONTENT_LENGTH"] == str(len(body))
    assert "HTTP_TRANSFER_ENCODING" not in env
    assert "webob.is_body_seekable" not in env
    assert "webob._parsed_post_vars" not in env


def test_replace_json_overwrites_content_length_and_reads_back() -> None:
    env = with_body(BODY)
    replace_json(env, ["x"])
    assert env["CONTENT_LENGTH"] == str(len(b'["x"]'))
    assert read_json(env, LIMIT) == ["x"]


# -- read_up_to -----------------------------------------------------------------


def test_read_up_to_reads_exactly_the_limit() -> None:
    stream = io.BytesIO(b"0123456789")
    assert read_up_to(stream, 4) == b"0123"
    assert stream.read() == b"456789"


def test_read_up_to_stops_at_the_end() -> None:
    assert read_up_to(io.BytesIO(b"012"), 10) == b"012"
    assert read_up_to(io.BytesIO(b""), 10) == b""


def test_read_up_to_collects_short_reads() -> None:
    stream = Trickle(b"0123456789", step=3)
    assert read_up_to(stream, 8) == b"01234567"
    assert stream.reads == [8, 5, 2]  # never asks for more than is still wanted
    assert stream.data == b"89"


def test_read_up_to_zero_does_not_read() -> None:
    assert read_up_to(Untouchable(), 0) == b""
    assert read_up_to(Untouchable(), -1) == b""
