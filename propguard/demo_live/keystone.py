"""A real Keystone for the demo: sqlite, fernet tokens, bootstrapped, served by uWSGI.

Why real: the tour's point is that propguard reads what keystonemiddleware
confirms from Keystone, user and service tokens alike, so the tokens must be
Keystone's own. Everything lives under the demo's temporary directory: the
config, the sqlite database, the fernet and credential keys, the log.

Accounts (passwords are random per run, printed nowhere but kept in the
config directory): ``admin`` (admin of projects ``admin`` and ``demo``),
``alice`` (member of ``demo``), ``bob`` (member of ``other``: a caller from
another project), ``nova`` (``service`` role in ``service``: the service
token Nova sends), ``glance`` and ``propguard`` (``service`` in ``service``:
auth_token's own credentials in Glance and in the proxy).
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from propguard.demo_live.supervisor import HOST, Supervisor

#: name -> (project, roles) of the accounts created after the bootstrap.
ACCOUNTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "alice": ("demo", ("member",)),
    "bob": ("other", ("member",)),
    "nova": ("service", ("service",)),
    "glance": ("service", ("service",)),
    "propguard": ("service", ("service",)),
}


@dataclass
class KeystoneInfo:
    """Where the demo's Keystone is and the accounts it holds."""

    port: int
    passwords: dict[str, str] = field(default_factory=dict)
    projects: dict[str, str] = field(default_factory=dict)  # name -> id
    users: dict[str, str] = field(default_factory=dict)  # name -> id

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v3"

    def authtoken_options(self, user: str) -> dict[str, str]:
        """keystonemiddleware ``auth_token`` options for a service validating with ``user``."""
        return {
            "www_authenticate_uri": self.url,
            "auth_url": self.url,
            "auth_type": "password",
            "username": user,
            "password": self.passwords[user],
            "user_domain_id": "default",
            "project_name": "service",
            "project_domain_id": "default",
            "delay_auth_decision": "true",
            "service_token_roles": "service",
            "service_token_roles_required": "true",
            "memcached_servers": "",
            "http_connect_timeout": "5",
            "interface": "public",
        }


def _conf(workdir: str) -> str:
    return f"""\
[DEFAULT]
use_stderr = true
debug = false

[database]
connection = sqlite:///{workdir}/keystone.sqlite

[token]
provider = fernet
expiration = 3600

[fernet_tokens]
key_repository = {workdir}/fernet-keys

[fernet_receipts]
key_repository = {workdir}/fernet-keys

[credential]
key_repository = {workdir}/credential-keys

[identity]
# Fewer bcrypt rounds than a production Keystone: the demo's passwords are
# random, short-lived and local; each authentication stays under 10 ms.
password_hash_rounds = 4

[cache]
enabled = false

[oslo_policy]
enforce_new_defaults = true
enforce_scope = true
"""


def uwsgi_ini(port: int, module: str, *, processes: int = 1, threads: int = 4) -> str:
    """uWSGI in HTTP mode as Glance's docs recommend it (chunked input, raw body)."""
    return f"""\
[uwsgi]
http-socket = {HOST}:{port}
module = {module}
master = true
processes = {processes}
threads = {threads}
enable-threads = true
lazy-apps = true
die-on-term = true
exit-on-reload = true
thunder-lock = true
http-auto-chunked = true
http-chunked-input = true
http-raw-body = true
buffer-size = 65535
socket-timeout = 30
add-header = Connection: close
need-app = true
disable-logging = true
"""


def start_keystone(
    sup: Supervisor, workdir: str, port: int, say, progress: Callable[[float], None] | None = None
) -> KeystoneInfo:
    """Configure, migrate, bootstrap and serve Keystone; create the tour's accounts."""
    os.makedirs(workdir, exist_ok=True)
    conf = os.path.join(workdir, "keystone.conf")
    with open(conf, "w") as handle:
        handle.write(_conf(workdir))
    info = KeystoneInfo(port)
    # Hex: a password starting with '-' would read as an option to keystone-manage.
    info.passwords = {name: secrets.token_hex(12) for name in ("admin", *ACCOUNTS)}
    bindir = os.path.dirname(sys.executable)
    manage = [os.path.join(bindir, "keystone-manage"), "--config-file", conf]
    env = {**os.environ, "OS_KEYSTONE_CONFIG_FILES": conf}
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    say("keystone: keystone-manage db_sync (sqlite) ...")
    sup.run("keystone-manage", [*manage, "db_sync"], env, timeout=300)
    for what in ("fernet_setup", "credential_setup"):
        say(f"keystone: keystone-manage {what} ...")
        sup.run(
            "keystone-manage",
            [*manage, what, "--keystone-user", user, "--keystone-group", group],
            env,
            timeout=60,
        )
    say("keystone: keystone-manage bootstrap (admin, roles admin/member/reader/service) ...")
    sup.run(
        "keystone-manage",
        [
            *manage,
            "bootstrap",
            f"--bootstrap-password={info.passwords['admin']}",
            "--bootstrap-username",
            "admin",
            "--bootstrap-project-name",
            "admin",
            "--bootstrap-role-name",
            "admin",
            "--bootstrap-service-name",
            "keystone",
            "--bootstrap-region-id",
            "RegionOne",
            "--bootstrap-public-url",
            info.url,
        ],
        env,
        timeout=120,
    )
    ini = os.path.join(workdir, "uwsgi.ini")
    with open(ini, "w") as handle:
        handle.write(uwsgi_ini(port, "keystone.wsgi.api:application"))
    say(f"keystone: starting uWSGI on {HOST}:{port} ...")
    sup.start(
        "keystone",
        [os.path.join(bindir, "uwsgi"), "--ini", ini],
        env=env,
        port=port,
        ready_path="/v3",
        timeout=120,
        progress=progress,
    )
    _create_accounts(info)
    say(
        "keystone: ready; users admin, alice (member of demo), bob (member of other), "
        "nova/glance/propguard (service role in project service)"
    )
    return info


def admin_session(info: KeystoneInfo, project: str = "admin"):
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    auth = v3.Password(
        auth_url=info.url,
        username="admin",
        password=info.passwords["admin"],
        user_domain_id="default",
        project_name=project,
        project_domain_id="default",
    )
    return session.Session(auth=auth)


def _create_accounts(info: KeystoneInfo) -> None:
    """Projects, users and role assignments through Keystone's own API (as an operator would)."""
    s = admin_session(info)
    kw = {"endpoint_filter": {"service_type": "identity", "interface": "public"}}

    def find(kind: str, name: str) -> str | None:
        found = s.get(f"/{kind}?name={name}", **kw).json()[kind]
        return found[0]["id"] if found else None

    roles = {r["name"]: r["id"] for r in s.get("/roles", **kw).json()["roles"]}
    info.projects["admin"] = find("projects", "admin") or ""
    for project in ("demo", "other", "service"):
        body = {"project": {"name": project, "domain_id": "default"}}
        info.projects[project] = s.post("/projects", json=body, **kw).json()["project"]["id"]
    info.users["admin"] = find("users", "admin") or ""
    for name, (project, names) in ACCOUNTS.items():
        body = {
            "user": {
                "name": name,
                "domain_id": "default",
                "password": info.passwords[name],
                "default_project_id": info.projects[project],
            }
        }
        info.users[name] = s.post("/users", json=body, **kw).json()["user"]["id"]
        for role in names:
            s.put(
                f"/projects/{info.projects[project]}/users/{info.users[name]}/roles/{roles[role]}",
                **kw,
            )
    # The operator also administers the demo project (images are per project).
    s.put(
        f"/projects/{info.projects['demo']}/users/{info.users['admin']}/roles/{roles['admin']}",
        **kw,
    )
