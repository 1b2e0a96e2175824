"""Image and task JSON in Glance's responses: read it whole and bounded, write it back.

A response propguard must filter and cannot read (another media type, an
encoding, too large, not JSON, not the expected shape) is refused with a
502, never passed on unfiltered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import webob
from oslo_log import log

from propguard.errors import UNCHECKABLE, ApiError
from propguard.inflate import InflateError, gunzip_bounded

LOG = log.getLogger(__name__)
#: The answer to an image document past ``max_response_body_size``.
TOO_LARGE = "The image service response is too large to check."


def read_document(response: webob.Response, max_size: int) -> Any:
    """Glance's JSON document of ``response``; :class:`ApiError` 502 if it cannot be checked.

    A body compressed below the filter (Glance's ``gzip`` filter after
    propguard, for a client that accepts gzip) is decompressed, never beyond
    ``max_size``; :func:`write_document` compresses it again.
    """
    encoding = response.content_encoding
    if (response.content_type or "") != "application/json" or encoding not in (None, "gzip"):
        LOG.error(
            "propguard: upstream sent %s (encoding %s) where image JSON was expected; "
            "refusing to pass it on unfiltered",
            response.content_type,
            response.content_encoding,
        )
        raise ApiError(502, UNCHECKABLE)
    if response.content_length is not None and response.content_length > max_size:
        raise ApiError(502, TOO_LARGE)
    if encoding == "gzip":
        body: bytes | bytearray = _gunzip(response, max_size)
    elif response.content_length is not None:
        body = response.body
    else:
        body = _bounded(response, max_size)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        LOG.error("propguard: upstream image JSON did not parse; refusing to pass it on")
        raise ApiError(502, UNCHECKABLE) from None


def _bounded(response: webob.Response, max_size: int) -> bytes:
    """A body without ``Content-Length`` (chunked, e.g. from a remote Glance behind
    ``propguard serve``), read piece by piece and refused past ``max_size``."""
    pieces: list[bytes] = []
    size = 0
    app_iter = response.app_iter
    try:
        for piece in app_iter:
            size += len(piece)
            if size > max_size:
                raise ApiError(502, TOO_LARGE)
            pieces.append(piece)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    body = b"".join(pieces)
    response.app_iter = [body]
    response.content_length = len(body)
    return body


def _pieces(response: webob.Response, max_size: int) -> Iterator[bytes]:
    """The body as it arrives, refused past ``max_size`` (and closed either way)."""
    app_iter = response.app_iter
    size = 0
    try:
        for piece in app_iter:
            size += len(piece)
            if size > max_size:
                raise ApiError(502, TOO_LARGE)
            yield piece
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()


def _gunzip(response: webob.Response, max_size: int) -> bytearray:
    """Inflate the gzip body as it arrives, never holding more than ``max_size`` of output.

    The compressed body is not kept (the document is written anew).
    """
    try:
        data = gunzip_bounded(_pieces(response, max_size), max_size)
    except InflateError as exc:
        if exc.too_large:
            raise ApiError(502, TOO_LARGE) from None
        LOG.error("propguard: upstream gzip body did not decompress (%s); refusing it", exc)
        raise ApiError(502, UNCHECKABLE) from None
    response.app_iter = []
    return data


def images_of(document: Any, listing: bool, key: str = "images") -> list[dict[str, Any]]:
    """The images of an image document (itself) or of a list page (``images``, or ``key``).

    Anything but objects where images (or tasks) belong is a 502: a filter
    that skipped what it does not recognise would pass it on unfiltered.
    """
    if not isinstance(document, dict):
        LOG.error("propguard: upstream document is a JSON %s, not an object", _kind(document))
        raise ApiError(502, UNCHECKABLE)
    images = document.get(key) if listing else [document]
    if not isinstance(images, list) or not all(isinstance(i, dict) for i in images):
        LOG.error("propguard: upstream list page has no list of objects in %r", key)
        raise ApiError(502, UNCHECKABLE)
    return images


def tasks_of(document: Any, listing: bool) -> list[dict[str, Any]]:
    """The tasks of a task document or of a list page (``tasks``), shape-checked.

    A task's ``input``, when there, is an object, and its ``image_properties``
    (image properties, filtered by the rules) an object or null: anything else
    could carry properties the filter would not see.
    """
    tasks = images_of(document, listing, key="tasks")
    for task in tasks:
        task_input = task.get("input")
        if task_input is None:
            continue
        if not isinstance(task_input, dict) or not isinstance(
            task_input.get("image_properties", {}), (dict, type(None))
        ):
            LOG.error("propguard: upstream task has an 'input' of an unexpected shape")
            raise ApiError(502, UNCHECKABLE)
    return tasks


def _kind(document: Any) -> str:
    return type(document).__name__


def write_document(response: webob.Response, document: Any) -> webob.Response:
    """Re-serialise ``document`` into ``response``.

    Always, even when nothing was removed: Glance's ``json.dumps`` spacing
    differs from orjson's, so re-writing only changed bodies would tell the
    caller that something was hidden.
    """
    encoding = response.content_encoding
    response.content_encoding = None
    response.body = orjson.dumps(document)
    if encoding == "gzip":
        response.encode_content("gzip")
    return response


def filter_images(
    response: webob.Response,
    max_size: int,
    listing: bool,
    hide: Callable[[list[Any]], object],
    key: str = "images",
) -> webob.Response:
    """Apply ``hide`` to the images of a successful image (or list) response.

    Error answers carry no image and pass unchanged; so does a 204.
    """
    if not 200 <= response.status_code < 300 or response.status_code == 204:
        return response
    document = read_document(response, max_size)
    hide(tasks_of(document, listing) if key == "tasks" else images_of(document, listing, key))
    return write_document(response, document)


def filter_tasks(
    response: webob.Response,
    max_size: int,
    listing: bool,
    hide: Callable[[list[Any]], object],
) -> webob.Response:
    """:func:`filter_images` for task documents (one task, or a ``tasks`` list page)."""
    return filter_images(response, max_size, listing, hide, key="tasks")


def json_response(document: Any, status: int = 200) -> webob.Response:
    return webob.Response(
        body=orjson.dumps(document), status=status, content_type="application/json", charset=None
    )
