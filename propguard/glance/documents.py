"""Image and task JSON in Glance's responses: read it whole and bounded, write it back.

A response propguard must filter and cannot read (another media type, an
encoding, too large, not JSON, not the expected shape) is refused with a
502, never passed on unfiltered.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import orjson
import webob
from oslo_log import log

from propguard.errors import UNCHECKABLE, ApiError

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
    body = response.body if response.content_length is not None else _bounded(response, max_size)
    if encoding == "gzip":
        body = _gunzip(body, max_size)
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


def _gunzip(body: bytes, max_size: int) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(body, max_size + 1)
    except zlib.error:
        LOG.error("propguard: upstream gzip body did not decompress; refusing to pass it on")
        raise ApiError(502, UNCHECKABLE) from None
    if len(data) > max_size or decompressor.unconsumed_tail:
        raise ApiError(502, TOO_LARGE)
    return data


def images_of(document: Any, listing: bool, key: str = "images") -> list[Any]:
    """The images of an image document (itself) or of a list page (``images``, or ``key``)."""
    images = document.get(key) if listing and isinstance(document, dict) else [document]
    if not isinstance(images, list):
        raise ApiError(502, UNCHECKABLE)
    return images


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
    hide(images_of(document, listing, key))
    return write_document(response, document)


def json_response(document: Any, status: int = 200) -> webob.Response:
    return webob.Response(
        body=orjson.dumps(document), status=status, content_type="application/json", charset=None
    )
