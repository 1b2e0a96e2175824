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

This class only routes and forwards: the decisions are in
:mod:`propguard.protection`, Glance's API in :mod:`propguard.glance`, the
caller in :mod:`propguard.identity`. ``application`` may be any WSGI app
that speaks Glance v2 (glance-api's next filter, or a proxy to a remote one).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import webob
import webob.exc
from oslo_config import cfg
from oslo_log import log

from propguard import metrics, opts, relations
from propguard.audit import CadfNotifier
from propguard.bodies import read_json, replace_json
from propguard.credentials import Credentials
from propguard.decisions import DecisionLog, Trail, open_shadow_rules
from propguard.errors import UNCHECKABLE, ApiError, UpstreamAnswer, forbidden_property
from propguard.glance.documents import filter_images, filter_tasks, read_document
from propguard.glance.listing import ImageListing, PageLimits
from propguard.glance.patch import PATCH_MEDIA_TYPES, PatchError, parse_patch
from propguard.glance.routes import GLANCE_DOWNLOAD, match_route, method_override
from propguard.identity import credentials_from_environ
from propguard.injection import Injection
from propguard.protection import QUOTA_MESSAGE, ImageProtection
from propguard.rules.loading import RulesOptions, open_rules
from propguard.view import ImageView, Reader, UnexpectedDocument, ViewConfig

LOG = log.getLogger(__name__)

#: The answer to a duplicate-key 500 from an add on a collating database.
COLLIDING_DELETED_MESSAGE = (
    "The image database could not store a property name of this request: it "
    "treats the name as equal to one the image held before (a removed "
    "property keeps its key there) or to one added at the same time. Nothing "
    "was changed; use another name, or ask an administrator."
)

Handler = Callable[[webob.Request, Reader], webob.Response]


class PropertyProtectionFilter:
    """WSGI filter enforcing property protections on the Glance v2 image API."""

    def __init__(self, application: Any, options: dict[str, Any]) -> None:
        self.application = application
        self.options = options
        rules = RulesOptions.from_options(options)
        if not rules.rules_file:
            raise ValueError("propguard: 'rules_file' is not set; refusing to start without rules")
        self.rules = open_rules(
            rules,
            reload_interval=float(options["reload_interval"]),
            reload_on_sighup=bool(options["reload_on_sighup"]),
        )
        #: Rules decided beside the enforced ones and never applied (:mod:`propguard.decisions`).
        self.shadow = open_shadow_rules(rules, options)
        self.enforce = bool(options["enforce"])
        self.decisions = DecisionLog(
            enabled=bool(options["decision_log"]),
            property_names=bool(options["log_property_names"]),
            notifier=CadfNotifier.from_options(options),
        )
        #: What a caller may see: the one view every adapter asks (:mod:`propguard.view`).
        self.view = ImageView(
            ViewConfig(frozenset(options["protect_core_attributes"]), rules.name_folding()),
            enforce=self.enforce,
        )
        self.protection = ImageProtection(self.view.config, int(options["property_quota"]))
        warn_about_glance_quota(self.protection.property_quota)
        self.injection = Injection.from_options(
            options["inject_properties"],
            options["inject_ignore_roles"],
            options["inject_service_roles"],
        )
        self.service_token_roles = tuple(options["service_token_roles"])
        self.trust_identity_headers = bool(options["trust_identity_headers"])
        if self.trust_identity_headers:
            LOG.warning(
                "propguard: trust_identity_headers = true: X-Roles and the other identity "
                "headers are believed without auth_token; only behind a gateway that sets them "
                "and that clients cannot bypass"
            )
        self.max_request_body = int(options["max_request_body_size"])
        self.max_response_body = int(options["max_response_body_size"])
        self.allow_glance_download = bool(options["allow_glance_download"])
        self.list_images = ImageListing(
            self._forward,
            limits=PageLimits(int(options["limit_param_default"]), int(options["api_limit_max"])),
            scan_limit=int(options["list_scan_limit"]),
            max_response_body=self.max_response_body,
        )
        self._handlers: dict[tuple[str, str], Handler] = {
            ("images", "GET"): self.list_images,
            ("images", "POST"): self._create_image,
            ("image", "GET"): self._show_image,
            ("image", "PATCH"): self._update_image,
            ("image_locations", "GET"): self._locations_read,
            ("image_locations", "POST"): self._locations_add,
            ("tasks", "POST"): self._create_task,
            ("task", "GET"): self._show_task,
            ("image_tasks", "GET"): self._image_tasks,
            ("image_import", "POST"): self._import_image,
        }
        LOG.info(
            "propguard: %s %s (%s format, service_role_mode=%s)%s",
            "enforcing" if self.enforce else "deciding, NOT enforcing (enforce = false),",
            rules.rules_file,
            rules.rule_format,
            rules.service_role_mode,
            f"; shadow rules {options['shadow_rules_file']}" if self.shadow else "",
        )

    # -- WSGI ---------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        """Route; an unchecked route goes to the next app itself (streamed, untouched).

        The one place where a raised answer (:class:`ApiError`,
        :class:`UpstreamAnswer`: ``webob.exc.HTTPException``) becomes the
        response, as ``webob.dec.wsgify`` does (without its per-request
        response object and clone: this runs on every request).
        """
        route = match_route(environ.get("PATH_INFO", ""))
        if route is None:
            return self.application(environ, start_response)
        try:
            response = self._dispatch(webob.Request(environ), route[0])
            metrics.decided(route[0], environ, response, False)
        except webob.exc.HTTPException as exc:
            response = exc
            metrics.decided(route[0], environ, exc, isinstance(exc, ApiError))
        return response(environ, start_response)

    def _dispatch(self, request: webob.Request, route: str) -> Any:
        if method_override(request.environ):
            # Glance's router would dispatch on another method than the one
            # checked here (e.g. POST ...?_method=GET is a show, unfiltered).
            raise ApiError(400, "Method override (_method) is not supported.")
        handler = self._handlers.get((route, request.method))
        if handler is None:
            return self.application
        creds = credentials_from_environ(
            request.environ,
            service_token_roles=self.service_token_roles,
            trust_identity_headers=self.trust_identity_headers,
        )
        request_id = ensure_request_id(request.environ)
        engine = self.rules.current()
        shadow = self.shadow.current() if self.shadow is not None else None
        trail = Trail()
        reader = self.view.reader(engine, creds, shadow=shadow, trail=trail)
        status, refused = 500, False
        try:
            response = handler(request, reader)
            status = getattr(response, "status_code", 200)
            return response
        except UnexpectedDocument as exc:
            LOG.error("propguard: %s; refusing to pass it on unfiltered", exc)
            status = 502
            raise ApiError(502, UNCHECKABLE) from None
        except UnicodeDecodeError:
            # e.g. ``?%ff=1``: webob decodes the query as UTF-8 when asked for it.
            status = 400
            raise ApiError(400, "The request is not valid UTF-8.") from None
        except webob.exc.HTTPException as exc:
            status = exc.wsgi_response.status_code
            # propguard's own 403/409 (Glance's own answers pass as UpstreamAnswer).
            refused = isinstance(exc, ApiError) and status in (403, 409)
            if isinstance(exc, ApiError):  # the id of its decision record, as Glance's answers
                exc.wsgi_response.headers.setdefault("X-OpenStack-Request-ID", request_id)
            raise
        finally:
            if self.enforce:
                metrics.note_hidden(request.environ, sum(trail.hidden.values()))
            self.decisions.request(
                trail,
                request.environ,
                creds,
                route,
                status=status,
                refused=refused,
                enforce=self.enforce,
                where=lambda name: self.view.section_of(engine, name),
                shadow_where=(lambda name: self.view.section_of(shadow, name)) if shadow else None,
            )

    def reader(self, creds: Credentials) -> Reader:
        """``creds``'s view of images under the rules current now (the relations API asks it too)."""
        shadow = self.shadow.current() if self.shadow is not None else None
        return self.view.reader(self.rules.current(), creds, shadow=shadow)

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
            raise ApiError(413, QUOTA_MESSAGE)
        return response

    def _images_json(self, response: webob.Response, reader: Reader) -> webob.Response:
        """Remove what the caller cannot read from an image response."""
        return filter_images(response, self.max_response_body, False, reader.images)

    def _task_json(self, response: webob.Response, reader: Reader) -> webob.Response:
        """A task, with what the caller cannot read of its input removed."""

        def hide(documents: list[Any]) -> None:
            reader.task(documents[0])

        return filter_tasks(response, self.max_response_body, False, hide)

    # -- routes -------------------------------------------------------------

    def _show_image(self, request, reader):
        return self._images_json(self._forward(request), reader)

    def _create_image(self, request, reader):
        document = read_json(request.environ, self.max_request_body)
        if not isinstance(document, dict):
            raise ApiError(400, "Request body must be a JSON object.")
        self.protection.check_create(document, reader, self._injected(reader.creds))
        replace_json(request.environ, document)
        return self._images_json(self._forward_write(request), reader)

    def _injected(self, creds: Credentials) -> dict[str, str]:
        """The operator's properties for an image this caller creates (none if exempt)."""
        return self.injection.values_for(creds) if self.injection.applies_to(creds) else {}

    def _update_image(self, request, reader):
        # Compared exactly, as Glance does (``request.content_type not in ...``):
        # a spelling Glance refuses must not be checked and forwarded as a patch.
        draft = PATCH_MEDIA_TYPES.get(request.content_type or "")
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
            raise ApiError(exc.status, str(exc)) from None
        plan = self.protection.plan_patch(ops, lambda: self._stored_names(request), reader, draft)
        if plan.draft != draft:
            request.content_type = plan.media_type
        replace_json(request.environ, plan.body())
        response = self._forward_write(request)
        if response.status_code == 500 and plan.new_names and not self.protection.folding.is_identity:
            # On a collating database a soft-deleted row keeps its key in
            # Glance's unique index, and the API never shows deleted rows: an
            # add of another spelling of a removed name is a duplicate-key
            # 500 (Glance rolls the whole patch back). Say so, for the
            # caller's own name only; the log keeps that it was Glance's 500.
            LOG.warning(
                "propguard: Glance answered 500 to a PATCH adding %d new name(s) on a collating "
                "database; answered 409 (request %s)",
                len(plan.new_names),
                request.environ.get("openstack.request_id", "-"),
            )
            raise ApiError(409, COLLIDING_DELETED_MESSAGE)
        return self._images_json(response, reader)

    def _stored_names(self, request: webob.Request) -> set[str]:
        """Names of the image's properties as stored, read with the caller's credentials.

        Glance's own protections are off behind propguard, so this includes
        properties the caller cannot read; it never leaves this filter.
        """
        probe = request.copy_get()
        probe.query_string = ""
        probe.environ.pop("CONTENT_TYPE", None)
        response = self._forward(probe)
        if response.status_code != 200:
            raise UpstreamAnswer(response)
        document = read_document(response, self.max_response_body)
        if not isinstance(document, dict):
            raise ApiError(502, UNCHECKABLE)
        return {k for k in document if self.protection.is_rule_key(k)}

    def _create_task(self, request, reader):
        document = read_json(request.environ, self.max_request_body)
        self.protection.check_task_input(document, reader, self._injected(reader.creds))
        replace_json(request.environ, document)
        return self._task_json(self._forward(request), reader)

    def _show_task(self, request, reader):
        return self._task_json(self._forward(request), reader)

    def _image_tasks(self, request, reader):
        """``GET /v2/images/{id}/tasks``: every task of the image, to any reader of the image."""

        def hide(documents: list[Any]) -> None:
            for task in documents:
                reader.task(task)

        return filter_tasks(self._forward(request), self.max_response_body, True, hide)

    def _import_image(self, request, reader):
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

    def _locations_read(self, request, reader):
        if not reader.can_read("locations"):
            raise forbidden_property("locations")
        return self._forward(request)

    def _locations_add(self, request, reader):
        if "locations" in self.protection.protected_core:
            self.protection.require(reader, "locations", "create")
        return self._forward_write(request)


def ensure_request_id(environ: dict[str, Any]) -> str:
    """The request's id, the one its decision record and Glance's log lines both name.

    oslo.middleware's ``request_id`` filter (``propguard serve``) has set
    ``openstack.request_id``. Inside glance-api, Glance's context middleware
    (after propguard) takes the client's ``X-OpenStack-Request-ID`` or makes
    one: propguard makes it first when the client sent none, in the header
    Glance reads, so that both name the same request.
    """
    known = environ.get("openstack.request_id") or environ.get("HTTP_X_OPENSTACK_REQUEST_ID")
    if known:
        return str(known)
    made = f"req-{uuid.uuid4()}"
    environ["HTTP_X_OPENSTACK_REQUEST_ID"] = made
    return made


def warn_about_glance_quota(property_quota: int) -> None:
    """Say at start when Glance's own property quota makes a counting oracle.

    Inside glance-api (Glance's options registered), ``image_property_quota``
    >= 0 counts every stored property, those the caller cannot read included:
    whether a caller's PATCH gets Glance's 413 then tells how many hidden
    properties the image holds. Only read here, for this warning.
    """
    try:
        glance_quota = int(cfg.CONF.image_property_quota)
    except (cfg.Error, AttributeError, TypeError, ValueError):
        return  # not inside glance-api
    if glance_quota >= 0:
        LOG.warning(
            "propguard: glance's image_property_quota = %d counts properties callers cannot "
            "read, so its 413 tells how many an image holds; set [DEFAULT] "
            "image_property_quota = -1 and let propguard's property_quota (now %d) count "
            "what each caller can read",
            glance_quota,
            property_quota,
        )


def filter_factory(global_conf: dict[str, Any] | None = None, **local_conf: Any) -> Callable:
    """paste.deploy entry point: ``paste.filter_factory = propguard.middleware:filter_factory``.

    Options come from this filter's paste section, else from ``[propguard]``
    in the service's oslo.config files (or, with ``oslo_config_project`` in
    the paste section, from that project's own files, as oslo.middleware
    reads them). The rules are loaded here, when the pipeline is built: a
    missing or broken file stops glance-api from starting, with the file,
    line and problem in the error.
    """
    options = opts.resolve(local_conf)  # the relations options included
    here = (global_conf or {}).get("here")

    def _filter(app: Any) -> Any:
        # The relations layer (off unless relations_connection is set) around the filter.
        return relations.wrap(PropertyProtectionFilter(app, options), options, here)

    return _filter
