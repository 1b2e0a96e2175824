"""Databases and Nova replays for the relations tests (not a test module).

Import the fixtures into a test module (``from relations_db import backend  #
noqa: F401``). Each test that takes ``backend`` runs three times: SQLite,
PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306), each on fresh,
empty databases dropped afterwards. A server that is down skips its case,
and fails it under ``CI`` (``tests/conftest.py``).

:func:`replay` sends the exact requests captured from Nova 34
(``tests/unit/relations/data/nova-glance-requests.json``, a copy of
``shared/reference/nova-glance-requests.json``) through a started Glance,
mapping the captured image ids to the ones this Glance gave.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import struct
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from propguard.inprocess import InProcessGlance
from propguard.relations.store import RelationStore, create_engine, upgrade

REQUESTS_FILE = (
    Path(__file__).resolve().parent.parent
    / "unit"
    / "relations"
    / "data"
    / "nova-glance-requests.json"
)

# The capture's placeholders (reference §5).
ALICE_TOKEN = "gAAAAA-USER-TOKEN-of-alice"
ADMIN_TOKEN = "gAAAAA-USER-TOKEN-of-admin"
NOVA_TOKEN = "gAAAAA-SERVICE-TOKEN-of-nova-service-user"
ALICE = "1a2b3c4d5e6f40718293a4b5c6d7e8f9"
ALICE_PROJECT = "6d5c1f2e9b8a47c3a1f0e2d3c4b5a697"
ADMIN = "0f9e8d7c6b5a49382716a5b4c3d2e1f0"
ADMIN_PROJECT = "a0a0a0a0b1b1c2c2d3d3e4e4f5f5a6a6"
NOVA_USER = "nova-service-user-id"
NOVA_PROJECT = "service-project-id"
INSTANCE = "f3e5b7a1-8c2d-4e6f-9a0b-1c2d3e4f5a6b"
REQUEST_ID = "req-0d3c5e2a-1b4f-4c6d-8e9f-a0b1c2d3e4f5"
ADMIN_REQUEST_ID = "req-5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"

#: A 4 KiB qcow2 v2 image (header only, 1 MiB virtual size, no backing file):
#: Glance 33 checks that uploaded data matches the image's disk_format.
QCOW2 = struct.pack(">IIQIIQIIQQIIQ", 0x514649FB, 2, 0, 0, 16, 1 << 20, 0, 0, 0, 0, 0, 0, 0)
QCOW2 += b"\0" * (4096 - len(QCOW2))

#: Every property allowed to members and services: Glance answers 201 to the
#: bodies whatever the caller, so only propguard decides whether to record.
OPEN_RULES = """\
[.*]
create = admin,member,service:service
read = admin,member,reader,service:service
update = admin,member,service:service
delete = admin,member,service:service
"""

POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_ADMIN = "mysql+pymysql://root@127.0.0.1:3306/"


def _unreachable(what: str, exc: Exception) -> None:
    pytest.skip(f"{what} is not reachable ({exc})")  # a failure under CI (tests/conftest.py)


def _admin_engine(url: str):
    import sqlalchemy as sa

    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


@pytest.fixture
def fresh_database() -> Iterator[Callable[[str], str]]:
    """``make(kind) -> URL`` of a new empty database: ``sqlite`` (None), ``postgresql``, ``mariadb``."""
    import sqlalchemy as sa

    made: list[tuple[str, str]] = []

    def make(kind: str) -> str:
        name = f"pg_rel_{uuid.uuid4().hex[:12]}"
        if kind == "postgresql":
            admin, url = POSTGRES_ADMIN, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
            create = f"CREATE DATABASE {name}"
        elif kind == "mariadb":
            admin, url = (
                MARIADB_ADMIN,
                f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4",
            )
            create = f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
        else:
            raise ValueError(kind)
        try:
            engine = _admin_engine(admin)
            with engine.connect() as connection:
                connection.execute(sa.text(create))
        except sa.exc.OperationalError as exc:
            _unreachable(f"{kind} at 127.0.0.1", exc)
        made.append((admin, name))
        return url

    yield make
    for admin, name in made:
        engine = _admin_engine(admin)
        drop = f"DROP DATABASE IF EXISTS {name}"
        if admin.startswith("postgresql"):
            drop += " WITH (FORCE)"
        with engine.connect() as connection:
            connection.execute(sa.text(drop))


@dataclass
class Backend:
    """Where one test case keeps Glance's database and the relations."""

    name: str
    glance_url: str | None  # None: Glance's sqlite file
    relations_url: str
    workdir: Path
    stores: list[RelationStore] = field(default_factory=list)
    layers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        """Stop the writers and close the pools this case opened (servers keep no idle
        connections of finished tests)."""
        for layer in self.layers:
            layer.recorder.close()
            layer.store.dispose()
        for store in self.stores:
            store.dispose()

    def store(self) -> RelationStore:
        store = RelationStore(create_engine(self.relations_url))
        self.stores.append(store)
        return store

    def upgrade(self) -> None:
        engine = create_engine(self.relations_url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, fresh_database) -> Iterator[Backend]:
    """The relations store on SQLite, PostgreSQL and MariaDB (Glance's own DB: its sqlite file)."""
    if request.param == "sqlite":
        url = str(tmp_path / "relations" / "relations.sqlite")
    else:
        url = fresh_database(request.param)
    result = Backend(request.param, None, url, tmp_path)
    yield result
    result.close()


@pytest.fixture
def sqlite_backend(tmp_path: Path) -> Iterator[Backend]:
    """The relations on SQLite only: for checks that do not depend on the database."""
    result = Backend("sqlite", None, str(tmp_path / "relations" / "relations.sqlite"), tmp_path)
    yield result
    result.close()


def start(
    guarded_glance: Callable[..., InProcessGlance],
    backend: Backend,
    rules: str | os.PathLike[str] = OPEN_RULES,
    *,
    upgrade_first: bool = True,
    **options: str,
) -> InProcessGlance:
    """Glance + propguard with relations in ``backend``; the capture's tokens registered."""
    if upgrade_first and backend.name != "sqlite":
        backend.upgrade()
    options.setdefault("relations_outbox", str(backend.workdir / f"outbox-{uuid.uuid4().hex}"))
    glance = guarded_glance(
        rules,
        relations_connection=backend.relations_url,
        database_url=backend.glance_url,
        **options,
    )
    register_capture_tokens(glance)
    backend.layers.append(relations_layer(glance))
    return glance


def register_capture_tokens(glance: InProcessGlance, service_roles=("service",)) -> None:
    glance.user_token(
        ["member", "reader"],
        user_id=ALICE,
        project_id=ALICE_PROJECT,
        user_name="alice",
        project_name="demo",
        token_id=ALICE_TOKEN,
    )
    glance.user_token(
        ["admin", "member", "reader"],
        user_id=ADMIN,
        project_id=ADMIN_PROJECT,
        user_name="admin",
        project_name="admin",
        token_id=ADMIN_TOKEN,
    )
    glance.service_token(
        service_roles, user_id=NOVA_USER, project_id=NOVA_PROJECT, token_id=NOVA_TOKEN
    )


def captured_steps() -> dict[str, list[dict[str, Any]]]:
    """``{step name: requests}`` of the capture (Nova 34, send_service_user_token=true)."""
    data = json.loads(REQUESTS_FILE.read_text())
    return {s["step"]: s["requests"] for s in data["variants"]["send_service_user_token=true"]}


def steps_starting(prefix: str) -> list[tuple[str, list[dict[str, Any]]]]:
    return [(name, reqs) for name, reqs in captured_steps().items() if name.startswith(prefix)]


_IMAGE_PATH = re.compile(r"^/v2/images/([0-9a-f-]{36})")


@dataclass
class Replay:
    """What a replay did: captured image id -> this Glance's, and every (method, path, status)."""

    ids: dict[str, str] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)
    answers: list[tuple[str, str, int]] = field(default_factory=list)

    def status(self, method: str, path_part: str) -> list[int]:
        return [s for m, p, s in self.answers if m == method and path_part in p]


def replay(
    glance: InProcessGlance,
    requests: list[dict[str, Any]],
    state: Replay | None = None,
    *,
    headers: Mapping[str, str | None] | None = None,
    skip: Callable[[dict[str, Any]], bool] = lambda r: False,
) -> Replay:
    """Send ``requests`` as captured; ``headers`` replaces (or, with None, drops) headers."""
    state = state or Replay()
    for captured in requests:
        if skip(captured):
            continue
        path = captured["path"]
        match = _IMAGE_PATH.match(path)
        if match and match[1] not in state.ids:
            # the capture's id of the image created last (its POST answer is not captured)
            state.ids[match[1]] = state.created[-1]
        if match:
            path = path.replace(match[1], state.ids[match[1]])
        sent = {k: v for k, v in captured["headers"]}
        for key, value in (headers or {}).items():
            sent.pop(key, None)
            if value is not None:
                sent[key] = value
        sent.pop("Content-Length", None)
        sent.pop("Transfer-Encoding", None)
        content_type = sent.pop("Content-Type", None)
        body: bytes | None = None
        if "json_body" in captured:
            body = json.dumps(captured["json_body"]).encode()
        elif captured["method"] == "PUT":
            body = QCOW2[: captured["body_len"]] if captured["body_len"] else b""
        response = glance.request(
            captured["method"], path, headers=sent, body=body, content_type=content_type
        )
        state.answers.append((captured["method"], path, response.status_int))
        created = captured["method"] == "POST" and path.rstrip("/") == "/v2/images"
        if created and response.status_int == 201:
            state.created.append(response.json["id"])
    settle(glance)
    return state


def settle(glance: InProcessGlance) -> None:
    """Wait until the relations layer wrote what it took (its writer is asynchronous)."""
    try:
        layer = relations_layer(glance)
    except LookupError:
        return
    assert layer.recorder.flush(10), "the relations writer did not finish"


def all_relations(store: RelationStore) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    from propguard.relations.models import TABLE

    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(TABLE).order_by(TABLE.c.id))
        return [dict(r._mapping) for r in rows]


# -- outages -------------------------------------------------------------------


class TcpProxy:
    """A loopback TCP proxy to a database server that a test can cut and restore.

    ``cut()`` closes the listening socket and every open connection (clients
    get resets, then connection refused); ``restore()`` listens again on the
    same port. The port must be allowed by the ``no_network`` fixture: see
    :func:`allow_port`.
    """

    def __init__(self, upstream_port: int) -> None:
        import socket
        import threading

        self.upstream = ("127.0.0.1", upstream_port)
        self._socket = socket
        self._threading = threading
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self.port = 0
        self._listener: Any = None
        self.restore()

    def restore(self) -> None:
        listener = self._socket.socket(self._socket.AF_INET, self._socket.SOCK_STREAM)
        listener.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = self._socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, server]
            for a, b in ((client, server), (server, client)):
                self._threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source, target) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                with contextlib.suppress(OSError):
                    s.shutdown(self._socket.SHUT_RDWR)

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(self._socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(self._socket.SHUT_RDWR)
            connection.close()

    close = cut


def allow_port(monkeypatch: pytest.MonkeyPatch, config: pytest.Config, port: int) -> None:
    """Let the functional ``no_network`` fixture allow 127.0.0.1:``port`` for this test.

    ``no_network`` reads ``LOCAL_SERVICES`` of ``tests/functional/conftest.py``
    at each connect, so patching the module's global is enough.
    """
    conftest = Path(__file__).resolve().parent / "conftest.py"
    (module,) = [
        plugin
        for plugin in config.pluginmanager.get_plugins()
        if getattr(plugin, "__file__", None) and Path(plugin.__file__).resolve() == conftest
    ]
    monkeypatch.setattr(module, "LOCAL_SERVICES", {*module.LOCAL_SERVICES, ("127.0.0.1", port)})


def cuttable_backend(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    fresh_database: Callable[[str], str],
    server: str,
    workdir: Path,
) -> tuple[Backend, TcpProxy, str]:
    """A fresh ``server`` database reached through a :class:`TcpProxy` the test can cut.

    Returns the backend (its URL through the proxy), the proxy, and the direct
    URL (to look at the database while the proxy is cut). Both are closed at
    the test's end.
    """
    direct = fresh_database(server)
    port = 5432 if server == "postgresql" else 3306
    proxy = TcpProxy(port)
    request.addfinalizer(proxy.close)
    allow_port(monkeypatch, request.config, proxy.port)
    proxied = direct.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{proxy.port}/")
    backend = Backend(server, None, proxied, workdir)
    request.addfinalizer(backend.close)
    return backend, proxy, direct


def wait_drained(glance: InProcessGlance, seconds: float = 15.0) -> bool:
    """Wait (bounded) until the relations layer's outbox is empty: its retry thread wrote it."""
    import time

    outbox = relations_layer(glance).recorder.outbox
    deadline = time.monotonic() + seconds
    while outbox.pending():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def relations_layer(glance: InProcessGlance):
    """The :class:`propguard.relations.filter.RelationsFilter` in ``glance``'s pipeline."""
    from propguard.relations.filter import RelationsFilter

    app, seen = glance.app, set()
    while app is not None and id(app) not in seen:
        seen.add(id(app))
        if isinstance(app, RelationsFilter):
            return app
        app = (
            getattr(app, "_app", None)
            or getattr(app, "app", None)
            or getattr(app, "application", None)
        )
    raise LookupError("no relations layer in the pipeline")


def database_engine(glance: InProcessGlance):
    """An engine on Glance's own database (its sqlite file or ``database_url``)."""
    from glance_api import database

    return database(glance)
