"""Differential test, deployment side: lint run as an operator runs it is never cleaner
than the filter's loader, for every filter option that changes what is loaded.

The cases of :mod:`test_lint_differential` (generated and mutated rules and
policy files), deployed with generated ``[propguard]`` options: the format
left to its default (the default-format invocation) or set, ``policy_dirs``
empty, extra, absent or absolute, ``policy_namespaces`` empty or with an
unknown one, ``service_role_mode``, ``os_glance_section``, a folding
``name_collation``, and now and then a ``rules_file`` that is a directory.
Each is linted twice, through ``--config-file`` (the deployment as
configured) and through the equivalent flags; whenever the loader
(``RulesOptions.load`` on :func:`propguard.opts.resolve`'s values, what the
filter runs) refuses, both runs must exit 1 with an error. 0 false cleans.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from dataclasses import dataclass

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings
from oslo_config import cfg
from test_lint_differential import Case, _loader, _materialise, cases

from propguard import opts
from propguard.cli import main
from propguard.glance.database import name_folding
from propguard.rules.loading import RulesOptions

EXAMPLES = int(os.environ.get("PROPGUARD_DIFFERENTIAL_OPTION_EXAMPLES", "300"))


@dataclass
class Deployment:
    case: Case
    #: [propguard] options as written (None: not written, the default applies)
    rule_format: str | None
    policy_dirs: str | None  # "{abs}" stands for an absolute directory
    policy_namespaces: str | None
    service_role_mode: str | None
    os_glance_section: str | None
    name_collation: str | None
    rules_is_directory: bool


@st.composite
def deployments(draw) -> Deployment:
    case = draw(cases())
    return Deployment(
        case=case,
        rule_format=draw(st.sampled_from([None, None, case.rule_format.replace("auto", "roles")])),
        policy_dirs=draw(st.sampled_from([None, "", "policy.d,absent.d", "{abs}", "policy.d"])),
        policy_namespaces=draw(st.sampled_from([None, "", "glance,propguard", "glance,nosuch"])),
        service_role_mode=draw(st.sampled_from([None, "union", "strict"])),
        os_glance_section=draw(st.sampled_from([None, "false", "true"])),
        name_collation=draw(st.sampled_from([None, "binary", "utf8mb3_general_ci", "mysql_any"])),
        rules_is_directory=draw(st.integers(0, 9)) == 0,
    )


def _settings(d: Deployment, folder: str, rules: str, policy: str | None) -> dict[str, str]:
    values = {"rules_file": folder if d.rules_is_directory else rules}
    if policy is not None:
        values["policy_file"] = policy
    for name in (
        "rule_format",
        "policy_dirs",
        "policy_namespaces",
        "service_role_mode",
        "os_glance_section",
        "name_collation",
    ):
        value = getattr(d, name)
        if value is not None:
            values[name] = value.replace("{abs}", os.path.join(folder, "policy.d"))
    return values


def _flags(values: dict[str, str]) -> list[str]:
    """The same deployment as lint flags (no --rules-format: the default invocation)."""
    argv = ["--rules-file", values["rules_file"]]
    spelling = {
        "rule_format": "--rules-format",
        "policy_file": "--policy-file",
        "policy_dirs": "--policy-dirs",
        "policy_namespaces": "--policy-namespaces",
        "service_role_mode": "--service-role-mode",
        "name_collation": "--name-collation",
    }
    for name, flag in spelling.items():
        if name in values:
            argv += [f"{flag}={values[name]}"]
    if values.get("os_glance_section") == "false":
        argv.append("--no-os-glance-section")
    return argv


def _lint(argv: list[str]) -> tuple[int, list[dict]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["lint", "--format", "json", "-q", *argv])
    findings = json.loads(out.getvalue()) if out.getvalue() else []
    return code, findings


def check_deployment(d: Deployment) -> None:
    with tempfile.TemporaryDirectory(prefix="pg-diffopt-") as folder:
        rules, policy = _materialise(d.case, folder)
        values = _settings(d, folder, rules, policy)
        conf_file = os.path.join(folder, "glance-api.conf")
        with open(conf_file, "w", encoding="utf-8") as handle:
            handle.write("[propguard]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
            # glance-api's own database, which name_collation = auto reads (SQLite: binary)
            handle.write(f"[database]\nconnection = sqlite:///{folder}/glance.sqlite\n")
        conf = cfg.ConfigOpts()
        conf([], project="glance", default_config_files=[conf_file], default_config_dirs=[])
        resolved = opts.resolve({}, conf)
        if resolved["name_collation"] == "auto":  # as the filter inside this glance-api does
            resolved["name_collation"] = name_folding("auto", conf).name
        refused = _loader(RulesOptions.from_options(resolved))
        if refused is None:
            STATS["cases"] += 1
            return
        for how, argv in (
            ("--config-file", ["--config-file", conf_file]),
            ("flags", _flags(values)),
        ):
            code, findings = _lint(argv)
            errors = [f for f in findings if f["severity"] == "error"]
            # The options resolved, so lint has no reason to stop (2): it must find the error.
            assert code == 1 and errors, (
                f"false clean via {how} (exit {code}, {argv}): the loader refused: {refused}"
            )
        STATS["refused"] += 1
    STATS["cases"] += 1


STATS = {"cases": 0, "refused": 0}


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(deployments())
def test_lint_of_a_deployment_is_never_cleaner_than_the_loader(d):
    check_deployment(d)


def test_zz_report_counts(capsys):
    """Not a check: how many cases the loader refused (run with -s to see it)."""
    with capsys.disabled():
        print(f"\ndifferential options: {STATS['cases']} cases, loader refused {STATS['refused']}")
