"""``/readiness`` inside a real glance-api, exactly as docs/operations.md says to serve it.

Glance 33 under uWSGI with two worker processes, propguard in its pipeline
(``paste.ini.example``, the JWT filter in auth_token's place, its keys from a
``jwks_url`` this test serves) and the relations store on PostgreSQL through
a loopback TCP proxy this test cuts. The ``[app:readiness]`` and the
``/readiness`` line are read from the ``glance-api-paste.ini (readiness)``
block of docs/operations.md, only ``disable_by_file_path`` and
``outbox_max_lag`` changed (a test does not wait 5 minutes). Shown: 503
while the JWKS endpoint fails past ``jwks_max_stale``, and while a relation
waits in the outbox past ``outbox_max_lag`` with the store cut (not while the
store is merely cut with nothing waiting); 200 again after each recovers;
``/healthcheck`` 200 throughout. Every state is asked several times: each of
the two workers must answer it.

Runtime: about 30-60 s (db sync, uWSGI start) on the 2-core machine.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import relations_db
from proxy_harness import ServerThread
from proxy_processes import free_port
from relations_db import OPEN_RULES, all_relations, cuttable_backend

from propguard.demo_live import glance as glance_mod
from propguard.demo_live.main import JWT_AUDIENCE, JWT_ISSUER
from propguard.demo_live.supervisor import Supervisor
from propguard.jwt.token_cli import ensure_key_pair, mint

pytestmark = pytest.mark.glance

fresh_database = relations_db.fresh_database

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
#: Asked this many times per state: both workers must say it.
ASKS = 8


def documented_readiness() -> tuple[dict[str, str], str]:
    """``[app:readiness]``'s options and the composite's ``/readiness`` target, as documented."""
    text = DOCS.read_text()
    match = re.search(r"```ini\n# glance-api-paste\.ini \(readiness\)\n(.*?)```", text, re.S)
    assert match, "docs/operations.md lost its glance-api readiness block"
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in match.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None
        key, _, value = line.partition("=" if not line.startswith("/") else ":")
        current[key.strip()] = value.strip()
    return sections["app:readiness"], sections["composite:glance-api-keystone"]["/readiness"]


class Jwks:
    """The IdP's JWKS endpoint; ``failing`` makes every fetch fail (503)."""

    def __init__(self, document: bytes, allow: Callable[[int], None]) -> None:
        self.document = document
        self.failing = False
        allow(0)  # cheroot resolves its bind address ("127.0.0.1", 0)
        self.server = ServerThread(self, allow=allow)
        self.url = f"{self.server.url}/jwks"

    def __call__(self, environ, start_response):
        if self.failing:
            start_response("503 Service Unavailable", [("Content-Length", "0")])
            return [b""]
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(self.document)))],
        )
        return [self.document]


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _readiness(base: str) -> list[tuple[int, str]]:
    return [_get(f"{base}/readiness", {"Accept": "application/json"}) for _ in range(ASKS)]


def _until(base: str, status: int, timeout: float = 30) -> list[tuple[int, str]]:
    """Poll until every one of ``ASKS`` answers in a row has ``status``; the last round."""
    deadline = time.monotonic() + timeout
    while True:
        answers = _readiness(base)
        if all(code == status for code, _ in answers):
            return answers
        assert time.monotonic() < deadline, f"readiness never settled on {status}: {answers}"
        time.sleep(0.2)


def test_readiness_inside_glance_api_follows_jwks_and_relations(
    tmp_path: Path, allow_loopback_port, fresh_database, request, monkeypatch
) -> None:
    options, target = documented_readiness()
    assert target == "readiness"
    assert options["paste.app_factory"] == "propguard.health:readiness_app_factory"
    readiness = {
        **options,
        "disable_by_file_path": str(tmp_path / "hc_disable"),
        "outbox_max_lag": "2",
    }
    keys = tmp_path / "jwt"
    key, kid = ensure_key_pair(keys, "RS256")
    jwks = Jwks((keys / "jwks.json").read_bytes(), allow_loopback_port)
    request.addfinalizer(jwks.server.stop)
    backend, proxy, direct = cuttable_backend(
        request, monkeypatch, fresh_database, "postgresql", tmp_path
    )
    backend.upgrade()
    rules = tmp_path / "rules.conf"
    rules.write_text(OPEN_RULES)
    sup = Supervisor(logdir=str(tmp_path))
    request.addfinalizer(sup.stop_all)
    port = free_port()
    allow_loopback_port(port)
    info = glance_mod.start_glance(
        sup,
        str(tmp_path / "glance"),
        port,
        lambda text: None,
        authtoken=None,
        placement="paste",
        jwt={
            "iss": JWT_ISSUER,
            "audiences": JWT_AUDIENCE,
            "algorithms": "RS256",
            "jwks_url": jwks.url,
            "jwks_refresh_interval": "1",
            "jwks_refetch_cooldown": "1",
            "jwks_max_stale": "3",
            "delay_auth_decision": "true",
            "service_token_roles": "service",
        },
        propguard_options={
            "rules_file": str(rules),
            "reload_on_sighup": "false",
            "relations_connection": backend.relations_url,
            "relations_outbox": str(tmp_path / "relations.outbox"),
            "relations_timeout": "1",
            "relations_retry_interval": "0.5",
        },
        notifications=None,
        readiness=readiness,
        processes=2,
    )
    base = info.url

    def token(user: str, roles: list[str], project: str) -> str:
        return mint(
            key=key,
            alg="RS256",
            issuer=JWT_ISSUER,
            audience=JWT_AUDIENCE,
            subject=user,
            roles=roles,
            project_id=project,
            kid=kid,
        )

    def healthy() -> bool:
        return _get(f"{base}/healthcheck")[0] == 200

    # Both workers fetched their keys: ready, and tokens verify.
    _until(base, 200)
    member = {"X-Auth-Token": token("alice", ["member", "reader"], "demo")}
    assert _get(f"{base}/v2/images", member)[0] == 200

    # The IdP's JWKS endpoint fails: past jwks_max_stale (3 s) every worker is not ready.
    jwks.failing = True
    answers = _until(base, 503)
    assert all("JWKS STALE" in body for _, body in answers), answers
    assert healthy()
    assert _get(f"{base}/v2/images", member)[0] == 401  # what readiness warned of
    jwks.failing = False
    _until(base, 200)
    assert _get(f"{base}/v2/images", member)[0] == 200

    # The relations store is cut: nothing waits, so still ready.
    proxy.cut()
    assert all(code == 200 for code, _ in _readiness(base))
    # Nova's snapshot while it is cut: Glance answers 201, the relation waits in the
    # outbox, and past outbox_max_lag (2 s) no worker is ready.
    instance = str(uuid.uuid4())
    nova = token("nova", ["service"], "service")
    body = json.dumps(
        {
            "name": "snap",
            "disk_format": "raw",
            "container_format": "bare",
            "image_type": "snapshot",
            "instance_uuid": instance,
        }
    ).encode()
    post = urllib.request.Request(
        f"{base}/v2/images",
        data=body,
        method="POST",
        headers={**member, "X-Service-Token": nova, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(post, timeout=30) as answer:
        assert answer.status == 201
        image_id = json.loads(answer.read())["id"]
    answers = _until(base, 503)
    assert all("RELATIONS OUTBOX BACKLOG" in body for _, body in answers), answers
    assert healthy()

    # The store is back: a worker's writer drains the outbox, and every worker is ready.
    proxy.restore()
    _until(base, 200)
    assert healthy()
    store = relations_db.Backend("postgresql", None, direct, tmp_path).store()
    try:
        (relation,) = all_relations(store)
        assert (relation["image_id"], relation["instance_uuid"]) == (image_id, instance)
    finally:
        store.dispose()
