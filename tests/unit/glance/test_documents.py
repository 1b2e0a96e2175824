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
