"""Glance documents of an unexpected shape are refused (502), never passed on; gzip inflated
within the bound, piece by piece (the same helper for the relations recorder)."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import orjson
import pytest
import webob

from propguard.errors import ApiError
from propguard.glance.documents import filter_images, filter_tasks, read_document
from propguard.inflate import InflateError, gunzip_bounded
from propguard.relations.filter import _Answer, _response_json

MIB = 1024 * 1024


def answer(document: object) -> webob.Response:
    return webob.Response(
        body=orjson.dumps(document), content_type="application/json", charset=None
    )


def refused(call) -> int:
    with pytest.raises(ApiError) as error:
        call()
    return error.value.status


def hide_nothing(images: list) -> None:
    assert all(isinstance(i, dict) for i in images)


@pytest.mark.parametrize(
    "document", [["secret"], "secret", 7, None, [{"id": "x", "secret_prop": "v"}]]
)
def test_a_single_image_that_is_not_an_object_is_502(document):
    assert refused(lambda: filter_images(answer(document), MIB, False, hide_nothing)) == 502


@pytest.mark.parametrize(
    "page",
    [
        {"images": [["x"]]},
        {"images": ["secret"]},
        {"images": [{"id": "a"}, [{"secret_prop": "v"}]]},
        {"images": {"id": "a"}},
        [{"images": []}],
    ],
)
def test_a_list_page_whose_images_are_not_objects_is_502(page):
    assert refused(lambda: filter_images(answer(page), MIB, True, hide_nothing)) == 502


@pytest.mark.parametrize(
    "task",
    [
        ["x"],
        "task",
        {"id": "t", "input": "image_properties=secret"},
        {"id": "t", "input": ["secret"]},
        {"id": "t", "input": {"image_properties": ["secret"]}},
        {"id": "t", "input": {"image_properties": "secret"}},
    ],
)
def test_a_task_of_an_unexpected_shape_is_502(task):
    assert refused(lambda: filter_tasks(answer(task), MIB, False, hide_nothing)) == 502
    page = {"tasks": [task]}
    assert refused(lambda: filter_tasks(answer(page), MIB, True, hide_nothing)) == 502
    # GET /v2/images/{id}/tasks goes through filter_images(key="tasks") today.
    assert refused(lambda: filter_images(answer(page), MIB, True, hide_nothing, "tasks")) == 502


@pytest.mark.parametrize(
    "task",
    [
        {"id": "t"},
        {"id": "t", "input": None},
        {"id": "t", "input": {"image_properties": None}},
        {"id": "t", "input": {"import_from": "x", "image_properties": {"a": "1"}}},
    ],
)
def test_tasks_of_the_expected_shapes_pass(task):
    seen = []
    filter_tasks(answer(task), MIB, False, seen.extend)
    assert seen == [task]


def bomb(inflated: int) -> bytes:
    """A gzip JSON document of ``inflated`` bytes, compressed a thousandfold."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [compressor.compress(b'{"a": "')]
    block = b"x" * MIB
    for _ in range(inflated // MIB):
        parts.append(compressor.compress(block))
    parts.append(compressor.compress(b'"}') + compressor.flush())
    return b"".join(parts)


def test_a_gzip_bomb_is_refused_within_the_bound():
    """Peak allocation while refusing a 256 MiB bomb at an 8 MiB limit stays near 8 MiB
    (one ``decompress(body, max + 1)`` call peaked at twice the limit)."""
    limit = 8 * MIB
    response = webob.Response(body=bomb(256 * MIB), content_type="application/json")
    response.content_encoding = "gzip"
    response.charset = None
    tracemalloc.start()
    try:
        status = refused(lambda: read_document(response, limit))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 502
    assert peak < limit + 2 * MIB, peak / MIB


@pytest.mark.parametrize(
    "body",
    [
        gzip.compress(b"{}") + gzip.compress(b'{"hidden": 1}'),  # a second member
        gzip.compress(b"{}") + b"trailing",
        gzip.compress(b'{"a": 1}')[:-6],  # truncated
    ],
)
def test_gzip_that_is_not_exactly_one_stream_is_refused(body):
    response = webob.Response(body=body, content_type="application/json", charset=None)
    response.content_encoding = "gzip"
    assert refused(lambda: read_document(response, MIB)) == 502


def test_gunzip_bounded_pieces_and_limit():
    data = b"0123456789" * 100_000
    packed = gzip.compress(data)
    pieces = [packed[i : i + 777] for i in range(0, len(packed), 777)]
    assert gunzip_bounded(pieces, len(data)) == data
    with pytest.raises(InflateError) as error:
        gunzip_bounded(pieces, len(data) - 1)
    assert error.value.too_large


def test_the_relations_recorder_inflates_within_a_bound(monkeypatch):
    monkeypatch.setattr("propguard.relations.filter.MAX_RECORDED_IMAGE", MIB)
    good = _Answer([gzip.compress(b'{"id": "x"}')], [("Content-Encoding", "gzip")])
    assert _response_json(good) == {"id": "x"}
    with pytest.raises(InflateError):
        _response_json(_Answer([bomb(16 * MIB)], [("Content-Encoding", "gzip")]))
