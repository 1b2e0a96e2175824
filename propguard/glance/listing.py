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
from typing import Any
from urllib.parse import urlencode

import webob
from oslo_config import cfg

from propguard.errors import ApiError

#: Glance's defaults of ``limit_param_default`` and ``api_limit_max``, used when
#: propguard does not run inside glance-api (where it reads Glance's options).
GLANCE_DEFAULT_LIMIT = 25
GLANCE_MAX_LIMIT = 1000

#: ``fetch(marker, limit)`` -> (images, Glance said there is a next page).
Fetch = Callable[[str, int], tuple[list[Any], bool]]


def glance_limits(conf: cfg.ConfigOpts | None = None) -> tuple[int, int]:
    """Glance's page size when no ``limit`` is given, and its largest page."""
    conf = cfg.CONF if conf is None else conf
    try:
        return int(conf.limit_param_default), int(conf.api_limit_max)
    except (cfg.Error, TypeError, ValueError):
        return GLANCE_DEFAULT_LIMIT, GLANCE_MAX_LIMIT


def requested_page_size(request: webob.Request, conf: cfg.ConfigOpts | None = None) -> int:
    """The page size Glance used: the first ``limit`` (Glance pops it), capped.

    Only called after Glance answered 200, so ``limit`` is a valid count.
    """
    default, maximum = glance_limits(conf)
    values = request.GET.getall("limit")
    size = int(values[0]) if values else default
    return max(0, min(size, maximum))


def next_link(request: webob.Request, marker: str) -> str:
    """``next`` as Glance's serializer writes it: the caller's query, marker last."""
    params = dict(request.GET)
    params.pop("marker", None)
    params["marker"] = marker
    return "/v2/images?" + urlencode(params)


def image_id(image: Any) -> str:
    identifier = image.get("id") if isinstance(image, dict) else None
    if not isinstance(identifier, str):
        raise ApiError(502, "The image service sent a response propguard cannot check.")
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
