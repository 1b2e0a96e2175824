"""Fixtures for functional tests against a real in-process Glance v2 API.

Why: every functional test needs Glance + keystonemiddleware ``auth_token``
exactly as deployed, but isolated (own sqlite DB / file store in ``tmp_path``)
and without network.  Glance's configuration is process-global, so instances
run one at a time; ``glance_factory`` stops whatever it started at teardown.

The starters: ``glance_factory`` (any InProcessGlance), ``guarded_glance``
(propguard in the pipeline, Glance's own protections off) and
``native_glance`` (Glance enforcing the rules itself). Constants and request
helpers are in ``glance_api``, rule texts in ``functional_rules``, Glance's
own rule files in ``tests/lint_fixtures/glance/`` (``data_paths``).
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import pytest
from data_paths import GLANCE_ROLES_FILE
from glance_api import propguard_filter

from propguard.inprocess import InProcessGlance

GlanceFactory = Callable[..., InProcessGlance]
RulesPath = Callable[[str | os.PathLike[str]], Path]
GuardedGlance = Callable[..., InProcessGlance]
NativeGlance = Callable[..., InProcessGlance]


#: The machine's own database/broker services that tests may use on purpose.
LOCAL_SERVICES = {("127.0.0.1", 3306), ("127.0.0.1", 5432), ("127.0.0.1", 5672)}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything (e.g. auth_token discovery or memcache) tries the network.

    Only the local services in ``LOCAL_SERVICES`` (MariaDB, PostgreSQL,
    RabbitMQ on loopback) may be reached, by tests that use them on purpose.
    """

    def _refuse(*args, **kwargs):
        raise AssertionError(f"functional test attempted network access: {args!r}")

    real_connect = socket.socket.connect
    real_create_connection = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo

    def _allowed(host, port) -> bool:
        return (host, port) in LOCAL_SERVICES or (host, port) in _LOOPBACK_ALLOWED

    def _connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _allowed(*address[:2]):
            _refuse(address)
        return real_connect(sock, address)

    def _create_connection(address, *args, **kwargs):
        if not _allowed(*address[:2]):
            _refuse(address)
        return real_create_connection(address, *args, **kwargs)

    def _getaddrinfo(host, port, *args, **kwargs):
        if not _allowed(host, port):
            _refuse(host, port)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", _connect)
    monkeypatch.setattr(socket, "create_connection", _create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", _getaddrinfo)


#: Loopback ports the running test opened itself (see ``allow_loopback_port``).
_LOOPBACK_ALLOWED: set[tuple[str, int]] = set()


@pytest.fixture
def allow_loopback_port() -> Iterator[Callable[[int], None]]:
    """Return ``allow(port)``: let this test connect to ``127.0.0.1:port`` (a server it started).

    ``no_network`` refuses every other address; the allowance ends with the test.
    """

    def allow(port: int) -> None:
        _LOOPBACK_ALLOWED.update({("127.0.0.1", port), ("localhost", port)})

    yield allow
    _LOOPBACK_ALLOWED.clear()


_DOUBLE_SLASH = (
    "sends //v2/... request targets, which the harness's cheroot server refuses as an "
    "absolute URI (400) before any app runs; test_proxy_http sends //v2 and /v2//images "
    "through propguard serve (gunicorn takes them as paths)"
)

#: Suites whose guarded-Glance tests also run through ``propguard serve``'s
#: pipeline over HTTP (``glance_transport`` "proxy", marker ``proxy``), and the
#: tests of them that do not apply to a proxy, with why (docs/proxy.md).
PROXY_SUITES: dict[str, dict[str, str]] = {
    "test_defects": {},
    "test_side_routes": {
        "test_image_tasks_route_hides_task_input": _DOUBLE_SLASH,
    },
    "test_robustness": {
        "test_paths_glance_normalises_are_checked": _DOUBLE_SLASH,
        "test_without_auth_token_identity_headers_are_not_trusted": "builds pipelines of "
        "its own from Glance's paste file (no auth_token): an in-pipeline deployment only",
        "test_image_data_streams_through_untouched": "its probe counts reads of a WSGI input "
        "object in one process; test_proxy_streaming measures the proxy's streaming",
        "test_short_reads_of_the_request_body": "short reads are a property of the WSGI "
        "input object; over HTTP the server's reader is used (chunked and Content-Length "
        "bodies are in test_proxy_streaming)",
    },
    "test_quota": {},
    "test_injection": {},
    "test_gzip": {},
    "test_policy_cases": {},
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "proxy: the request goes through propguard serve's pipeline over HTTP"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the tests of ``PROXY_SUITES`` that use ``guarded_glance`` both in-pipeline and proxied."""
    module = metafunc.module.__name__.rpartition(".")[2]
    if module not in PROXY_SUITES or "guarded_glance" not in metafunc.fixturenames:
        return
    transports = ["filter"]
    if metafunc.function.__name__ not in PROXY_SUITES[module]:
        transports.append(pytest.param("proxy", marks=pytest.mark.proxy))
    metafunc.parametrize("glance_transport", transports, indirect=True)


@pytest.fixture
def glance_transport(request: pytest.FixtureRequest) -> str:
    """How the guarded Glance is reached: "filter" (propguard in Glance's pipeline, in-process)
    or "proxy" (client → HTTP → serve.ini pipeline → HTTP → Glance)."""
    return getattr(request, "param", "filter")


@pytest.fixture
def glance_factory(tmp_path: Path) -> Iterator[GlanceFactory]:
    """Return ``make(**InProcessGlance kwargs) -> started instance``; all are stopped at teardown.

    Each instance gets its own directory under ``tmp_path``.  Stop one before
    starting the next (start() raises otherwise).
    """
    instances: list[InProcessGlance] = []

    def make(**kwargs) -> InProcessGlance:
        glance = InProcessGlance(tmp_path / f"glance-{len(instances)}", **kwargs)
        instances.append(glance)
        glance.start()
        return glance

    yield make
    for glance in reversed(instances):
        glance.stop()


@pytest.fixture
def glance(glance_factory: GlanceFactory) -> InProcessGlance:
    """A started Glance with no extra filters, recording what reaches its context filter."""
    return glance_factory(record_requests=True)


@pytest.fixture
def rules_path(tmp_path: Path) -> RulesPath:
    """Return ``path(rules) -> Path``: a path is kept, rule TEXT is written to a new file.

    Only ``os.PathLike`` counts as a path; a ``str`` is always the rules' text
    (written to ``tmp_path/rules-N.conf``).
    """
    written = 0

    def path(rules: str | os.PathLike[str]) -> Path:
        nonlocal written
        if not isinstance(rules, str):
            return Path(rules)
        target = tmp_path / f"rules-{written}.conf"
        written += 1
        target.write_text(rules)
        return target

    return path


@pytest.fixture
def guarded_glance(
    glance_factory: GlanceFactory,
    rules_path: RulesPath,
    glance_transport: str,
    request: pytest.FixtureRequest,
    allow_loopback_port: Callable[[int], None],
) -> GuardedGlance:
    """Return ``start(rules, **options) -> started Glance`` with propguard in its pipeline.

    Glance's own property protections are off; propguard (right after
    auth_token, before Glance's context filter) enforces ``rules`` (a path,
    or the rules' text) with the paste ``options`` (``reload_on_sighup``
    defaults to ``"false"``, see :func:`glance_api.propguard_filter`).
    ``filters_after``: more paste filters right after propguard. The other
    keyword arguments are ``InProcessGlance``'s.
    """

    def start(
        rules: str | os.PathLike[str],
        *,
        filters_after: Iterable[tuple[str, str, Mapping[str, str]]] = (),
        record_requests: bool = False,
        glance_policy_file: str | None = None,
        authtoken_options: Mapping[str, str] | None = None,
        database_url: str | None = None,
        glance_options: Mapping[str, object] | None = None,
        **options: str,
    ) -> InProcessGlance:
        if glance_transport == "proxy":
            from proxy_harness import start_proxied

            return start_proxied(
                request,
                glance_factory,
                propguard_filter(rules_path(rules), **options),
                filters_after=filters_after,
                record_requests=record_requests,
                glance_policy_file=glance_policy_file,
                authtoken_options=authtoken_options,
                database_url=database_url,
                glance_options=glance_options,
            )
        return glance_factory(
            extra_filters=[propguard_filter(rules_path(rules), **options), *filters_after],
            record_requests=record_requests,
            glance_policy_file=glance_policy_file,
            authtoken_options=authtoken_options,
            database_url=database_url,
            glance_options=glance_options,
        )

    return start


@pytest.fixture
def native_glance(glance_factory: GlanceFactory, rules_path: RulesPath) -> NativeGlance:
    """Return ``start(rules, **kwargs) -> started Glance`` enforcing ``rules`` itself (no propguard).

    ``rules``: a path or the rules' text, as Glance's ``property_protection_file``;
    ``kwargs``: ``InProcessGlance``'s (e.g. ``glance_property_protection_rule_format``).
    """

    def start(rules: str | os.PathLike[str], **kwargs) -> InProcessGlance:
        return glance_factory(glance_property_protection_file=str(rules_path(rules)), **kwargs)

    return start


@pytest.fixture
def glance_test_rules_file(tmp_path: Path) -> Path:
    """Glance's own test property-protections file (roles format) in a temp file.

    A copy of ``tests/lint_fixtures/glance/property-protections.conf``
    (verbatim ``glance/tests/etc/property-protections.conf``, glance 33.0.0).
    """
    path = tmp_path / "property-protections.conf"
    shutil.copyfile(GLANCE_ROLES_FILE, path)
    return path


MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    """A fresh, empty MariaDB database; fails loudly in CI when MariaDB is down."""
    import pymysql

    try:
        connection = pymysql.connect(**MARIADB, connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        message = f"MariaDB at 127.0.0.1:3306 is not reachable ({exc}); start it with `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`"
        pytest.skip(message)  # a failure under CI (tests/conftest.py)
    name = f"propguard_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    try:
        yield f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.close()


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Each test twice: on Glance's sqlite file (None) and on a fresh MariaDB database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("mariadb_url")
