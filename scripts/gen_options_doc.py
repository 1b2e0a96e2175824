#!/usr/bin/env python3
"""Write ``docs/options.md``, the option reference, from the options themselves.

Run from the checkout (``.venv`` built by ``./scripts/test.sh``)::

    .venv/bin/python scripts/gen_options_doc.py           # rewrite docs/options.md
    .venv/bin/python scripts/gen_options_doc.py --check   # exit 1 if it would change

The oslo.config groups come from ``oslo-config-generator --namespace propguard
--format json`` (the generator's own machine-readable output: names, types,
defaults, bounds, choices and help exactly as the sample configuration shows
them); the proxy app's paste options, which no oslo.config group holds, from
:data:`propguard.proxy.app.PROXY_OPTS` through the generator's own entry
builder, so both are rendered by the same code. Markdown, not the
generator's ``--format rst``: that format needs Sphinx, and every other
document here is Markdown. ``tests/unit/test_options_doc.py`` fails when the
file is not what this writes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# This checkout's options, whatever propguard the virtualenv has installed.
sys.path.insert(0, str(ROOT))
OUTPUT = ROOT / "docs" / "options.md"
COMMAND = ".venv/bin/python scripts/gen_options_doc.py"

HEADER = f"""\
# Option reference

Every option propguard reads, generated from the options themselves by
`{COMMAND}` (do not edit by hand:
`tests/unit/test_options_doc.py` fails when this file differs from a fresh
run). What the filter's options mean together, with examples:
[filter.md](filter.md); the sample configuration with the same help:
`etc/propguard/propguard.conf.sample`.

Where they are read:

* The filter's paste section (`[filter:propguard]`) first, then `[propguard]`
  of the service's configuration (glance-api.conf inside glance-api;
  `--config-file` of `propguard serve`, `notify-filter` and the tools). With
  `oslo_config_project` (and optionally `oslo_config_file`) in the paste
  section, that project's own files instead, as oslo.middleware's filters
  read theirs. The JWT filter's options likewise: its paste section
  (`[filter:jwt]`) first, then `[propguard_jwt]`.
* A value is converted by its option's type in both places, and an invalid
  value or an unknown option stops the service, naming it; it never falls
  back to the default.
* `oslo-config-generator --namespace propguard` prints the same options as a
  sample file; `oslo-config-validator --namespace propguard --config-file
  FILE` checks a file against them.
"""

#: What each group is for (the generator gives groups no help of their own).
GROUPS = {
    "propguard": (
        "The property filter (paste section or `[propguard]`), shared by the notification "
        "driver and `propguard notify-filter` (rules, formats, collation), and the relations "
        "options ([relations.md](relations.md))."
    ),
    "propguard_notifications": (
        "What the notification filter produces, in glance-api's `propguard` driver and in "
        "`propguard notify-filter` ([notifications.md](notifications.md))."
    ),
    "propguard_notify_filter": (
        "The `propguard notify-filter` service: broker, queues, delivery "
        "([notifications.md](notifications.md))."
    ),
    "propguard_jwt": (
        "The JWT identity filter, `egg:propguard#jwt` ([jwt.md](jwt.md)). Options marked "
        "*per issuer* are the issuer's: beside the others when `issuers` is empty, otherwise "
        "`<name>.<option>` in the paste section or `[propguard_jwt:<name>]`."
    ),
}

PROXY_SECTION = """\
## `[app:proxy]` (paste only)

The proxy app of `propguard serve` (`egg:propguard#proxy`, in `serve.ini`):
read from its paste section only, typed as oslo.config types them (`insecure
= ture` is an error, not false; an unknown key stops `propguard serve`).
`propguard serve --upstream` and `--trusted-proxy` override `upstream` and
`trusted_proxies` ([proxy.md](proxy.md)).
"""


def generator_json() -> dict[str, Any]:
    """``oslo-config-generator --namespace propguard --format json``, run as a module."""
    path = os.environ.get("PYTHONPATH", "")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "oslo_config.generator",
            "--namespace",
            "propguard",
            "--format",
            "json",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), path]))},
    ).stdout
    return json.loads(out)


def proxy_entries() -> list[dict[str, Any]]:
    """The proxy app's paste options as the generator describes an option."""
    from oslo_config import cfg, generator

    from propguard.proxy.app import PROXY_OPTS

    conf = cfg.ConfigOpts()
    generator.register_cli_opts(conf)
    conf(["--namespace", "propguard"])
    entries = [generator._build_entry(opt, "app:proxy", "propguard", conf) for opt in PROXY_OPTS]
    # The generator's JSON encoder turns types it does not know into strings.
    return json.loads(json.dumps(entries, default=str))


def _value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "empty"
    if isinstance(value, dict):
        return ", ".join(f"{k}:{v}" for k, v in value.items()) if value else "empty"
    return str(value) if str(value) != "" else "empty"


def render_option(opt: dict[str, Any], per_issuer: bool = False) -> list[str]:
    facts = [opt["type"]]
    default = opt["sample_default"] if opt.get("sample_default") is not None else opt["default"]
    facts.append(
        f"default `{_value(default)}`"
        if default not in (None, [], {}, "")
        else f"default {_value(default)}"
    )
    if opt.get("min") is not None:
        facts.append(f"at least {opt['min']}")
    if opt.get("max") is not None:
        facts.append(f"at most {opt['max']}")
    if opt.get("required"):
        facts.append("required")
    if opt.get("mutable"):
        facts.append("mutable")
    if opt.get("secret"):
        facts.append("secret")
    if per_issuer:
        facts.append("*per issuer*")
    lines = [f"### `{opt['name']}`", "", "; ".join(facts) + ".", ""]
    if opt["help"]:
        lines += [opt["help"].strip(), ""]
    if opt.get("choices"):
        for value, text in opt["choices"]:
            item = f"* `{_value(value)}`"
            lines.append(f"{item}: {text}" if text else item)
        lines.append("")
    for old in opt.get("deprecated_opts") or []:
        lines += [f"Deprecated name: `[{old['group']}] {old['name']}`.", ""]
    if opt.get("deprecated_for_removal"):
        reason = opt.get("deprecated_reason") or ""
        lines += [f"Deprecated for removal. {reason}".strip(), ""]
    return lines


def render() -> str:
    from propguard.jwt.opts import ISSUER_OPTS

    issuer_names = {opt.dest for opt in ISSUER_OPTS}
    data = generator_json()
    lines = [HEADER]
    for group, info in data["options"].items():
        if group == "DEFAULT" and not info["opts"]:
            continue
        lines += [f"## `[{group}]`", ""]
        about = info.get("help") or GROUPS.get(group)
        if about:
            lines += [about, ""]
        for opt in info["opts"]:
            per_issuer = group == "propguard_jwt" and opt["dest"] in issuer_names
            lines += render_option(opt, per_issuer)
    lines.append(PROXY_SECTION)
    for opt in proxy_entries():
        lines += render_option(opt)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file would change")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = OUTPUT.exists() and OUTPUT.read_text(encoding="utf-8") == text
        if not same:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run {COMMAND}", file=sys.stderr)
        return 0 if same else 1
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
