"""The relations layer around propguard's filter: records, serves and rewrites.

``RelationsFilter(app=PropertyProtectionFilter(...))`` sees every request
first and Glance's final answer last (after propguard's own checks and
filtering). What it does, by route; everything else passes through with one
method/path test:

* ``POST /v2/images`` relayed by a *qualifying* service token (confirmed,
  one of ``service_token_roles`` and one of ``relations_service_roles``):
  the body is peeked (bounded, restored for the filter), and Glance's 201
  records the relation (:func:`.events.created_event`).
* the same caller's ``PATCH /v2/images/{id}`` 200, ``PUT .../file`` 204,
  ``POST .../locations`` 202 and ``POST .../members`` 200 under the
  relation's own ``X-OpenStack-Request-ID`` update it; image data is never
  read (``PUT /file`` streams through).
* ``DELETE /v2/images/{id}`` 204, from anyone: marks the relation deleted.
* ``GET /v2/instances/{uuid}/images``: :class:`.api.InstanceImagesApi`.
* with ``relations_rotation``: Nova's rotation query, see :meth:`_rotation`.

Recording happens after Glance answered and never changes the answer: any
failure is logged (the event queued in the outbox when the database is
away).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import webob
import webob.exc

from propguard.bodies import input_stream, read_up_to
from propguard.credentials import Credentials
from propguard.errors import ApiError
from propguard.glance.routes import routing_path
from propguard.identity import credentials_from_environ
from propguard.inflate import gunzip_bounded
from propguard.relations import events, models
from propguard.relations.api import INSTANCE_IMAGES, InstanceImagesApi, Visible, storable
from propguard.relations.recorder import Recorder
from propguard.relations.store import StoreRefused, StoreUnavailable
from propguard.relations.visibility import GlanceVisibility
from propguard.view import Reader

LOG = logging.getLogger(__name__)

_V = r"^/v2(?:\.\d+)?"
IMAGES = re.compile(rf"{_V}/images/?$")
IMAGE = re.compile(rf"{_V}/images/(?P<image>[^/]+)/?$")
IMAGE_SUB = re.compile(rf"{_V}/images/(?P<image>[^/]+)/(?P<sub>file|locations|members)/?$")

#: Nova's rotation query (nova/compute/manager.py ``_rotate_backups`` through
#: glanceclient): these keys, ``marker`` on later pages.
ROTATION_KEYS = frozenset(
    {"image_type", "backup_type", "instance_uuid", "limit", "sort_key", "sort_dir"}
)
MAX_REQUEST_ID = 255


class RelationsFilter:
    """WSGI middleware; ``application`` is propguard's filter (or any Glance v2 app)."""

    def __init__(
        self,
        application: Any,
        recorder: Recorder,
        *,
        origins: Mapping[str, str],
        relations_service_roles: Iterable[str],
        service_token_roles: Iterable[str],
        trust_identity_headers: bool = False,
        rotation: bool = False,
        read_wait: float = 2.0,
        max_request_body: int = 114688,
        limit_default: int = 25,
        limit_max: int = 1000,
        reader_for: Callable[[Credentials], Reader] | None = None,
        visible: Visible | None = None,
    ) -> None:
        self.application = application
        self.recorder = recorder
        self.store = recorder.store
        self.origins = dict(origins)
        self.relations_service_roles = frozenset(
            r.strip().lower() for r in relations_service_roles if r.strip()
        )
        self.service_token_roles = tuple(service_token_roles)
        self.trust_identity_headers = trust_identity_headers
        self.rotation = rotation
        #: how long a read waits for this worker's own queued writes (read-your-writes)
        self.read_wait = read_wait
        self.max_request_body = max_request_body
        if reader_for is None:
            # The property filter's view of images (what the relations API shows
            # must be what the image API shows): the wrapped filter's own.
            reader_for = application.reader
        if visible is None:
            # Which images the caller sees: Glance's answer, through propguard's filter.
            visible = GlanceVisibility(application)
        self.api = InstanceImagesApi(
            self.store,
            self.relations_service_roles,
            reader_for=reader_for,
            visible=visible,
            limit_default=limit_default,
            limit_max=limit_max,
        )

    # -- WSGI ---------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO", "")
        if method not in ("GET", "HEAD", "POST", "PATCH", "PUT", "DELETE") or "/v2" not in path:
            return self.application(environ, start_response)
        path = routing_path(path)
        try:
            match = INSTANCE_IMAGES.match(path) if "/instances/" in path else None
            if match:
                return self._serve(environ, start_response, match["instance"])
            if method in ("GET", "HEAD"):
                if self.rotation and method == "GET" and IMAGES.match(path):
                    return self._rotation(environ, start_response)
                return self.application(environ, start_response)
            if method == "POST" and IMAGES.match(path):
                return self._observe_create(environ, start_response)
            match = IMAGE.match(path)
            if match:
                if method == "DELETE":
                    return self._observe_delete(environ, start_response, match["image"])
                if method == "PATCH":
                    return self._observe_step(environ, start_response, match["image"], "patch")
            match = IMAGE_SUB.match(path)
            if match:
                step = {
                    ("PUT", "file"): "file",
                    ("POST", "locations"): "locations",
                    ("POST", "members"): "members",
                }.get((method, match["sub"]))
                if step:
                    return self._observe_step(environ, start_response, match["image"], step)
        except webob.exc.HTTPException as exc:
            return exc(environ, start_response)
        return self.application(environ, start_response)

    # -- identity -----------------------------------------------------------

    def _creds(self, environ: Mapping[str, Any]) -> Credentials:
        return credentials_from_environ(
            environ,
            service_token_roles=self.service_token_roles,
            trust_identity_headers=self.trust_identity_headers,
        )

    def qualifies(self, creds: Credentials) -> bool:
        """A confirmed service token with a service_token_roles *and* a relations role."""
        return bool(creds.service_roles & self.relations_service_roles)

    # -- recording ----------------------------------------------------------

    def _observe_create(self, environ, start_response):
        creds = self._creds(environ)
        if not self.qualifies(creds):
            return self.application(environ, start_response)
        document = peek_json(environ, self.max_request_body)
        if not isinstance(document, dict):
            return self.application(environ, start_response)
        status, chunks = _call(self.application, environ, start_response, keep_body=True)
        if status == 201:
            try:
                image = _response_json(chunks)
                event = events.created_event(
                    document,
                    image if isinstance(image, dict) else {},
                    creds,
                    origin=events.origin_of(creds, self.origins),
                    request_id=request_id(environ),
                    global_request_id=_text(environ.get("openstack.global_request_id")),
                )
                if event is not None:
                    self.recorder.record([event])
            except Exception:
                LOG.exception("propguard: recording an image create failed")
        return chunks

    def _observe_step(self, environ, start_response, image_id: str, step: str):
        creds = self._creds(environ)
        rid = request_id(environ)
        image_id = events.canonical_uuid(image_id)
        if not (rid and image_id and self.qualifies(creds)):
            return self.application(environ, start_response)
        document = (
            peek_json(environ, self.max_request_body) if step in ("patch", "members") else None
        )
        status, body = _call(self.application, environ, start_response)
        try:
            recorded: list[dict[str, Any]] = []
            if step == "patch" and status == 200:
                recorded = events.patched_event(image_id, document, rid)
            elif step == "file" and status == 204:
                recorded = [events.uploaded_event(image_id, rid, "file")]
            elif step == "locations" and status == 202:
                recorded = [events.uploaded_event(image_id, rid, "location")]
            elif step == "members" and status == 200:
                event = events.member_event(image_id, document, rid)
                recorded = [event] if event else []
            self.recorder.record(recorded)
        except Exception:
            LOG.exception("propguard: recording %s of image %s failed", step, image_id)
        return body

    def _observe_delete(self, environ, start_response, image_id: str):
        image_id = events.canonical_uuid(image_id)
        if image_id is None:
            return self.application(environ, start_response)
        status, body = _call(self.application, environ, start_response)
        if status == 204:
            try:
                creds = self._creds(environ)
                via = models.VIA_SERVICE if self.qualifies(creds) else models.VIA_USER
                self.recorder.record(
                    [events.deleted_event(image_id, creds, via=via, request_id=request_id(environ))]
                )
            except Exception:
                LOG.exception("propguard: recording the deletion of image %s failed", image_id)
        return body

    # -- serving --------------------------------------------------------------

    def _serve(self, environ, start_response, instance: str):
        self.recorder.flush(self.read_wait)
        request = webob.Request(environ)
        try:
            response = self.api(request, instance, self._creds(environ))
        except webob.exc.HTTPException as exc:
            response = exc
        return response(environ, start_response)

    def _rotation(self, environ, start_response):
        """Nova's backup rotation answered from the relations (``relations_rotation``).

        Nova lists ``image_type=backup&backup_type=T&instance_uuid=U&limit=L&
        sort_key=created_at&sort_dir=desc`` and deletes all but the newest
        ``rotation`` of what it gets. Those three properties are user-editable,
        so the list is rebuilt here from the relations recorded for U (kind
        backup, type T, the caller's origin, not deleted) and sent on as
        ``id=in:...`` with the same limit, sort and marker: Glance still
        applies the caller's visibility, the status filter and the order. An
        image a user tagged with U's ``instance_uuid`` is never in that list.

        Defence in depth against ``instance_uuid`` forged through Nova's own
        metadata: the backup created under this request id (the one being
        rotated for) names the instance's project (nova-compute's
        ``owner_id``); relations whose compute step named another project are
        left out. If the store cannot be read the answer is 503 (Nova then
        deletes nothing, keeping extra backups), never Glance's property query.
        """
        creds = self._creds(environ)
        if not self.qualifies(creds):
            return self.application(environ, start_response)
        query = environ.get("QUERY_STRING", "")
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            return self.application(environ, start_response)
        params = dict(pairs)
        keys = {k for k, _ in pairs}
        if (
            len(pairs) != len(params)
            or not keys >= ROTATION_KEYS
            or keys - ROTATION_KEYS - {"marker"}
            or params["image_type"] != "backup"
            or params["sort_key"] != "created_at"
            or params["sort_dir"] != "desc"
        ):
            return self.application(environ, start_response)
        instance = events.canonical_uuid(params["instance_uuid"])
        if instance is None or not params["backup_type"]:
            return self.application(environ, start_response)
        try:
            storable("backup_type", params["backup_type"])
        except ApiError as refusal:  # Glance's own database would refuse it too (500)
            return refusal(environ, start_response)
        origin = events.origin_of(creds, self.origins)
        self.recorder.flush(self.read_wait)  # the backup being rotated for, written first
        try:
            anchor = None
            rid = request_id(environ)
            if rid:
                anchor = self.store.anchor(instance, rid)
            ids = self.store.rotation_ids(
                instance,
                params["backup_type"],
                origin,
                anchor["instance_project_id"] if anchor else None,
            )
        except StoreRefused:
            response = ApiError(400, "The relations store refused the backup_type.")
            return response(environ, start_response)
        except StoreUnavailable:
            LOG.error(
                "propguard: rotation query for instance %s refused: store unavailable", instance
            )
            response = ApiError(503, "The relations store is unavailable; try again later.")
            return response(environ, start_response)
        LOG.info(
            "propguard: rotation of %s backups of instance %s (origin %s) answered from "
            "%d relation(s)",
            params["backup_type"],
            instance,
            origin,
            len(ids),
        )
        if not ids:
            body = {"images": [], "first": f"/v2/images?{query}", "schema": "/v2/schemas/images"}
            response = webob.Response(
                body=orjson.dumps(body), content_type="application/json", charset=None
            )
            return response(environ, start_response)
        rewritten = {
            "id": "in:" + ",".join(ids),
            "limit": params["limit"],
            "sort_key": "created_at",
            "sort_dir": "desc",
        }
        if "marker" in params:
            rewritten["marker"] = params["marker"]
        environ["QUERY_STRING"] = urlencode(rewritten, safe=":,")
        for key in ("webob._parsed_query_vars",):
            environ.pop(key, None)
        return self.application(environ, start_response)


# -- helpers -------------------------------------------------------------------


def request_id(environ: Mapping[str, Any]) -> str | None:
    """``X-OpenStack-Request-ID`` as sent (Nova's global request id), if usable."""
    value = environ.get("HTTP_X_OPENSTACK_REQUEST_ID")
    if not isinstance(value, str) or not value or len(value) > MAX_REQUEST_ID:
        return None
    return value


def _text(value: Any) -> str | None:
    return value[:MAX_REQUEST_ID] if isinstance(value, str) and value else None


class _Prefixed(io.RawIOBase):
    """``head`` bytes then the rest of ``stream``: a peeked body put back."""

    def __init__(self, head: bytes, stream: Any) -> None:
        self._head = io.BytesIO(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._head.read(size)
        if size is None or size < 0:
            return data + self._stream.read()
        if len(data) < size:
            data += self._stream.read(size - len(data))
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def peek_json(environ: dict[str, Any], limit: int) -> Any:
    """The request's JSON body, leaving it in place for the next app; None if unreadable.

    Reads at most ``limit`` bytes (``max_request_body_size``); anything
    larger or not JSON is put back untouched and yields None (the filter
    below answers such requests itself).
    """
    stream = environ.get("wsgi.input")
    if stream is None:
        return None
    length_text = environ.get("CONTENT_LENGTH") or ""
    if length_text:
        try:
            length = int(length_text)
        except ValueError:
            return None
        if length <= 0 or length > limit:
            return None
        body = read_up_to(stream, length)
        environ["wsgi.input"] = io.BytesIO(body)
    elif (
        environ.get("wsgi.input_terminated")
        or "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower()
    ):
        stream = input_stream(environ)  # under uWSGI: uwsgi.chunked_read()
        body = read_up_to(stream, limit + 1)
        if len(body) > limit:
            # Put back what was read; readers below must take it from
            # wsgi.input (to its end), not from uWSGI's chunk reader again.
            environ["wsgi.input"] = _Prefixed(body, stream)
            environ["wsgi.input_terminated"] = True
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            return None
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
    else:
        return None
    environ.pop("webob.is_body_seekable", None)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _call(app, environ, start_response, keep_body: bool = False) -> tuple[int | None, Any]:
    """Call ``app``; return its status code and its body (joined, with ``keep_body``)."""
    seen: dict[str, Any] = {}

    def capture(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers
        return start_response(status, headers, exc_info)

    body = app(environ, capture)
    if keep_body:
        try:
            chunks = [b"".join(body)]
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        body = chunks
    status = seen.get("status")
    code = int(status.split(" ", 1)[0]) if status else None
    if keep_body:
        body = _Answer(body, seen.get("headers") or [])
    return code, body


#: Largest inflated image document read to record a create (the default
#: ``max_response_body_size``).
MAX_RECORDED_IMAGE = 64 * 1024 * 1024


class _Answer(list):
    """A joined response body that remembers its headers (for decoding it)."""

    def __init__(self, chunks: list[bytes], headers: list[tuple[str, str]]) -> None:
        super().__init__(chunks)
        self.headers = headers


def _response_json(chunks: _Answer) -> Any:
    data = b"".join(chunks)
    encoding = next((v for k, v in chunks.headers if k.lower() == "content-encoding"), "").lower()
    if encoding == "gzip":
        # Bounded as the filter's own image documents are (a gzip bomb is refused
        # before it grows the process; the caller logs the InflateError).
        return orjson.loads(gunzip_bounded([data], MAX_RECORDED_IMAGE))
    return orjson.loads(data)
