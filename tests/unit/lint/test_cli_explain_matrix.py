"""``propguard explain`` and ``propguard matrix`` on Glance's test files and policies/."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from lint_helpers import GLANCE, ROOT

from propguard.cli import main

ROLES = str(GLANCE / "property-protections.conf")
POLICIES = str(GLANCE / "property-protections-policies.conf")
POLICY_YAML = str(GLANCE / "policy.yaml")


def _explain(capsys, *args) -> dict:
    assert main(["explain", "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_explain_names_section_line_and_reason(capsys):
    result = _explain(capsys, "--rules", ROLES, "--roles", "member", "x_foo_bar")
    assert [d["allowed"] for d in result["decisions"]] == [True] * 4
    assert {d["section"] for d in result["decisions"]} == {"x_foo_*"}
    assert result["decisions"][0]["line"] == 91
    assert "'@'" in result["decisions"][0]["reason"]


def test_explain_spl_role_and_case_insensitivity(capsys):
    result = _explain(capsys, "--rules", ROLES, "--roles", "spl_role", "spl_update_only_prop")
    got = {d["op"]: d["allowed"] for d in result["decisions"]}
    assert got == {"create": False, "read": False, "update": True, "delete": False}
    result = _explain(capsys, "--rules", ROLES, "--roles", "MEMBER", "x_case_insensitive", "read")
    (decision,) = result["decisions"]
    assert decision["allowed"] and "member" in decision["reason"].lower()


def test_explain_no_section_matches(capsys):
    rules = str(GLANCE / "property-protections-roles.conf.sample")
    # every name matches [.*] there; use the built-in os_glance section instead
    result = _explain(capsys, "--rules", rules, "--roles", "member", "os_glance_import_task")
    assert result["decisions"][0]["where"] == "built in"
    result = _explain(
        capsys, "--rules", rules, "--no-os-glance-section", "--roles", "admin", "x_a", "read"
    )
    assert result["decisions"][0]["section"] == "^x_.*"


def test_explain_text_output(capsys):
    assert main(["explain", "--rules", ROLES, "--roles", "member", "foo", "read"]) == 0
    out = capsys.readouterr().out
    assert "read   DENIED  by [.*]" in out and "property-protections.conf:97" in out


def test_explain_policies_format(capsys):
    args = ["--rules", POLICIES, "--policy-file", POLICY_YAML, "--roles", "spl_role"]
    args += ["--rules-format", "policies"]
    result = _explain(capsys, *args, "spl_creator_policy")
    got = {d["op"]: d["allowed"] for d in result["decisions"]}
    assert got == {"create": True, "read": True, "update": False, "delete": False}
    assert "glance_creator" in result["decisions"][0]["reason"]


def test_explain_service_roles_strict_and_union(capsys):
    rules = str(ROOT / "policies" / "production.conf")
    args = ["--rules", rules, "--roles", "member", "--service-roles", "service"]
    strict = _explain(capsys, *args, "instance_uuid", "update")
    assert strict["decisions"][0]["allowed"] is True  # member + service:service entry
    alone = _explain(capsys, "--rules", rules, "--roles", "member", "instance_uuid", "update")
    assert alone["decisions"][0]["allowed"] is False


def test_explain_broken_rules_exit_1(capsys, tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text("[^[0-9)]\ncreate = admin\n")
    assert main(["explain", "--rules", str(bad), "x"]) == 1
    assert "PG104" in capsys.readouterr().err
    assert main(["explain", "--rules", str(tmp_path / "missing.conf"), "x"]) == 1


def test_explain_usage_error(capsys):
    assert main(["explain", "--rules", ROLES, "x", "destroy"]) == 2


def test_matrix_text(capsys):
    assert main(["matrix", "--rules", ROLES, "--roles-sets", "member;admin;spl_role"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("[spl_update_only_prop]"))
    assert row.split()[-3:] == ["----", "CRUD", "--U-"]
    row = next(line for line in lines if line.startswith("[x_none_read]"))
    assert row.split()[-3:] == ["C---", "C---", "----"]


def test_matrix_markdown_and_unreachable(capsys, tmp_path):
    rules = tmp_path / "r.conf"
    rules.write_text(
        "[^x_.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n\n"
        "[^x_foo_.*]\ncreate = !\nread = !\nupdate = !\ndelete = !\n"
    )
    assert (
        main(["matrix", "--format", "markdown", "--rules", str(rules), "--roles-sets", "a;b"]) == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("| section | line | example name | a | b |")
    assert "| `[^x_foo_.*]` | 7 | - | `unreachable` | `unreachable` |" in out


def test_matrix_policies_and_service_sets(capsys):
    args = ["--rules", str(ROOT / "policies" / "property-protections-policies.conf")]
    args += ["--policy-file", str(ROOT / "policies" / "policy.yaml"), "--rules-format", "policies"]
    sets = "member;admin;member+service:service;service:service"
    assert main(["matrix", "--format", "json", *args, "--roles-sets", sets]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["role_sets"] == sets.split(";")
    rows = {r["section"]: r for r in result["rows"]}
    nova = rows["^(instance_uuid|image_type|backup_type|base_image_ref)$"]["cells"]
    assert [c["update"] for c in nova] == [False, True, True, False]


class _Checker(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.classes: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.classes.update(v for k, v in attrs if k == "class")


def test_matrix_html_is_self_contained(capsys, tmp_path):
    out = tmp_path / "m.html"
    rc = main(
        [
            "matrix",
            "--format",
            "html",
            "-o",
            str(out),
            "--rules",
            ROLES,
            "--roles-sets",
            "member;admin",
        ]
    )
    assert rc == 0
    text = out.read_text()
    checker = _Checker()
    checker.feed(text)
    assert text.startswith("<!DOCTYPE html>") and "<style>" in text
    assert "http" not in text.replace("http-equiv", "")  # nothing loaded from elsewhere
    assert {"allow", "deny"} <= checker.classes and "table" in checker.tags
