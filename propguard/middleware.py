"""The property-protection filter for the Glance v2 image API (paste: ``egg:propguard#propguard``).

Place it right after keystonemiddleware's ``auth_token`` and before Glance's
``context`` filter, with Glance's own ``property_protection_file`` unset::

    pipeline = ... versionnegotiation ... authtoken propguard context rootapp

What it does, per route (everything else, image data included, is passed on
untouched and streamed):

* ``POST /v2/images`` and ``POST /v2/tasks`` (import ``image_properties``):
  ``create`` for every extra property; the first denial is a 403 and nothing
  reaches Glance.
* ``GET /v2/images/{id}``, ``GET /v2/images``, and every image JSON Glance
  returns (POST, PATCH): properties the caller cannot ``read`` are removed.
* ``GET /v2/images?<prop>=<value>``: a filter on a property the caller cannot
  read matches nothing (Glance would answer for the hidden value: an oracle).
* ``PATCH /v2/images/{id}``: every operation is checked against the image as
  stored (fetched with the caller's own credentials), with Glance's codes
  (403 readable-but-protected, 409 unreadable); the patch forwarded is the
  one checked, re-serialised. Glance's protections being off, a PATCH only
  ever touches what it names: hidden properties are never lost.

What it trusts: see :mod:`propguard.identity`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

import orjson
import webob
from oslo_log import log

from propguard import opts
from propguard.bodies import read_json, replace_json
from propguard.credentials import Credentials
from propguard.errors import ApiError, error_response
from propguard.glance.attributes import SINGLE_LIST_PARAMETERS, ListFilter, classify_list_key
from propguard.glance.listing import next_link, refill_page, requested_page_size
from propguard.glance.patch import (
    DRAFT4_PATCH_MEDIA_TYPE,
    PATCH_MEDIA_TYPES,
    PatchError,
    PatchOp,
    parse_patch,
)
from propguard.glance.routes import GLANCE_DOWNLOAD, match_route, method_override
from propguard.identity import credentials_from_environ
from propguard.protection import ImageProtection, matches_filters
from propguard.rules import RuleEngine, RulesHolder, load_rules
from propguard.rules.policy_set import policy_dir_paths

LOG = log.getLogger(__name__)

Handler = Callable[[webob.Request, Credentials, RuleEngine, "str | None"], webob.Response]


class PropertyProtectionFilter:
    """WSGI filter enforcing property protections on the Glance v2 image API."""

    def __init__(self, application: Any, options: dict[str, Any]) -> None:
        self.application = application
        self.options = options
        rules_file = options.get("rules_file")
        if not rules_file:
            raise ValueError("propguard: 'rules_file' is not set; refusing to start without rules")
        self.protection = ImageProtection(frozenset(options["protect_core_attributes"]))
        self.service_token_roles = tuple(options["service_token_roles"])
        self.trust_identity_headers = bool(options["trust_identity_headers"])
        self.max_request_body = int(options["max_request_body_size"])
        self.max_response_body = int(options["max_response_body_size"])
        self.list_scan_limit = int(options["list_scan_limit"])
        self.allow_glance_download = bool(options["allow_glance_download"])
        self.rules = RulesHolder(
            self._build_engine,
            [
                rules_file,
                options.get("policy_file"),
                *policy_dir_paths(options.get("policy_file"), options["policy_dirs"]),
            ],
            interval=float(options["reload_interval"]),
        )
        if options["reload_on_sighup"]:
            self.rules.install_sighup()
        self._handlers: dict[tuple[str, str], Handler] = {
            ("images", "GET"): self._list_images,
            ("images", "POST"): self._create_image,
            ("image", "GET"): self._show_image,
            ("image", "PATCH"): self._update_image,
            ("image_locations", "GET"): self._locations_read,
            ("image_locations", "POST"): self._locations_add,
            ("tasks", "POST"): self._create_task,
            ("task", "GET"): self._show_task,
            ("image_import", "POST"): self._import_image,
        }
        LOG.info(
            "propguard: enforcing %s (%s format, service_role_mode=%s)",
            rules_file,
            options["rule_format"],
            options["service_role_mode"],
        )

    def _build_engine(self) -> RuleEngine:
        o = self.options
        return load_rules(
            o["rules_file"],
            o["rule_format"],
            mode=o["service_role_mode"],
            policy_file=o.get("policy_file"),
            policy_namespaces=tuple(o["policy_namespaces"]),
            policy_dirs=tuple(o["policy_dirs"]),
            os_glance_section=o["os_glance_section"],
            name_cache_size=o["name_cache_size"],
            decision_cache_size=o["decision_cache_size"],
        )

    # -- WSGI ---------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        route = match_route(environ.get("PATH_INFO", ""))
        if route is None:
            return self.application(environ, start_response)
        if method_override(environ):
            # Glance's router would dispatch on another method than the one
            # checked here (e.g. POST ...?_method=GET is a show, unfiltered).
            response = error_response(400, "Method override (_method) is not supported.")
            return response(environ, start_response)
        handler = self._handlers.get((route[0], environ.get("REQUEST_METHOD", "GET")))
        if handler is None:
            return self.application(environ, start_response)
        request = webob.Request(environ)
        creds = credentials_from_environ(
            environ,
            service_token_roles=self.service_token_roles,
            trust_identity_headers=self.trust_identity_headers,
        )
        try:
            response = handler(request, creds, self.rules.current(), route[1])
        except UnicodeDecodeError:
            # e.g. ``?%ff=1``: webob decodes the query as UTF-8 when asked for it.
            response = error_response(400, "The request is not valid UTF-8.")
        except ApiError as exc:
            if exc.status in (403, 409):
                LOG.info(
                    "propguard: %s %s refused with %d for %s (request %s)",
                    request.method,
                    request.path,
                    exc.status,
                    creds.describe(),
                    environ.get("openstack.request_id", "-"),
                )
            response = error_response(exc.status, exc.message, exc.headers)
        return response(environ, start_response)

    # -- helpers ------------------------------------------------------------

    def _forward(self, request: webob.Request) -> webob.Response:
        return request.get_response(self.application)

    def _forward_write(self, request: webob.Request) -> webob.Response:
        """Forward a create/update; blunt Glance's quota answer.

        Glance counts every stored property against ``image_property_quota``
        and says "Attempted: N, Maximum: M": behind propguard N includes
        properties the caller cannot read, so the numbers would count them.
        """
        response = self._forward(request)
        if response.status_code == 413:
            return error_response(413, "The request exceeds a limit of the image service.")
        return response

    def _image_document(
        self, response: webob.Response, listing: bool
    ) -> tuple[Any, list[Any]] | webob.Response:
        """Glance's image (or list) JSON and its images, or the response to send instead."""
        if (response.content_type or "") != "application/json" or response.content_encoding:
            LOG.error(
                "propguard: upstream sent %s (encoding %s) where image JSON was expected; "
                "refusing to pass it on unfiltered",
                response.content_type,
                response.content_encoding,
            )
            return error_response(502, "The image service sent a response propguard cannot check.")
        if response.content_length is not None and response.content_length > self.max_response_body:
            return error_response(502, "The image service response is too large to check.")
        try:
            document = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            LOG.error("propguard: upstream image JSON did not parse; refusing to pass it on")
            return error_response(502, "The image service sent a response propguard cannot check.")
        images = document.get("images") if listing and isinstance(document, dict) else [document]
        if not isinstance(images, list):
            return error_response(502, "The image service sent a response propguard cannot check.")
        return document, images

    def _filtered_json(
        self,
        response: webob.Response,
        creds: Credentials,
        engine: RuleEngine,
        listing: bool,
    ) -> webob.Response:
        """Remove what the caller cannot read from an image (or list) response.

        The body is re-serialised even when nothing was removed: Glance's
        ``json.dumps`` spacing differs from orjson's, so re-writing only
        changed bodies would tell the caller that something was hidden.
        """
        if not 200 <= response.status_code < 300 or response.status_code == 204:
            return response
        decoded = self._image_document(response, listing)
        if isinstance(decoded, webob.Response):
            return decoded
        document, images = decoded
        self.protection.hide_unreadable(images, creds, engine)
        response.body = orjson.dumps(document)
        return response

    # -- routes -------------------------------------------------------------

    def _show_image(self, request, creds, engine, image_id):
        return self._filtered_json(self._forward(request), creds, engine, listing=False)

    def _list_images(self, request, creds, engine, image_id):
        for key in SINGLE_LIST_PARAMETERS:
            if len(request.GET.getall(key)) > 1:
                # Glance takes the first; the others would be property filters.
                raise ApiError(400, f"Parameter {key} may be given only once.")
        property_keys = []
        never = []
        for key in dict.fromkeys(request.GET):
            kind = classify_list_key(key)
            if kind is ListFilter.INVALID:
                raise ApiError(400, f"Unsupported filter: {key}")
            if kind is ListFilter.NO_PROPERTY:
                never.append(key)
            elif kind is ListFilter.PROPERTY:
                property_keys.append(key)
        hidden_filters = never + [k for k in property_keys if not engine.allowed(k, "read", creds)]
        if hidden_filters:
            return self._empty_listing(request, hidden_filters)
        if not property_keys:
            return self._filtered_json(self._forward(request), creds, engine, listing=True)
        # Glance's router rewrites SCRIPT_NAME/PATH_INFO of the request it
        # serves: later pages are asked with a copy taken before.
        pristine = request.copy_get()
        # Glance's database layer keeps the last value of a repeated filter.
        filters = {key: request.GET.getall(key)[-1:] for key in property_keys}
        response = self._forward(request)
        return self._property_filtered_listing(pristine, response, creds, engine, filters)

    def _property_filtered_listing(
        self,
        request: webob.Request,
        response: webob.Response,
        creds: Credentials,
        engine: RuleEngine,
        filters: dict[str, list[str]],
    ) -> webob.Response:
        """Keep images whose readable property of exactly that name matches; see
        :mod:`propguard.listing` for why a short page is read on from Glance."""
        if response.status_code != 200:
            return response
        decoded = self._image_document(response, listing=True)
        if isinstance(decoded, webob.Response):
            return decoded
        document, images = decoded

        def keep(image: Any) -> bool:
            return matches_filters(image, filters)

        if all(keep(image) for image in images):
            self.protection.hide_unreadable(images, creds, engine)
            response.body = orjson.dumps(document)
            return response
        page, marker = refill_page(
            images,
            "next" in document,
            requested_page_size(request),
            keep,
            lambda after, limit: self._list_page_after(request, after, limit),
            self.list_scan_limit,
        )
        self.protection.hide_unreadable(page, creds, engine)
        document["images"] = page
        document.pop("next", None)
        if marker is not None:
            document["next"] = next_link(request, marker)
        response.body = orjson.dumps(document)
        return response

    def _list_page_after(
        self, request: webob.Request, marker: str, limit: int
    ) -> tuple[list[Any], bool]:
        """One more page from Glance, the caller's query after ``marker``."""
        probe = request.copy_get()
        query = [(k, v) for k, v in request.GET.items() if k not in ("marker", "limit")]
        probe.query_string = urlencode([*query, ("marker", marker), ("limit", str(limit))])
        response = self._forward(probe)
        if response.status_code != 200:
            # e.g. the marker image was deleted meanwhile: Glance's message
            # would name it, and it may be an image the caller must not learn of.
            raise ApiError(503, "The image service did not complete the listing; try again.")
        decoded = self._image_document(response, listing=True)
        if isinstance(decoded, webob.Response):
            raise ApiError(
                decoded.status_code, "The image service sent a response propguard cannot check."
            )
        document, images = decoded
        return images, "next" in document

    def _empty_listing(self, request: webob.Request, hidden_filters: list[str]) -> webob.Response:
        """A filter on an unreadable property matches nothing, whatever the value.

        Glance still sees the request (so authentication, policy and parameter
        validation happen as usual), without the hidden filters and with
        ``limit=0`` (unless the caller's ``limit`` is not a count, which Glance
        must refuse itself); the answer is an empty page whose ``first`` link
        keeps the caller's query, as Glance's own serializer would write it.
        """
        original = [(k, v) for k, v in request.GET.items() if k != "marker"]
        kept = [(k, v) for k, v in request.GET.items() if k not in hidden_filters and k != "limit"]
        limits = request.GET.getall("limit")
        probe_limit = limits[0] if limits and not _is_count(limits[0]) else "0"
        probe = request.copy_get()
        probe.query_string = urlencode([*kept, ("limit", probe_limit)])
        response = self._forward(probe)
        if response.status_code != 200:
            return response
        first = "/v2/images"
        if original:
            first += "?" + urlencode(original)
        body = {"images": [], "first": first, "schema": "/v2/schemas/images"}
        return webob.Response(
            body=orjson.dumps(body), status=200, content_type="application/json", charset=None
        )

    def _create_image(self, request, creds, engine, image_id):
        document = read_json(request.environ, self.max_request_body)
        if not isinstance(document, dict):
            raise ApiError(400, "Request body must be a JSON object.")
        self.protection.check_create(document, creds, engine)
        replace_json(request.environ, document)
        return self._filtered_json(self._forward_write(request), creds, engine, listing=False)

    def _create_task(self, request, creds, engine, image_id):
        document = read_json(request.environ, self.max_request_body)
        if isinstance(document, dict):
            task_input = document.get("input")
            if isinstance(task_input, dict):
                props = task_input.get("image_properties")
                if isinstance(props, dict):
                    self.protection.check_create(props, creds, engine)
                elif props is not None:
                    raise ApiError(400, "'image_properties' must be a JSON object.")
        replace_json(request.environ, document)
        return self._filtered_task(self._forward(request), creds, engine)

    def _show_task(self, request, creds, engine, task_id):
        return self._filtered_task(self._forward(request), creds, engine)

    def _filtered_task(
        self, response: webob.Response, creds: Credentials, engine: RuleEngine
    ) -> webob.Response:
        """A task shows its ``input.image_properties``: hide what the caller cannot read.

        Glance shows a task to whoever may read it (an admin, or members where
        ``tasks_api_access`` allows), not only to the properties' owner.
        """
        if not 200 <= response.status_code < 300:
            return response
        decoded = self._image_document(response, listing=False)
        if isinstance(decoded, webob.Response):
            return decoded
        document = decoded[0]
        task_input = document.get("input") if isinstance(document, dict) else None
        props = task_input.get("image_properties") if isinstance(task_input, dict) else None
        if isinstance(props, dict):
            self.protection.hide_unreadable([props], creds, engine)
        response.body = orjson.dumps(document)
        return response

    def _import_image(self, request, creds, engine, image_id):
        """Refuse ``glance-download`` unless allowed: it sets properties nobody checks."""
        document = read_json(request.environ, self.max_request_body)
        method = document.get("method") if isinstance(document, dict) else None
        name = method.get("name") if isinstance(method, dict) else None
        if name == GLANCE_DOWNLOAD and not self.allow_glance_download:
            raise ApiError(
                403,
                "The glance-download import method is disabled here: it copies image "
                "properties that cannot be checked against the property protections.",
            )
        replace_json(request.environ, document)
        return self._forward(request)

    def _locations_read(self, request, creds, engine, image_id):
        if "locations" in self.protection.protected_core:
            self.protection.require(engine, "locations", "read", creds)
        return self._forward(request)

    def _locations_add(self, request, creds, engine, image_id):
        if "locations" in self.protection.protected_core:
            self.protection.require(engine, "locations", "create", creds)
        return self._forward(request)

    def _update_image(self, request, creds, engine, image_id):
        # Compared exactly, as Glance does (``request.content_type not in ...``):
        # a spelling Glance refuses must not be checked and forwarded as a patch.
        media_type = request.content_type or ""
        draft = PATCH_MEDIA_TYPES.get(media_type)
        if draft is None:
            allowed = ", ".join(sorted(PATCH_MEDIA_TYPES))
            raise ApiError(
                415,
                f"Image PATCH expects Content-Type one of: {allowed}",
                {"Accept-Patch": allowed},
            )
        try:
            ops = parse_patch(read_json(request.environ, self.max_request_body), draft)
        except PatchError as exc:
            raise ApiError(400, str(exc)) from None
        if any(self.protection.is_rule_key(op.root) for op in ops):
            current = self._stored_image(request)
            if isinstance(current, webob.Response):
                return current
            ops = self.protection.check_patch(ops, current, creds, engine, draft)
            if draft == 10 and _only_creating_adds(ops):
                # Glance's draft 4 refuses an add over a present property (409
                # "already present") where draft 10 would overwrite it: so a
                # property created by someone else since the GET above is not
                # overwritten by a caller who may create it but not update it.
                draft = 4
                request.content_type = DRAFT4_PATCH_MEDIA_TYPE
        replace_json(request.environ, [op.to_json(draft) for op in ops])
        return self._filtered_json(self._forward_write(request), creds, engine, listing=False)

    def _stored_image(self, request: webob.Request) -> set[str] | webob.Response:
        """Names of the image's properties as stored, seen with the caller's credentials.

        Glance's own protections are off behind propguard, so this includes
        properties the caller cannot read; it never leaves this filter.
        """
        probe = request.copy_get()
        probe.query_string = ""
        probe.environ.pop("CONTENT_TYPE", None)
        response = self._forward(probe)
        if response.status_code != 200:
            return response
        try:
            document = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            return error_response(502, "The image service sent a response propguard cannot check.")
        if not isinstance(document, dict):
            return error_response(502, "The image service sent a response propguard cannot check.")
        return {k for k in document if self.protection.is_rule_key(k)}


def filter_factory(global_conf: dict[str, Any] | None = None, **local_conf: Any) -> Callable:
    """paste.deploy entry point: ``paste.filter_factory = propguard.middleware:filter_factory``.

    Options come from this filter's paste section, else from ``[propguard]``
    in the service's oslo.config files. The rules are loaded here, when the
    pipeline is built: a missing or broken file stops glance-api from
    starting, with the file, line and problem in the error.
    """
    options = opts.resolve(local_conf)

    def _filter(app: Any) -> PropertyProtectionFilter:
        return PropertyProtectionFilter(app, options)

    return _filter


def _is_count(value: str) -> bool:
    """Would Glance accept this ``limit`` (``int(value) >= 0``)?"""
    try:
        return int(value) >= 0
    except ValueError:
        return False


def _only_creating_adds(ops: list[PatchOp]) -> bool:
    """Does the patch create something it may not update, with no add that must overwrite?

    Then it can go to Glance as draft 4 unchanged in meaning, except that an
    add over a property that appeared meanwhile fails instead of overwriting.
    """
    adds = [op for op in ops if op.op == "add" and op.root != "locations"]
    return any(op.absent_only for op in adds) and all(op.absent_only for op in adds)
