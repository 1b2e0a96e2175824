"""``name_collation = auto`` in a real glance-api under uWSGI, as the live demo runs it.

Glance 33 under uWSGI (``glance.wsgi.api``) parses its config files
(``$OS_GLANCE_CONFIG_DIR/glance-api.conf``), then builds the paste pipeline;
oslo.db registers ``[database]`` only later. Before, ``auto`` could not read
the connection there (``NoSuchOptError``), took ``mysql_any`` and decided
``Licence_key`` as ``licence_key``: a section written with capitals matched
nothing and a member read what ``propguard explain`` says is DENIED.

Here propguard sits in Glance's pipeline (``paste.ini.example``, the JWT
filter in auth_token's place: no Keystone needed) with ``name_collation``
left ``auto``, Glance on sqlite and on a fresh MariaDB database. Outside
glance-api (``propguard serve``) ``auto`` refuses to start, naming the option.

Runtime: about 20-40 s per Glance on the 2-core machine (db sync, uWSGI start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_processes import free_port, write_ini

from propguard.demo_live import glance as glance_mod
from propguard.demo_live.main import JWT_AUDIENCE, JWT_ISSUER
from propguard.demo_live.proxy import jwt_options
from propguard.demo_live.supervisor import Supervisor
from propguard.jwt.token_cli import ensure_key_pair, mint

pytestmark = pytest.mark.glance

CAPITALISED = """\
[^Licence_]
create = admin
read = admin
update = admin
delete = admin

[.*]
create = @
read = @
update = @
delete = @
"""

LOWER = CAPITALISED.replace("[^Licence_]", "[^licence_]")

IMAGE = {"disk_format": "raw", "container_format": "bare", "visibility": "shared"}


class UwsgiGlance:
    """Glance under uWSGI with propguard in its pipeline; requests with minted JWTs."""

    def __init__(self, workdir: Path, rules: str, database: str | None, allow) -> None:
        self.rules = workdir / "rules.conf"
        workdir.mkdir(parents=True, exist_ok=True)
        self.rules.write_text(rules)
        keys = workdir / "jwt"
        self.key, self.kid = ensure_key_pair(keys, "RS256")
        self.sup = Supervisor(logdir=str(workdir))
        self.log = workdir / "glance.log"
        port = free_port()
        allow(port)
        try:
            self.info = glance_mod.start_glance(
                self.sup,
                str(workdir / "glance"),
                port,
                lambda text: None,
                authtoken=None,
                placement="paste",
                jwt=jwt_options(str(keys), JWT_ISSUER, JWT_AUDIENCE),
                propguard_options={
                    "rules_file": str(self.rules),
                    "reload_on_sighup": "false",
                    # name_collation left to its default: auto
                },
                notifications=None,
                database=database,
            )
        except BaseException:
            self.sup.stop_all()
            raise

    def token(self, user: str, roles: list[str]) -> str:
        return mint(
            key=self.key,
            alg="RS256",
            issuer=JWT_ISSUER,
            audience=JWT_AUDIENCE,
            subject=user,
            roles=roles,
            project_id="demo",
            kid=self.kid,
        )

    def request(self, token: str, method: str, path: str, body=None, patch=False):
        data = None if body is None else json.dumps(body).encode()
        headers = {"X-Auth-Token": token}
        if body is not None:
            headers["Content-Type"] = (
                "application/openstack-images-v2.1-json-patch" if patch else "application/json"
            )
        req = urllib.request.Request(
            self.info.url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def stop(self) -> None:
        self.sup.stop_all()

    def glance_log(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def uwsgi_glance(tmp_path, allow_loopback_port) -> Iterator:
    started: list[UwsgiGlance] = []

    def start(rules: str, database: str | None = None) -> UwsgiGlance:
        glance = UwsgiGlance(tmp_path / f"g{len(started)}", rules, database, allow_loopback_port)
        started.append(glance)
        return glance

    yield start
    for glance in started:
        glance.stop()


def _explain(rules: Path, name: str, op: str) -> bool:
    """``propguard explain``'s decision for a member (the command itself)."""
    done = subprocess.run(
        [sys.executable, "-m", "propguard.cli", "explain", "--rules", str(rules),
         "--roles", "member,reader", "--format", "json", name, op],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(done.stdout)["decisions"][0]["allowed"]


def test_sqlite_glance_compares_exactly_and_capitals_behave_as_explain_says(uwsgi_glance):
    glance = uwsgi_glance(CAPITALISED)
    admin = glance.token("admin", ["admin", "member", "reader"])
    member = glance.token("alice", ["member", "reader"])
    status, image = glance.request(
        admin, "POST", "/v2/images",
        {"name": "licensed", **IMAGE, "Licence_key": "LIC-42", "build": "2"},
    )  # fmt: skip
    assert status == 201, image
    path = f"/v2/images/{image['id']}"

    assert _explain(glance.rules, "Licence_key", "read") is False
    status, seen = glance.request(member, "GET", path)
    assert status == 200
    assert "Licence_key" not in seen and "LIC-42" not in json.dumps(seen)
    assert seen["build"] == "2"

    status, answer = glance.request(
        member, "PATCH", path, [{"op": "replace", "path": "/Licence_key", "value": "FREE"}],
        patch=True,
    )  # fmt: skip
    assert status == 409, answer
    status, answer = glance.request(
        member, "PATCH", path, [{"op": "add", "path": "/Licence_key", "value": "FREE"}],
        patch=True,
    )  # fmt: skip
    assert status == 403, answer

    # Exact names, as sqlite stores them: Build is another property than build.
    status, answer = glance.request(
        member, "PATCH", path, [{"op": "add", "path": "/Build", "value": "9"}], patch=True
    )
    assert status == 200, answer
    assert (answer["build"], answer["Build"]) == ("2", "9")
    assert "Licence_key" not in answer
    status, stored = glance.request(admin, "GET", path)
    assert (stored["Licence_key"], stored["build"], stored["Build"]) == ("LIC-42", "2", "9")
    log = glance.glance_log()
    assert "name_collation = auto: Glance's database is sqlite" in log, log[-3000:]
    assert "compared as binary" in log
    assert "NoSuchOptError" not in log


def test_mariadb_glance_folds_names_as_its_schema(uwsgi_glance, mariadb_url):
    """On MariaDB auto is the utf8mb3_general_ci of Glance's schema: spellings fold."""
    glance = uwsgi_glance(LOWER, database=mariadb_url)
    log = glance.glance_log()
    assert "name_collation = auto: Glance's database is mysql" in log, log[-3000:]
    assert "compared as utf8mb3_general_ci" in log
    admin = glance.token("admin", ["admin", "member", "reader"])
    member = glance.token("alice", ["member", "reader"])
    status, image = glance.request(
        admin, "POST", "/v2/images", {"name": "licensed", **IMAGE, "LICENCE_key": "LIC-42"}
    )
    assert status == 201, image
    path = f"/v2/images/{image['id']}"
    status, seen = glance.request(member, "GET", path)
    assert status == 200
    # Decided as licence_key ([^licence_], admin only); exact comparison would show it.
    assert "LICENCE_key" not in seen and "LIC-42" not in json.dumps(seen)
    status, stored = glance.request(admin, "GET", path)
    assert stored["LICENCE_key"] == "LIC-42"


def test_mariadb_glance_refuses_a_capitalised_section_no_folded_name_reaches(
    uwsgi_glance, mariadb_url, tmp_path
):
    """On MariaDB, ``[^Licence_]`` can match no name as the database folds it (every
    spelling is decided as ``licence_...``): glance-api does not start, and says which
    section, where, and what to write; lint says the same (PG119)."""
    with pytest.raises(Exception):  # noqa: B017 -- the demo supervisor's start-up failure
        uwsgi_glance(CAPITALISED, database=mariadb_url)
    log = (tmp_path / "g0" / "glance.log").read_text(errors="replace")
    assert "PG119 [^Licence_]" in log and "decided as 'licence_'" in log, log[-3000:]
    rules = tmp_path / "g0" / "rules.conf"
    done = subprocess.run(
        [sys.executable, "-m", "propguard.cli", "lint", "--name-collation",
         "utf8mb3_general_ci", str(rules)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and "PG119" in done.stdout, done.stdout + done.stderr


def test_propguard_serve_refuses_auto_naming_the_option(tmp_path):
    rules = tmp_path / "rules.conf"
    rules.write_text(LOWER)
    ini = write_ini(
        tmp_path / "serve.ini",
        pipeline="request_id propguard proxy",
        propguard_options={
            "rules_file": str(rules),
            "trust_identity_headers": "true",
            "reload_on_sighup": "false",
            "name_collation": "auto",
        },
    )
    done = subprocess.run(
        [sys.executable, "-m", "propguard.cli", "serve", "--upstream", "http://127.0.0.1:9",
         "--bind", f"127.0.0.1:{free_port()}", "--paste-ini", str(ini)],
        capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode != 0
    assert "name_collation = auto" in done.stderr
    assert "binary for SQLite or PostgreSQL" in done.stderr
    assert "utf8mb3_general_ci" in done.stderr


def test_filter_built_outside_glance_api_refuses_auto(tmp_path, monkeypatch):
    from oslo_config import cfg

    from propguard.glance.database import CollationUnknown
    from propguard.middleware import filter_factory

    monkeypatch.setattr(cfg, "CONF", cfg.ConfigOpts())  # no glance-api configuration parsed
    rules = tmp_path / "rules.conf"
    rules.write_text(LOWER)
    with pytest.raises(CollationUnknown, match="name_collation"):
        filter_factory({}, rules_file=str(rules), reload_on_sighup="false")(lambda e, s: [])
