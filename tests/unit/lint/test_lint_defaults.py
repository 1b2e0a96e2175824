"""Lint's defaults catch real mistakes (issue 21, point 4): a section that can never
match and a role nobody defines are errors where they change who can read or write,
every occurrence is reported, and known roles come from Keystone's defaults, the
policy files, the deployment's options and --known-roles."""

from __future__ import annotations

import json

from lint_helpers import GLANCE

from propguard.cli import main

OPS = ("create", "read", "update", "delete")


def _section(pattern: str, value: str | dict) -> str:
    values = value if isinstance(value, dict) else dict.fromkeys(OPS, value)
    return f"[{pattern}]\n" + "".join(f"{op} = {values[op]}\n" for op in OPS) + "\n"


def _lint(capsys, *argv: str) -> tuple[int, list[dict]]:
    code = main(["lint", "--format", "json", "-q", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_a_section_hiding_billing_data_that_never_matches_is_an_error(tmp_path, capsys):
    rules = tmp_path / "rules.conf"
    rules.write_text(
        _section("^x_", "admin,member") + _section("^x_billing_", "admin") + _section(".*", "admin")
    )
    code, found = _lint(capsys, str(rules))
    assert code == 1
    (shadow,) = [f for f in found if f["code"] == "PG202"]
    assert shadow["severity"] == "error" and "rights differ" in shadow["message"]


def test_a_shadowed_section_with_the_same_rights_is_a_warning(tmp_path, capsys):
    rules = tmp_path / "rules.conf"
    rules.write_text(
        _section("^x_", "admin") + _section("^x_foo_", "admin") + _section(".*", "admin")
    )
    code, found = _lint(capsys, str(rules))
    assert code == 0
    assert [(f["code"], f["severity"]) for f in found] == [("PG202", "warning")]


def test_every_unknown_role_is_an_error_without_known_roles(tmp_path, capsys):
    rules = tmp_path / "rules.conf"
    rules.write_text(
        _section(
            "^x_",
            {
                "create": "admin",
                "read": "membr,reader",
                "update": "membr",
                "delete": "admin,adminn",
            },
        )
        + _section(".*", "admin")
    )
    code, found = _lint(capsys, str(rules))
    assert code == 1
    unknown = [(f["line"], f["severity"], f["hint"]) for f in found if f["code"] == "PG208"]
    assert unknown == [
        (3, "error", "did you mean 'member'?"),
        (4, "error", "did you mean 'member'?"),
        (5, "error", "did you mean 'admin'?"),
    ]


def test_known_roles_come_from_policy_files_options_and_the_flag(tmp_path, capsys):
    rules = tmp_path / "rules.conf"
    rules.write_text(_section("^x_", "billing,auditor,nova,creator") + _section(".*", "admin"))
    policy = tmp_path / "policy.yaml"
    policy.write_text('"billing_admin": "role:billing"\n')
    base = [str(rules), "--policy-file", str(policy)]
    code, found = _lint(capsys, *base)
    assert {f["message"].split("'")[1] for f in found if f["code"] == "PG208"} == {
        "auditor",
        "nova",
        "creator",
    }
    code, found = _lint(
        capsys,
        *base,
        "--service-token-roles",
        "service,nova",
        "--inject-ignore-roles",
        "creator",
        "--known-roles",
        "auditor",
    )
    assert code == 0, found


def test_glance_default_policy_roles_are_known(tmp_path, capsys):
    """Roles Glance's registered defaults check (policy_namespaces) are known roles."""
    rules = tmp_path / "rules.conf"
    rules.write_text(_section(".*", "admin,member,reader"))
    assert _lint(capsys, str(rules)) == (0, [])


def test_glances_sample_grants_a_role_keystone_30_no_longer_creates(capsys):
    code, found = _lint(capsys, str(GLANCE / "property-protections-roles.conf.sample"))
    assert code == 1
    assert {f["message"].split("'")[1] for f in found if f["code"] == "PG208"} == {"_member_"}
    assert len([f for f in found if f["code"] == "PG208"]) == 4
