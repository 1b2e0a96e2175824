"""Image-list pages filtered on readable properties: exact names, and no paging oracle.

Glance matches ``?name=value`` property filters in SQL. On a database whose
collation ignores case, accents or trailing spaces (MySQL/MariaDB), a
readable spelling such as ``?SECRET_key=abc`` also matches a hidden
``secret_key``. propguard keeps only images whose readable property of exactly
that name has the value asked (:func:`propguard.protection.matches_filters`).

Dropping images from Glance's page is not enough: the page would come back
short, and Glance's ``next`` link names the last image Glance found, dropped
or not, so both would still tell that a hidden property matched. When
anything is dropped, propguard therefore reads on (Glance's own paging, after
the last image Glance returned) until the page has as many kept images as the
caller asked for, and writes ``next`` from the last image it returns. The
answer is then the one Glance would give if the dropped images did not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import webob

from propguard.errors import UNCHECKABLE, ApiError, UpstreamAnswer
from propguard.glance.attributes import SINGLE_LIST_PARAMETERS, ListFilter, classify_list_key
from propguard.glance.documents import (
    filter_images,
    images_of,
    json_response,
    read_document,
    write_document,
)
from propguard.protection import matches_filters
from propguard.view import Reader

#: Glance's defaults of ``limit_param_default`` and ``api_limit_max``.
GLANCE_DEFAULT_LIMIT = 25
GLANCE_MAX_LIMIT = 1000

#: ``fetch(marker, limit)`` -> (images, Glance said there is a next page).
Fetch = Callable[[str, int], tuple[list[Any], bool]]
#: Send a request on to Glance and return its answer.
Forward = Callable[[webob.Request], webob.Response]


@dataclass(frozen=True)
class PageLimits:
    """Glance's page size without ``limit`` and its largest page (glance-api's
    ``limit_param_default`` and ``api_limit_max``; propguard's options of the
    same names must equal them)."""

    default: int = GLANCE_DEFAULT_LIMIT
    maximum: int = GLANCE_MAX_LIMIT


def requested_page_size(request: webob.Request, limits: PageLimits = PageLimits()) -> int:
    """The page size Glance used: the first ``limit`` (Glance pops it), capped.

    Only called after Glance answered 200, so ``limit`` is a valid count.
    """
    values = request.GET.getall("limit")
    size = int(values[0]) if values else limits.default
    return max(0, min(size, limits.maximum))


class ImageListing:
    """``GET /v2/images`` for one caller: filters checked, pages filtered and refilled.

    * a filter on a property the caller cannot read (or on a name no property
      may have) matches nothing: an empty page, Glance still asked to validate
      the rest of the query;
    * a filter on a readable property keeps only images whose property of
      exactly that name matches, refilling the page from Glance (see above);
    * every image of the answer loses what the caller cannot read.
    """

    def __init__(
        self,
        forward: Forward,
        *,
        limits: PageLimits = PageLimits(),
        scan_limit: int = 5000,
        max_response_body: int = 64 * 1024 * 1024,
    ) -> None:
        self.forward = forward
        self.limits = limits
        self.scan_limit = scan_limit
        self.max_response_body = max_response_body

    def __call__(self, request: webob.Request, reader: Reader) -> webob.Response:
        property_keys, hidden = self._classify(request, reader)
        if hidden:
            return self._empty_listing(request, hidden)
        if not property_keys:
            return filter_images(self.forward(request), self.max_response_body, True, reader.images)
        # Glance's router rewrites SCRIPT_NAME/PATH_INFO of the request it
        # serves: later pages are asked with a copy taken before.
        pristine = request.copy_get()
        # Glance's database layer keeps the last value of a repeated filter.
        filters = {key: request.GET.getall(key)[-1:] for key in property_keys}
        response = self.forward(request)
        if response.status_code != 200:
            return response
        return self._property_filtered(pristine, response, reader, filters)

    @staticmethod
    def _classify(request: webob.Request, reader: Reader) -> tuple[list[str], list[str]]:
        """(readable property filter keys, filter keys that must match nothing)."""
        for key in SINGLE_LIST_PARAMETERS:
            if len(request.GET.getall(key)) > 1:
                # Glance takes the first; the others would be property filters.
                raise ApiError(400, f"Parameter {key} may be given only once.")
        property_keys: list[str] = []
        never: list[str] = []
        for key in dict.fromkeys(request.GET):
            kind = classify_list_key(key)
            if kind is ListFilter.INVALID:
                raise ApiError(400, f"Unsupported filter: {key}")
            if kind is ListFilter.NO_PROPERTY:
                never.append(key)
            elif kind is ListFilter.PROPERTY:
                property_keys.append(key)
        hidden = never + [k for k in property_keys if not reader.can_read(k)]
        return property_keys, hidden

    def _property_filtered(
        self,
        request: webob.Request,
        response: webob.Response,
        reader: Reader,
        filters: dict[str, list[str]],
    ) -> webob.Response:
        """Keep images whose readable property of exactly that name matches; read on
        from Glance when that shortened the page (see the module docstring)."""
        document = read_document(response, self.max_response_body)
        images = images_of(document, listing=True)

        def keep(image: Any) -> bool:
            return matches_filters(image, filters)

        if not all(keep(image) for image in images):
            page, marker = refill_page(
                images,
                "next" in document,
                requested_page_size(request, self.limits),
                keep,
                lambda after, limit: self._page_after(request, after, limit),
                self.scan_limit,
                self.limits.maximum,
            )
            images = document["images"] = page
            document.pop("next", None)
            if marker is not None:
                document["next"] = next_link(request, marker)
        reader.images(images)
        return write_document(response, document)

    def _page_after(
        self, request: webob.Request, marker: str, limit: int
    ) -> tuple[list[Any], bool]:
        """One more page from Glance, the caller's query after ``marker``."""
        probe = request.copy_get()
        query = [(k, v) for k, v in request.GET.items() if k not in ("marker", "limit")]
        probe.query_string = urlencode([*query, ("marker", marker), ("limit", str(limit))])
        response = self.forward(probe)
        if response.status_code != 200:
            # e.g. the marker image was deleted meanwhile: Glance's message
            # would name it, and it may be an image the caller must not learn of.
            raise ApiError(503, "The image service did not complete the listing; try again.")
        try:
            document = read_document(response, self.max_response_body)
            return images_of(document, listing=True), "next" in document
        except ApiError as exc:
            raise ApiError(exc.status, UNCHECKABLE) from None

    def _empty_listing(self, request: webob.Request, hidden: list[str]) -> webob.Response:
        """A filter on an unreadable property matches nothing, whatever the value.

        Glance still sees the request (so authentication, policy and parameter
        validation happen as usual), without the hidden filters and with
        ``limit=0`` (unless the caller's ``limit`` is not a count, which Glance
        must refuse itself); the answer is an empty page whose ``first`` link
        keeps the caller's query, as Glance's own serializer would write it.
        """
        original = [(k, v) for k, v in request.GET.items() if k != "marker"]
        kept = [(k, v) for k, v in request.GET.items() if k not in hidden and k != "limit"]
        limits = request.GET.getall("limit")
        probe_limit = limits[0] if limits and not _is_count(limits[0]) else "0"
        probe = request.copy_get()
        probe.query_string = urlencode([*kept, ("limit", probe_limit)])
        response = self.forward(probe)
        if response.status_code != 200:
            raise UpstreamAnswer(response)
        first = "/v2/images"
        if original:
            first += "?" + urlencode(original)
        return json_response({"images": [], "first": first, "schema": "/v2/schemas/images"})


def _is_count(value: str) -> bool:
    """Would Glance accept this ``limit`` (``int(value) >= 0``)?"""
    try:
        return int(value) >= 0
    except ValueError:
        return False


def next_link(request: webob.Request, marker: str) -> str:
    """``next`` as Glance's serializer writes it: the caller's query, marker last."""
    params = dict(request.GET)
    params.pop("marker", None)
    params["marker"] = marker
    return "/v2/images?" + urlencode(params)


def image_id(image: Any) -> str:
    identifier = image.get("id") if isinstance(image, dict) else None
    if not isinstance(identifier, str):
        raise ApiError(502, UNCHECKABLE)
    return identifier


def refill_page(
    first: list[Any],
    first_has_next: bool,
    page_size: int,
    keep: Callable[[Any], bool],
    fetch: Fetch,
    scan_limit: int,
    max_fetch: int = GLANCE_MAX_LIMIT,
) -> tuple[list[Any], str | None]:
    """The kept images of a page, and the marker for ``next`` (None: no next page).

    Reads Glance's next pages (growing from ``page_size`` to ``max_fetch``)
    until ``page_size`` images are kept, Glance has no more, or
    ``scan_limit`` further images were read. In the last case the caller gets
    what was kept, with a ``next`` after it; with nothing kept, a 400, since
    no marker could be given without naming a dropped image.
    """
    kept = [image for image in first if keep(image)]
    more = first_has_next and bool(first)
    marker = image_id(first[-1]) if more else ""
    scanned = 0
    size = max(page_size, 1)
    exhausted = False
    while more and len(kept) < page_size:
        if scanned >= scan_limit:
            exhausted = True
            break
        images, more = fetch(marker, min(size, max_fetch))
        size *= 4
        if not images:
            break
        scanned += len(images)
        kept.extend(image for image in images if keep(image))
        marker = image_id(images[-1])
    if exhausted and not kept:
        raise ApiError(
            400,
            "Too many images match this property filter only by letter case, accents or "
            "spacing to check them; filter on the exact spelling of the name and value.",
        )
    page = kept[:page_size]
    if page and (len(kept) >= page_size or exhausted):
        return page, image_id(page[-1])
    return page, None
