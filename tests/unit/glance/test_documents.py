"""Reading Glance's JSON below the filter: gzip decoded within the size bound, or refused."""

from __future__ import annotations

import gzip

import pytest
import webob

from propguard.errors import ApiError
from propguard.glance.documents import read_document, write_document


def gzipped(body: bytes) -> webob.Response:
    response = webob.Response(body=gzip.compress(body), content_type="application/json")
    response.content_encoding = "gzip"
    response.charset = None
    return response


def test_gzip_body_is_read_and_written_back_compressed():
    response = gzipped(b'{"a": 1}')
    document = read_document(response, 1024)
    assert document == {"a": 1}
    document["b"] = 2
    write_document(response, document)
    assert response.content_encoding == "gzip"
    assert gzip.decompress(response.body) == b'{"a":1,"b":2}'


def test_gzip_bomb_is_refused_not_expanded():
    response = gzipped(b'{"a": "' + b"x" * 5_000_000 + b'"}')
    assert len(response.body) < 10_000
    with pytest.raises(ApiError) as error:
        read_document(response, 64 * 1024)
    assert error.value.status == 502


@pytest.mark.parametrize("encoding", ["deflate", "br", "gzip, gzip"])
def test_other_encodings_are_refused(encoding):
    response = webob.Response(body=b"{}", content_type="application/json")
    response.content_encoding = encoding
    with pytest.raises(ApiError) as error:
        read_document(response, 1024)
    assert error.value.status == 502


def test_broken_gzip_is_refused():
    response = gzipped(b"{}")
    response.body = b"\x1f\x8b not gzip"
    with pytest.raises(ApiError) as error:
        read_document(response, 1024)
    assert error.value.status == 502


class _Pieces:
    """A streamed body without Content-Length (a chunked answer from a remote Glance)."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.read = 0
        self.closed = False

    def __iter__(self):
        for piece in self.pieces:
            self.read += 1
            yield piece

    def close(self) -> None:
        self.closed = True


def _streamed(pieces: list[bytes]) -> tuple[webob.Response, _Pieces]:
    body = _Pieces(pieces)
    response = webob.Response(content_type="application/json", charset=None)
    response.app_iter = body
    response.content_length = None
    return response, body


def test_streamed_body_without_length_is_read_within_the_bound():
    response, body = _streamed([b'{"images": ', b"[]}"])
    assert read_document(response, 100) == {"images": []}
    assert body.closed and response.content_length == len(b'{"images": []}')


def test_streamed_body_past_the_bound_is_refused_without_reading_the_rest():
    response, body = _streamed([b"[" + b"1," * 40, b"1," * 40, b"1]"] + [b" "] * 1000)
    with pytest.raises(ApiError) as caught:
        read_document(response, 100)
    assert caught.value.status == 502 and "too large" in caught.value.message
    assert body.read == 2 and body.closed
