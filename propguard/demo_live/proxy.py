"""Configuration of ``propguard serve`` for the demo, written into its work directory.

Why it writes files rather than calling Python: the demo runs the proxy the
way an operator would, as ``propguard serve --config-file ...`` built from
the shipped ``serve.ini``. With Keystone the shipped pipeline is used as it
is; with ``--jwt`` the copy swaps ``authtoken`` for ``egg:propguard#jwt``,
the swap the shipped file documents in its comments.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from typing import Any

import propguard.proxy

SERVE_INI = os.path.join(os.path.dirname(propguard.proxy.__file__), "serve.ini")


def _ini(sections: Mapping[str, Mapping[str, str]]) -> str:
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {v}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


def jwt_options(keys: str, issuer: str, audience: str) -> dict[str, str]:
    """The JWT filter's options for the tokens ``propguard token --alg RS256`` mints."""
    return {
        "iss": issuer,
        "audiences": audience,
        "algorithms": "RS256",
        "public_key_files": f"RS256:{os.path.join(keys, 'RS256-public.pem')}",
        "delay_auth_decision": "true",
        "service_token_roles": "service",
    }


def write_config(
    workdir: str,
    ks: Any,
    keys: str,
    filter_options: Mapping[str, str],
    jwt: bool,
    issuer: str,
    audience: str,
) -> tuple[str, str | None]:
    """(``--config-file``, ``--paste-ini`` or None for the shipped serve.ini)."""
    directory = os.path.join(workdir, "proxy")
    os.makedirs(directory, exist_ok=True)
    sections: dict[str, dict[str, str]] = {"propguard": dict(filter_options)}
    if ks is not None:
        sections["keystone_authtoken"] = ks.authtoken_options("propguard")
    conf = os.path.join(directory, "propguard.conf")
    with open(conf, "w") as handle:
        handle.write(_ini(sections))
    if not jwt:
        return conf, None
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SERVE_INI)
    swapped = False
    for section in parser.sections():
        if section.startswith("pipeline:") and parser.has_option(section, "pipeline"):
            names = parser.get(section, "pipeline").split()
            if "authtoken" in names:
                swapped = True
                names = ["jwt" if n == "authtoken" else n for n in names]
                parser.set(section, "pipeline", " ".join(names))
    if not swapped:
        raise ValueError(f"{SERVE_INI}: no pipeline with authtoken to put the JWT filter in")
    parser.remove_section("filter:authtoken")
    parser.add_section("filter:jwt")
    parser.set("filter:jwt", "use", "egg:propguard#jwt")
    for key, value in jwt_options(keys, issuer, audience).items():
        parser.set("filter:jwt", key, value)
    paste = os.path.join(directory, "serve-jwt.ini")
    with open(paste, "w") as handle:
        handle.write(f"# propguard demo --jwt: {SERVE_INI} with the JWT filter for authtoken\n")
        parser.write(handle)
    return conf, paste
