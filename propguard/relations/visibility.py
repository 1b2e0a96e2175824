"""Which images Glance shows a caller: asked of Glance, with the caller's own request.

The relations API must show a caller only the relations of images Glance
would show that caller, decided as Glance decides: its policy file
(``get_images`` then ``get_image`` per image), the image's *current* owner,
visibility and membership (Glance's database query). Recording those from
traffic would copy Glance's rules and miss every change made through another
API node, ``glance-manage`` or a policy edit; asking Glance cannot drift.

So the ids of a page of relations are sent down the pipeline (propguard's
filter, then Glance) as ``GET /v2/images?id=in:...`` with the caller's own
identity (the request's environ, auth_token's headers included), with
``visibility=all&member_status=all`` (Glance's list otherwise leaves out
community images of other projects and shared images whose membership is not
accepted, which ``GET /v2/images/{id}`` shows) and then ``os_hidden=true``
for the ids not found (the list shows hidden images only when asked). What
comes back is exactly what the image API shows this caller, through
propguard's filter. One id-indexed query per page (two when some image is
hidden); no per-image requests.

A refusal from Glance (403: the policy refuses listing; 400) means the
caller sees none of them; a 5xx or an answer that is not an image list
raises :class:`GlanceUnavailable` (the API answers 503).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

#: Ids per request (well under Glance's ``api_limit_max`` default and any URL limit).
BATCH = 100

#: Request headers of the caller's request not carried into the question asked of Glance
#: (it is a plain GET of JSON, whatever the caller's request was).
_DROPPED = (
    "CONTENT_TYPE",
    "HTTP_ACCEPT_ENCODING",
    "HTTP_TRANSFER_ENCODING",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
    "HTTP_RANGE",
    "HTTP_CONTENT_MD5",
)


class GlanceUnavailable(Exception):
    """Glance did not give a usable answer (5xx, not JSON, not an image list)."""


class GlanceVisibility:
    """``visible(environ, ids) -> {image id: image document as the caller sees it}``."""

    def __init__(self, application: Callable, batch: int = BATCH) -> None:
        self.application = application
        self.batch = batch
        #: Requests sent to Glance (for tests and benchmarks).
        self.asked = 0

    def __call__(self, environ: Mapping[str, Any], ids: Iterable[str]) -> dict[str, dict]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, dict] = {}
        for start in range(0, len(wanted), self.batch):
            chunk = wanted[start : start + self.batch]
            found.update(self._list(environ, chunk, hidden=False))
            rest = [i for i in chunk if i not in found]
            if rest:
                found.update(self._list(environ, rest, hidden=True))
        return found

    def _list(self, environ: Mapping[str, Any], ids: list[str], *, hidden: bool) -> dict:
        query: str | None = urlencode(
            {
                "id": "in:" + ",".join(ids),
                "visibility": "all",
                "member_status": "all",
                "os_hidden": "true" if hidden else "false",
                "limit": str(len(ids)),
            },
            safe=":,",
        )
        found: dict[str, dict] = {}
        pages = 0
        while query is not None and pages <= len(ids):
            pages += 1
            status, body = self._get(environ, query)
            if status in (400, 401, 403, 404):
                return {}  # Glance refuses this caller the list: it sees none of them
            if status != 200:
                raise GlanceUnavailable(f"Glance answered {status} to the visibility check")
            try:
                page = orjson.loads(body)
                images = page["images"]
                for image in images:
                    if isinstance(image, dict) and image.get("id") in ids:
                        found[image["id"]] = image
                following = page.get("next")
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise GlanceUnavailable(f"Glance's image list is not usable: {exc}") from None
            query = urlsplit(following).query if isinstance(following, str) else None
        return found

    def _get(self, environ: Mapping[str, Any], query: str) -> tuple[int, bytes]:
        sub = {k: v for k, v in environ.items() if not k.startswith("webob.")}
        for key in _DROPPED:
            sub.pop(key, None)
        sub.update(
            {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": "/v2/images",
                "QUERY_STRING": query,
                "CONTENT_LENGTH": "0",
                "HTTP_ACCEPT": "application/json",
                "wsgi.input": io.BytesIO(b""),
            }
        )
        sub.pop("RAW_URI", None)
        sub.pop("REQUEST_URI", None)
        self.asked += 1
        seen: dict[str, Any] = {}

        def start_response(status, headers, exc_info=None):
            seen["status"] = status
            return lambda data: None

        result = self.application(sub, start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        try:
            code = int(str(seen.get("status", "500")).split(" ", 1)[0])
        except ValueError:
            code = 500
        return code, body
