"""A real Glance v2 API, in-process, behind the real keystonemiddleware ``auth_token``.

Why this exists: propguard is a Paste filter that sits between ``auth_token`` and
Glance's ``context`` filter.  Its functional tests, the ``propguard demo``
command and the benchmarks all need the *real* neighbours on both sides -- the
real token middleware (header stripping, service-token role check, 401 logic)
and the real Glance API (sqlite DB, ``file`` store, policies, optional native
property protections) -- without network, servers or Keystone.

The model is Glance's own ``SynchronousAPIBase`` (``glance/tests/functional``),
re-done without ``glance.tests``/``testtools``/``mock``:

* Glance configuration lives in the process-global ``oslo_config.cfg.CONF``;
  :class:`InProcessGlance` sets *overrides* on it and undoes them in
  :meth:`InProcessGlance.stop`, so instances can be created one after another
  in the same process (never two at a time -- see :data:`_ACTIVE`).
* Token validation is supplied by ``keystonemiddleware.fixture.AuthTokenFixture``
  (it patches ``AuthProtocol.fetch_token`` class-wide); everything else in
  ``auth_token`` runs for real.  No memcache is configured (the in-process
  token cache is used) and no identity endpoint is ever contacted.

Example::

    with InProcessGlance(tmpdir) as glance:
        tok = glance.user_token(["member", "reader"])
        app = glance.webtest_app()
        app.post_json("/v2/images", {"name": "x"}, headers=glance.headers(tok))
"""

from __future__ import annotations

import json as _json
import logging
import os
import re
import threading
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import glance.async_
import glance.async_.taskflow_executor  # noqa: F401  registers [taskflow_executor] opts
import glance.common.wsgi  # noqa: F401  registers worker_self_reference_url & co.
import glance_store
import webob
from alembic import command as alembic_command
from glance.api import common as api_common
from glance.api import policy as glance_policy
from glance.common import config as glance_config
from glance.common import property_utils
from glance.db.sqlalchemy import alembic_migrations
from glance.db.sqlalchemy import api as db_api
from glance_store import location as store_location
from keystoneauth1 import fixture as ks_fixture
from keystonemiddleware import fixture as ksm_fixture
from oslo_config import cfg
from oslo_db import options as db_options
from oslo_db.sqlalchemy import enginefacade
from oslo_policy import opts as policy_opts

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_PROJECT",
    "DEFAULT_SERVICE_PROJECT",
    "DEFAULT_SERVICE_USER",
    "DEFAULT_USER",
    "InProcessGlance",
    "authtoken_defaults",
    "recording_filter_factory",
    "recorded_requests",
]

CONF = cfg.CONF

#: Project of tokens made by :meth:`InProcessGlance.user_token` by default.
DEFAULT_PROJECT = "demo-project-id"
#: User of tokens made by :meth:`InProcessGlance.user_token` by default.
DEFAULT_USER = "demo-user-id"
#: Identity of :meth:`InProcessGlance.service_token` (what Nova would send).
DEFAULT_SERVICE_USER = "nova"
DEFAULT_SERVICE_PROJECT = "service-project"
#: Host the fake requests claim to be addressed to (``.example`` is reserved, RFC 2606).
DEFAULT_BASE_URL = "http://glance.example:9292"

#: Paste section names that InProcessGlance itself defines.
_RESERVED_SECTIONS = frozenset(
    {"authtoken", "seen-by-glance", "context", "rootapp", "apiversions", "apiv2app", "healthcheck"}
)
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_PIPELINE = "glance-api"
_RECORDER = "seen-by-glance"


def _drop_oslo_log_fallback_handler() -> None:
    """Remove the bare stderr ``StreamHandler`` oslo.log puts on the root logger.

    ``oslo_log.log.register_options()`` (run when ``glance.common.wsgi_app`` is
    imported) adds one if the root logger has none.  It binds whatever
    ``sys.stderr`` is at import time -- under pytest a capture stream that is
    closed later -- and bypasses pytest's log capture.  Without it, records go
    to pytest's handlers, or to ``logging.lastResort`` (current stderr).  A
    handler configured on purpose (``basicConfig``, dictConfig) has a formatter
    and is left alone.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler) is logging.StreamHandler and handler.formatter is None:
            root.removeHandler(handler)


_drop_oslo_log_fallback_handler()

# Glance reads a process-wide thread-pool model; it may be set once, to "native"
# (re-setting the same value is a no-op).  load_paste_app() doesn't do it for us.
glance.async_.set_threadpool_model("native")

#: Glance CONF, the DB facade, the store scheme map, property_utils.CONFIG and
#: AuthTokenFixture's class-wide patch are all process-global, so at most one
#: instance may be started at a time.  Guarded by ``_LOCK``.
_ACTIVE: InProcessGlance | None = None
_LOCK = threading.Lock()


def authtoken_defaults() -> dict[str, str]:
    """Options given to ``auth_token`` unless overridden (as in a Glance deployment).

    ``delay_auth_decision`` is what Glance ships; the service-token options are
    pinned explicitly because their defaults changed in keystonemiddleware 13.
    """
    return {
        "www_authenticate_uri": "http://keystone.invalid/v3",
        "delay_auth_decision": "true",
        "service_token_roles": "service",
        "service_token_roles_required": "true",
    }


def _paste_value(value: str) -> str:
    """Escape a value for paste.deploy's ConfigParser (``%`` interpolation, multi-line)."""
    value = str(value).replace("%", "%%")
    return value.replace("\n", "\n    ")


# -- configuration and setup (used by InProcessGlance.start) ---------------

#: ``CONF.set_override``-like callable that also remembers what to undo.
_SetOverride = Callable[..., None]


def _checked_extra_filters(
    extra_filters: Iterable[tuple[str, str, Mapping[str, str]]],
) -> list[tuple[str, str, dict[str, str]]]:
    """``extra_filters`` as a list of ``(name, factory, dict)``; rejects bad or reserved names."""
    filters = [(n, f, dict(c or {})) for n, f, c in extra_filters]
    for name, factory, _conf in filters:
        if not _NAME_RE.match(name) or name in _RESERVED_SECTIONS:
            raise ValueError(f"invalid or reserved paste filter name: {name!r}")
        if ":" not in factory:
            raise ValueError(f"filter factory must be 'module:callable', got {factory!r}")
    if len({n for n, _, _ in filters}) != len(filters):
        raise ValueError("duplicate extra filter names")
    return filters


def _abspath_or_none(path: str | os.PathLike[str] | None) -> str | None:
    return os.path.abspath(os.fspath(path)) if path else None


def _make_dirs(*paths: str) -> None:
    for d in paths:
        os.makedirs(d, exist_ok=True)


def _parse_glance_conf() -> None:
    """Fresh Glance CONF: no config files, Glance's defaults, [oslo_policy]/[database] registered."""
    # Rules read by an earlier Glance app stay in this module-global parser
    # and would be *merged* with ours.
    property_utils.CONFIG.clear()
    _drop_oslo_log_fallback_handler()
    # No config files/dirs: don't pick up /etc/glance/glance.conf & co.
    glance_config.parse_args(args=[], default_config_files=[], default_config_dirs=[])
    glance_config.set_config_defaults()
    # Register [oslo_policy] and [database] before overriding them (normally
    # done lazily by the Enforcer / Glance's db loading).
    policy_opts.set_defaults(CONF)
    db_options.set_defaults(CONF)


def _override_glance_options(
    set_override: _SetOverride,
    *,
    workdir: str,
    database_url: str,
    policy_file: str | None,
    staging_dir: str,
    base_url: str,
    property_protection_file: str | None,
    property_protection_rule_format: str,
) -> None:
    """The CONF overrides an in-process Glance needs (DB, policy, staging, taskflow, protections)."""
    set_override("connection", database_url, "database")
    set_override("enforce_new_defaults", True, "oslo_policy")
    set_override("policy_file", policy_file or _write_empty_policy(workdir), "oslo_policy")
    set_override("policy_dirs", [], "oslo_policy")
    set_override("node_staging_uri", f"file://{staging_dir}")
    set_override("worker_self_reference_url", base_url)
    set_override("engine_mode", "serial", "taskflow_executor")
    if property_protection_file:
        set_override("property_protection_file", property_protection_file)
        set_override("property_protection_rule_format", property_protection_rule_format)


def _write_empty_policy(workdir: str) -> str:
    """An explicit empty policy file: Glance's in-code defaults only, nothing from /etc."""
    path = os.path.join(workdir, "etc", "policy.yaml")
    with open(path, "w") as f:
        f.write("{}\n")
    return path


def _fresh_database_engine(db_file: str, database_url: str | None) -> Any:
    """Glance's DB engine over a fresh sqlite file (or the given ``database_url``)."""
    if database_url is None and os.path.exists(db_file):
        os.unlink(db_file)
    db_api.clear_db_env()
    return db_api.get_engine()


def _migrate_database(engine: Any) -> None:
    """Migrate to alembic heads with Glance's own migrations.

    Glance's alembic ``env.py`` takes its engine from oslo.db's *global*
    enginefacade, which binds to the first connection URL ever used in the
    process.  Instead of mocking it (as Glance's tests do) we temporarily
    point the global facade at Glance's own, freshly reset, context manager
    via oslo.db's supported ``patch_factory`` test hook.
    """
    restore = enginefacade._context_manager.patch_factory(db_api._get_main_context_manager())
    try:
        # get_alembic_config() sets configure_logger=False, so alembic
        # doesn't run fileConfig() over the process's (pytest's) logging.
        with warnings.catch_warnings():
            # Glance's own batch migrations trip this alembic warning; harmless noise.
            warnings.filterwarnings("ignore", "Unnamed CHECK constraint", UserWarning)
            alembic_command.upgrade(alembic_migrations.get_alembic_config(engine=engine), "heads")
    finally:
        restore()


def _setup_store(set_override: _SetOverride, store_dir: str) -> None:
    """Single ``file`` store in ``store_dir`` (Glance's setup_single_store)."""
    glance_store.register_opts(CONF)
    set_override("stores", ["file"], "glance_store")
    set_override("default_store", "file", "glance_store")
    set_override("filesystem_store_datadir", store_dir, "glance_store")
    glance_store.create_stores(CONF)
    glance_store.verify_default_store()


def _write_paste_ini(
    path: str,
    *,
    workdir: str,
    authtoken_options: Mapping[str, str],
    extra_filters: Iterable[tuple[str, str, Mapping[str, str]]],
    recorder_sink: str | None,
    auth_factory: str = "keystonemiddleware.auth_token:filter_factory",
) -> None:
    """The paste ini of pipeline ``authtoken <extra filters> [recorder] context rootapp``."""
    extra_filters = list(extra_filters)
    names = [n for n, _, _ in extra_filters]
    if recorder_sink is not None:
        names.append(_RECORDER)
    lines = [
        f"[pipeline:{_PIPELINE}]",
        "pipeline = " + " ".join(["authtoken", *names, "context", "rootapp"]),
        "",
        "[filter:authtoken]",
        f"paste.filter_factory = {auth_factory}",
        *(f"{k} = {_paste_value(v)}" for k, v in authtoken_options.items()),
        "",
    ]
    for name, factory, conf in extra_filters:
        lines += [f"[filter:{name}]", f"paste.filter_factory = {factory}"]
        lines += [f"{k} = {_paste_value(v)}" for k, v in conf.items()]
        lines.append("")
    if recorder_sink is not None:
        lines += [
            f"[filter:{_RECORDER}]",
            "paste.filter_factory = propguard.inprocess:recording_filter_factory",
            f"sink = {recorder_sink}",
            "",
        ]
    lines += [
        "[filter:context]",
        "paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory",
        "",
        "[composite:rootapp]",
        "paste.composite_factory = glance.api:root_app_factory",
        "/: apiversions",
        "/v2: apiv2app",
        "/healthcheck: healthcheck",
        "",
        "[app:apiversions]",
        "paste.app_factory = glance.api.versions:create_resource",
        "",
        "[app:apiv2app]",
        "paste.app_factory = glance.api.v2.router:API.factory",
        "",
        "[app:healthcheck]",
        "paste.app_factory = oslo_middleware:Healthcheck.app_factory",
        "backends = disable_by_file",
        f"disable_by_file_path = {_paste_value(os.path.join(workdir, 'healthcheck_disable'))}",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def _reset_glance_globals(attempt: Callable[..., None]) -> None:
    """Forget Glance's process-global DB env, protection rules, store schemes and enforcer."""
    attempt(db_api.clear_db_env)
    attempt(property_utils.CONFIG.clear)
    attempt(store_location.SCHEME_TO_CLS_MAP.clear)
    glance_policy._ENFORCER = None


class _ConfOverrides:
    """Overrides set on the process-global CONF, undone in reverse order by :meth:`undo`."""

    def __init__(self) -> None:
        self._names: list[tuple[str, str | None]] = []

    def set(self, name: str, value: Any, group: str | None = None) -> None:
        CONF.set_override(name, value, group)
        self._names.append((name, group))

    def undo(self, attempt: Callable[..., Any]) -> None:
        for name, group in reversed(self._names):
            attempt(CONF.clear_override, name, group)
        self._names.clear()


class _Attempts:
    """Calls teardown steps one after another, keeping their errors to re-raise the first."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    def __call__(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # keep tearing down; report the first error
            self.errors.append(exc)


# -- tokens and requests (used by InProcessGlance) --------------------------


def _project_token(
    roles: Iterable[str],
    project_id: str,
    user_id: str,
    user_name: str | None,
    project_name: str | None,
) -> ks_fixture.V3Token:
    """A project-scoped V3 token body with exactly these roles (domains: ``default``)."""
    token = ks_fixture.V3Token(
        user_id=user_id,
        user_name=user_name or user_id,
        user_domain_id="default",
        project_id=project_id,
        project_name=project_name or project_id,
        project_domain_id="default",
    )
    for role in roles:
        token.add_role(name=role)
    return token


def _auth_headers(token: str | None, service_token: str | None) -> dict[str, str]:
    h: dict[str, str] = {}
    if token is not None:
        h["X-Auth-Token"] = token
    if service_token is not None:
        h["X-Service-Token"] = service_token
    return h


def _server_environ(base_url: str) -> dict[str, str]:
    """Server-like WSGI environ bits for requests addressed to ``base_url``."""
    url = webob.Request.blank("/", base_url=base_url)
    env = {
        k: url.environ[k] for k in ("HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "wsgi.url_scheme")
    }
    env.update({"SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"})
    return env


def _blank_request(
    base_url: str,
    method: str,
    path: str,
    headers: Mapping[str, str] | None,
    json: Any,
    body: bytes | None,
    content_type: str | None,
) -> webob.Request:
    """The webob request :meth:`InProcessGlance.request` sends (``json`` wins over ``body``)."""
    req = webob.Request.blank(
        path, base_url=base_url, method=method.upper(), headers=dict(headers or {})
    )
    req.environ.update({"SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"})
    if json is not None:
        body = _json.dumps(json).encode()
        content_type = content_type or "application/json"
    if body is not None:
        req.body = body
    if content_type:
        req.content_type = content_type
    return req


class InProcessGlance:
    """Glance v2 API + ``auth_token`` (+ optional extra filters) as one WSGI app.

    Pipeline: ``authtoken <extra filters...> context rootapp``, mirroring where
    propguard is deployed.  All state (sqlite DB, image files, staging, paste
    ini, policy file) lives under ``workdir``; every :meth:`start` begins with a
    freshly migrated, empty DB.  Tokens live in the AuthTokenFixture and die
    with :meth:`stop`.

    ``extra_filters``: ``(name, "module:filter_factory", local_conf)``; values
    are written to the paste ini (``%`` is escaped for you).
    ``record_requests``: also insert a recorder just before ``context``, see :attr:`seen`.
    ``base_url``: the scheme/host/port requests claim (``HTTP_HOST`` & co).
    ``database_url``: an empty database to migrate and use instead of sqlite.
    ``glance_options``: more of Glance's options, ``{"name": v}`` or
    ``{"group.name": v}`` (e.g. ``{"image_property_quota": -1}``).
    ``auth_filter``: ``("module:filter_factory", local_conf)`` of another auth
    layer in ``auth_token``'s place (e.g. propguard's JWT filter,
    ``("propguard.jwt.filter:filter_factory", {...})``); ``authtoken_options``
    are then not used, and the fixture tokens of :meth:`user_token` are not
    accepted by it.
    """

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        extra_filters: Iterable[tuple[str, str, Mapping[str, str]]] = (),
        glance_property_protection_file: str | os.PathLike[str] | None = None,
        glance_property_protection_rule_format: str = "roles",
        glance_policy_file: str | os.PathLike[str] | None = None,
        authtoken_options: Mapping[str, str] | None = None,
        base_url: str = DEFAULT_BASE_URL,
        record_requests: bool = False,
        database_url: str | None = None,
        glance_options: Mapping[str, Any] | None = None,
        auth_filter: tuple[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.workdir = os.path.abspath(os.fspath(workdir))
        self.auth_filter = auth_filter
        self.glance_options = dict(glance_options or {})
        self.extra_filters = _checked_extra_filters(extra_filters)
        self.glance_property_protection_file = _abspath_or_none(glance_property_protection_file)
        self.glance_property_protection_rule_format = glance_property_protection_rule_format
        self.glance_policy_file = _abspath_or_none(glance_policy_file)
        self.authtoken_options = {**authtoken_defaults(), **dict(authtoken_options or {})}
        self.base_url = base_url.rstrip("/")
        self.record_requests = record_requests
        self._sink = f"inprocess-{uuid.uuid4().hex}"

        self.app: Any = None
        self.paste_file = os.path.join(self.workdir, "glance-api-paste.ini")
        self.db_file = os.path.join(self.workdir, "glance.sqlite")
        #: SQLAlchemy URL of an empty database to use instead of the sqlite file
        #: (e.g. MariaDB, whose case-insensitive collation matters to list filters).
        self.database_url = database_url
        self.store_dir = os.path.join(self.workdir, "images")
        self.staging_dir = os.path.join(self.workdir, "staging")
        self._overrides = _ConfOverrides()
        self._auth_fixture: ksm_fixture.AuthTokenFixture | None = None
        self._engine: Any = None
        self._started = False

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        """Configure Glance's CONF, create+migrate the DB, stores, load the app, fake Keystone."""
        global _ACTIVE
        with _LOCK:
            if self._started:
                raise RuntimeError("InProcessGlance already started")
            if _ACTIVE is not None:
                raise RuntimeError(
                    "another InProcessGlance is running in this process; stop() it first "
                    "(Glance's configuration and AuthTokenFixture are process-global)"
                )
            _ACTIVE = self
            self._started = True
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        _make_dirs(
            self.workdir, self.store_dir, self.staging_dir, os.path.join(self.workdir, "etc")
        )
        _parse_glance_conf()
        _override_glance_options(
            self._overrides.set,
            workdir=self.workdir,
            database_url=self.database_url or f"sqlite:///{self.db_file}",
            policy_file=self.glance_policy_file,
            staging_dir=self.staging_dir,
            base_url=self.base_url,
            property_protection_file=self.glance_property_protection_file,
            property_protection_rule_format=self.glance_property_protection_rule_format,
        )
        for key, value in self.glance_options.items():
            group, _, name = key.rpartition(".")
            self._overrides.set(name, value, group or None)
        # Kept on self before migrating, so stop() disposes it if the migration fails.
        self._engine = _fresh_database_engine(self.db_file, self.database_url)
        _migrate_database(self._engine)
        _setup_store(self._overrides.set, self.store_dir)
        _SINKS[self._sink] = []  # kept after stop() so tests can inspect it
        _write_paste_ini(
            self.paste_file,
            workdir=self.workdir,
            authtoken_options=self.auth_filter[1] if self.auth_filter else self.authtoken_options,
            extra_filters=self.extra_filters,
            recorder_sink=self._sink if self.record_requests else None,
            **({"auth_factory": self.auth_filter[0]} if self.auth_filter else {}),
        )
        self._auth_fixture = ksm_fixture.AuthTokenFixture()
        self._auth_fixture.setUp()
        self.app = glance_config.load_paste_app(_PIPELINE, conf_file=self.paste_file)

    def stop(self) -> None:
        """Undo :meth:`start` (idempotent) so another instance can start in this process."""
        global _ACTIVE
        if not self._started:
            return
        attempt = _Attempts()
        self.app = None
        if self._auth_fixture is not None:
            attempt(self._auth_fixture.cleanUp)
            self._auth_fixture = None
        attempt(_stop_glance_workers)
        if self._engine is not None:
            attempt(self._engine.dispose)
            self._engine = None
        _reset_glance_globals(attempt)
        self._overrides.undo(attempt)
        # Drops parsed state and the value cache; the next start() parses again.
        attempt(CONF.reset)
        with _LOCK:
            self._started = False
            if _ACTIVE is self:
                _ACTIVE = None
        if attempt.errors:
            raise attempt.errors[0]

    def __enter__(self) -> InProcessGlance:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def started(self) -> bool:
        return self._started

    @property
    def seen(self) -> list[dict[str, Any]]:
        """Requests as they reached Glance's ``context`` filter (needs ``record_requests=True``).

        Lets tests assert what Glance was actually given after ``auth_token``
        and the extra filters rewrote the request; see :func:`recording_filter_factory`.
        """
        if not self.record_requests:
            raise RuntimeError("construct InProcessGlance(record_requests=True) to record requests")
        return recorded_requests(self._sink)

    # -- tokens ------------------------------------------------------------

    def _fixture(self) -> ksm_fixture.AuthTokenFixture:
        if self._auth_fixture is None:
            raise RuntimeError("InProcessGlance is not started")
        return self._auth_fixture

    def add_token(self, token: Mapping[str, Any], token_id: str | None = None) -> str:
        """Register any ``keystoneauth1.fixture.V3Token`` (system scope, domains...) and return its id."""
        return self._fixture().add_token(token, token_id=token_id or uuid.uuid4().hex)

    def user_token(
        self,
        roles: Iterable[str],
        *,
        project_id: str = DEFAULT_PROJECT,
        user_id: str = DEFAULT_USER,
        user_name: str | None = None,
        project_name: str | None = None,
        token_id: str | None = None,
    ) -> str:
        """A valid project-scoped user token with exactly these roles (no implied roles)."""
        token = _project_token(roles, project_id, user_id, user_name, project_name)
        return self.add_token(token, token_id)

    def service_token(
        self,
        roles: Iterable[str] = ("service",),
        *,
        user_id: str = DEFAULT_SERVICE_USER,
        project_id: str = DEFAULT_SERVICE_PROJECT,
        token_id: str | None = None,
    ) -> str:
        """A token to send as ``X-Service-Token`` (as Nova/Cinder do); roles default to ``service``."""
        return self.user_token(
            roles, user_id=user_id, project_id=project_id, project_name="service", token_id=token_id
        )

    @staticmethod
    def headers(token: str | None, service_token: str | None = None) -> dict[str, str]:
        """Auth headers for a request; ``None`` token means anonymous."""
        return _auth_headers(token, service_token)

    # -- requests ----------------------------------------------------------

    def environ(self) -> dict[str, str]:
        """Server-like WSGI environ bits, so Glance builds correct absolute links."""
        return _server_environ(self.base_url)

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> webob.Response:
        """Call the pipeline directly (low overhead, for benchmarks); returns a webob Response."""
        if self.app is None:
            raise RuntimeError("InProcessGlance is not started")
        req = _blank_request(self.base_url, method, path, headers, json, body, content_type)
        return req.get_response(self.app)

    def webtest_app(self, **kwargs: Any) -> Any:
        """A ``webtest.TestApp`` over the pipeline with a server-like environ."""
        import webtest  # test/demo dependency only

        if self.app is None:
            raise RuntimeError("InProcessGlance is not started")
        extra = {**self.environ(), **kwargs.pop("extra_environ", {})}
        return webtest.TestApp(self.app, extra_environ=extra, **kwargs)


#: sink name -> requests recorded by :func:`recording_filter_factory`.
_SINKS: dict[str, list[dict[str, Any]]] = {}


def recorded_requests(sink: str) -> list[dict[str, Any]]:
    """The (live) list a ``recording_filter_factory`` filter with this ``sink`` appends to."""
    return _SINKS.setdefault(sink, [])


def recording_filter_factory(global_conf: Mapping[str, str], sink: str = "default", **_local: str):
    """Paste filter that records ``method``, ``path`` and all request headers, then passes on.

    Why: to observe what a pipeline position receives (e.g. which ``X-Service-*``
    headers ``auth_token`` left) without touching Glance.  Usable in
    ``extra_filters`` as ``("probe", "propguard.inprocess:recording_filter_factory", {"sink": "x"})``
    and read back with :func:`recorded_requests`.
    """
    records = recorded_requests(sink)

    def _filter(app):
        def _record(environ, start_response):
            req = webob.Request(environ)
            records.append(
                {"method": req.method, "path": req.path_qs, "headers": dict(req.headers)}
            )
            return app(environ, start_response)

        return _record

    return _filter


def _stop_glance_workers() -> None:
    """Stop process-global Glance workers like SynchronousAPIBase.tearDown does.

    The cache prefetch worker and the cached ``tasks_pool`` executor outlive the
    app otherwise (load_paste_app() never runs wsgi_app.init_app()'s atexit).
    """
    try:
        from glance.api.v2 import cached_images
    except Exception:  # pragma: no cover - optional module
        cached_images = None
    if cached_images is not None and cached_images.WORKER is not None:
        try:
            cached_images.WORKER.terminate()
        finally:
            cached_images.WORKER = None
    pool_model = api_common._CACHED_THREAD_POOL.pop("tasks_pool", None)
    if pool_model is not None:
        pool_model.pool.shutdown(wait=False, cancel_futures=True)
