"""A real Glance 33 for the demo: sqlite and file store, served by uWSGI as Glance recommends.

Why these choices: uWSGI in HTTP mode with chunked input is what Glance's
own deployment guide recommends since eventlet left (``glance.wsgi.api``);
sqlite and the file store keep the demo on one machine with nothing to set
up. Glance's own property protections stay off (no
``property_protection_file``): propguard enforces the rules, and Glance's
``purge_props`` would otherwise delete what a caller cannot read.

The paste pipeline is Glance's own ``glance-api-paste.ini`` as installed
with Glance, used with one of three flavors:

* ``keystone`` (sidecar mode): Glance's own pipeline with ``auth_token``,
  pointing at the demo's Keystone; ``propguard serve`` sits in front.
* ``keystone`` with propguard in it (``--placement paste``): the pipeline of
  ``paste.ini.example`` (Glance's file with ``propguard`` after
  ``authtoken``), for deployments that can edit glance-api's pipeline.
* ``trusted-auth`` (``--jwt``): Glance's ``keystone`` pipeline without
  ``authtoken``; its ``context`` filter trusts the identity headers the
  proxy's JWT filter sets. Safe only because nothing but the proxy can reach
  this Glance (it listens on 127.0.0.1, and the proxy strips client-sent
  identity headers).
"""

from __future__ import annotations

import configparser
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from propguard.demo_live.keystone import uwsgi_ini
from propguard.demo_live.supervisor import HOST, Supervisor

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: Glance's keystone pipeline without auth_token (the identity comes from the proxy).
TRUSTED_AUTH = "cors http_proxy_to_wsgi versionnegotiation osprofiler context rootapp"


@dataclass
class GlanceInfo:
    port: int
    workdir: str
    flavor: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def glance_paste_ini() -> str:
    """Glance's own paste file, as installed with Glance 33 (``<prefix>/etc/glance``)."""
    path = os.path.join(sys.prefix, "etc", "glance", "glance-api-paste.ini")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Glance's glance-api-paste.ini is not installed at {path}")
    return path


def _write_paste(
    workdir: str,
    placement: str,
    jwt: Mapping[str, str] | None,
    propguard_options: Mapping[str, str],
    readiness: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """(paste file, flavor) for the placement; written into ``workdir``.

    ``jwt``: the JWT filter's options (``--jwt``), or None for Keystone.
    ``readiness``: ``[app:readiness]`` (docs/operations.md), served at ``/readiness``
    beside ``/healthcheck`` in every composite that serves that.
    """
    if placement == "paste":
        source = os.path.join(REPO, "paste.ini.example")
        flavor = "keystone"
    else:
        source = glance_paste_ini()
        flavor = "trusted-auth" if jwt is not None else "keystone"
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(source)
    if flavor == "trusted-auth":
        parser.set("composite:api", "trusted-auth", TRUSTED_AUTH)
        parser.add_section("composite:glance-api-trusted-auth")
        for key, value in parser.items("composite:glance-api-keystone"):
            parser.set("composite:glance-api-trusted-auth", key, value)
    if placement == "paste" and jwt is not None:  # the JWT filter in auth_token's place
        parser.set(
            "composite:api",
            "keystone",
            parser.get("composite:api", "keystone").replace("authtoken", "jwt"),
        )
        parser.add_section("filter:jwt")
        parser.set("filter:jwt", "paste.filter_factory", "propguard.jwt.filter:filter_factory")
        for key, value in jwt.items():
            parser.set("filter:jwt", key, value)
    if placement == "paste":  # the example's values (paths under /etc) give way to the demo's
        for key in list(parser.options("filter:propguard")):
            if key != "paste.filter_factory":
                parser.remove_option("filter:propguard", key)
        for key, value in propguard_options.items():
            parser.set("filter:propguard", key, value)
    parser.set("app:healthcheck", "disable_by_file_path", os.path.join(workdir, "hc_disable"))
    if readiness is not None:
        parser.add_section("app:readiness")
        for key, value in readiness.items():
            parser.set("app:readiness", key, value)
        for section in parser.sections():
            if section.startswith("composite:") and parser.has_option(section, "/healthcheck"):
                parser.set(section, "/readiness", "readiness")
    path = os.path.join(workdir, "glance-api-paste.ini")
    with open(path, "w") as handle:
        handle.write(f"# Written by propguard demo from {source}\n")
        parser.write(handle)
    return path, flavor


def _ini(sections: Mapping[str, Mapping[str, str]]) -> str:
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {v}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


def start_glance(
    sup: Supervisor,
    workdir: str,
    port: int,
    say,
    *,
    authtoken: Mapping[str, str] | None,
    placement: str,
    jwt: Mapping[str, str] | None,
    propguard_options: Mapping[str, str],
    notifications: Mapping[str, str] | None,
    native_protections: Mapping[str, str] | None = None,
    name: str = "glance",
    progress: Callable[[float], None] | None = None,
    database: str | None = None,
    readiness: Mapping[str, str] | None = None,
    processes: int = 1,
) -> GlanceInfo:
    """Configure, migrate and serve Glance. ``authtoken``: [keystone_authtoken] (None: JWT).

    ``jwt``: the JWT filter's options when tokens are JWTs (used in Glance's
    pipeline with ``placement == "paste"``; else Glance trusts the proxy).

    ``propguard_options``: [propguard] (the rules; used by the notification
    driver, and by the filter when it runs in Glance's pipeline).
    ``notifications``: transport_url, exchange and topic for the ``propguard``
    notification driver, or None for no notifications. ``native_protections``:
    Glance's own ``property_protection_file``/``_rule_format`` (and
    ``policy_file``), for the comparison with Glance alone. ``database``:
    ``[database] connection`` (default: a sqlite file in ``workdir``; the
    tests also run it on MariaDB). ``readiness``: ``[app:readiness]`` at ``/readiness``;
    ``processes``: uWSGI worker processes.
    """
    for sub in ("images", "staging", "etc"):
        os.makedirs(os.path.join(workdir, sub), exist_ok=True)
    paste, flavor = _write_paste(workdir, placement, jwt, propguard_options, readiness)
    policy = os.path.join(workdir, "etc", "policy.yaml")
    with open(policy, "w") as handle:
        handle.write("{}\n")  # Glance's in-code defaults, nothing from /etc
    url = f"http://{HOST}:{port}"
    sections: dict[str, dict[str, str]] = {
        "DEFAULT": {
            "use_stderr": "true",
            "debug": "false",
            "worker_self_reference_url": url,
            "node_staging_uri": f"file://{workdir}/staging",
            "enabled_import_methods": "['glance-direct']",
            "image_property_quota": "-1",
        },
        "database": {"connection": database or f"sqlite:///{workdir}/glance.sqlite"},
        "glance_store": {
            "stores": "file",
            "default_store": "file",
            "filesystem_store_datadir": f"{workdir}/images",
        },
        "paste_deploy": {"flavor": flavor, "config_file": paste},
        "oslo_policy": {"policy_file": policy},
        "propguard": dict(propguard_options),
    }
    if native_protections:
        sections["DEFAULT"]["property_protection_file"] = native_protections["rules"]
        sections["DEFAULT"]["property_protection_rule_format"] = native_protections["format"]
        sections["DEFAULT"].pop("image_property_quota")
        if native_protections.get("policy_file"):
            sections["oslo_policy"]["policy_file"] = native_protections["policy_file"]
    if authtoken is not None:
        sections["keystone_authtoken"] = dict(authtoken)
    if notifications is not None:
        sections["DEFAULT"]["transport_url"] = notifications["transport_url"]
        sections["DEFAULT"]["control_exchange"] = notifications["exchange"]
        sections["oslo_messaging_notifications"] = {
            "driver": "propguard",
            "topics": notifications["topic"],
        }
        sections["propguard_notifications"] = {"modes": "strip", "audience_roles": "member,reader"}
    else:
        sections["oslo_messaging_notifications"] = {"driver": "noop"}
    conf = os.path.join(workdir, "etc", "glance-api.conf")
    with open(conf, "w") as handle:
        handle.write(_ini(sections))
    bindir = os.path.dirname(sys.executable)
    env = {**os.environ, "OS_GLANCE_CONFIG_DIR": os.path.join(workdir, "etc")}
    say(f"{name}: db sync ({(database or 'sqlite').split(':', 1)[0]}) ...")
    sup.run(
        f"{name}-manage",
        [os.path.join(bindir, "glance-manage"), "--config-file", conf, "db", "sync"],
        env,
        timeout=300,
    )
    ini = os.path.join(workdir, "uwsgi.ini")
    with open(ini, "w") as handle:
        handle.write(uwsgi_ini(port, "glance.wsgi.api:application", processes=processes))
    say(f"{name}: starting uWSGI on {HOST}:{port} (pipeline flavor {flavor}) ...")
    sup.start(
        name,
        [os.path.join(bindir, "uwsgi"), "--ini", ini],
        env=env,
        port=port,
        ready_path="/healthcheck",
        timeout=180,
        progress=progress,
    )
    return GlanceInfo(port, workdir, flavor)
