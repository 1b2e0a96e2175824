"""``propguard lint`` exit codes, --fail-on, suppression comments, policy.d."""

from __future__ import annotations

import json
import sys
import types

from lint_helpers import CODES_DIR, FIXTURES, GLANCE

from propguard.cli import main

CATCH_ALL = "[.*]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n"


def test_clean_file_exits_0(capsys):
    # Glance's sample grants _member_, which Keystone 30 no longer creates (PG208 otherwise).
    sample = str(GLANCE / "property-protections-roles.conf.sample")
    assert main(["lint", "--known-roles", "_member_", sample]) == 0
    assert capsys.readouterr().out == ""


def test_error_exits_1_and_warning_only_with_fail_on(capsys):
    assert main(["lint", str(CODES_DIR / "PG104.conf")]) == 1
    assert main(["lint", str(CODES_DIR / "PG204.conf")]) == 0
    assert main(["lint", "--fail-on", "warning", str(CODES_DIR / "PG204.conf")]) == 1
    assert main(["lint", "--fail-on", "never", str(CODES_DIR / "PG104.conf")]) == 0
    assert main(["lint", "--fail-on", "info", str(CODES_DIR / "PG212.conf")]) == 1
    assert main(["lint", "--fail-on", "warning", str(CODES_DIR / "PG212.conf")]) == 0


def test_usage_errors_exit_2(capsys):
    assert main(["lint"]) == 2
    assert main(["lint", "--format", "xml", "x.conf"]) == 2
    assert main(["nosuch"]) == 2
    assert main([]) == 2
    assert main(["--help"]) == 0


def test_missing_file_is_a_finding_not_a_crash(tmp_path, capsys):
    assert main(["lint", "--format", "json", str(tmp_path / "missing.conf")]) == 1
    (row,) = json.loads(capsys.readouterr().out)
    assert row["code"] == "PG101"


def test_suppression_comments(tmp_path, capsys):
    rules = tmp_path / "rules.conf"
    rules.write_text(
        "# propguard: disable=PG204\n"
        "[spl_read_prop]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n\n"
        "[other_prop]\ncreate = admin\nread = admin\n"
        "# propguard: disable=PG206\n"
        "update = admin,member\ndelete = admin\n\n" + CATCH_ALL
    )
    assert main(["lint", "--fail-on", "warning", str(rules)]) == 1
    out = capsys.readouterr().out
    assert "[spl_read_prop]" not in out  # whole section suppressed
    assert "PG204" in out and "[other_prop]" in out
    assert "PG206" not in out  # suppressed on its line
    rules.write_text("# propguard: disable-file=PG204,PG206\n" + rules.read_text())
    assert main(["lint", "--fail-on", "warning", str(rules)]) == 0


def test_ignore_option(capsys):
    assert (
        main(["lint", "--fail-on", "warning", "--ignore", "pg204", str(CODES_DIR / "PG204.conf")])
        == 0
    )


def test_yaml_trailing_suppression(tmp_path, capsys):
    policy = tmp_path / "policy.yaml"
    policy.write_text('"open": ""  # propguard: disable=PG302\n')
    assert main(["lint", "--fail-on", "warning", str(policy)]) == 0


def test_policy_d_broken_file_does_not_hide_the_others(tmp_path, capsys):
    (tmp_path / "policy.yaml").write_text('"a": "rule:b"\n')
    policy_d = tmp_path / "policy.d"
    policy_d.mkdir()
    (policy_d / "10-broken.yaml").write_text('"x": [oops\n')
    (policy_d / "20-ok.yaml").write_text('"b": "role:admin"\n"c": "rule:nope"\n')
    assert main(["lint", "--format", "json", str(tmp_path / "policy.yaml")]) == 1
    rows = json.loads(capsys.readouterr().out)
    got = {(row["code"], row["file"].rsplit("/", 1)[-1]) for row in rows}
    # rule:b resolves through policy.d; the broken file and rule:nope are reported
    assert got == {("PG118", "10-broken.yaml"), ("PG304", "20-ok.yaml")}


def test_known_roles_and_union_mode(capsys):
    path = str(CODES_DIR / "PG209.conf")
    known = ["--known-roles", "nova"]
    assert main(["lint", "--fail-on", "warning", *known, path]) == 0  # strict mode: fine
    assert main(["lint", "--fail-on", "warning", *known, "--service-role-mode", "union", path]) == 1
    path = str(CODES_DIR / "PG207.conf")
    main(["lint", "--known-roles", "admin,member", path])
    out = capsys.readouterr().out
    assert "differs only in case from the known role 'member'" in out


def test_format_autodetection(capsys, monkeypatch):
    monkeypatch.chdir(FIXTURES)
    # policies-format values resolve against Glance's registered defaults
    assert (
        main(
            [
                "lint",
                "--format",
                "json",
                "--rules-format",
                "auto",
                "glance/property-protections-policies.conf.sample",
            ]
        )
        == 0
    )
    (row,) = json.loads(capsys.readouterr().out)
    assert row["code"] == "PG213" and "'default'" in row["message"]


def test_demo_is_imported_lazily(monkeypatch):
    """Both tours are imported only when asked for; the arguments reach them as given."""
    seen = []
    for name in ("propguard.demo", "propguard.demo_live.main"):
        fake = types.ModuleType(name)
        fake.main = lambda argv, name=name: seen.append((name, argv)) or 0
        monkeypatch.setitem(sys.modules, name, fake)
    assert main(["demo", "--in-process", "--rules", "x.conf"]) == 0
    assert main(["demo", "--ports", "auto"]) == 0
    assert seen == [
        ("propguard.demo", ["--rules", "x.conf"]),
        ("propguard.demo_live.main", ["--ports", "auto"]),
    ]


def test_default_format_is_the_filters(tmp_path, capsys):
    """Issue 21: lint guessed the format while the filter defaults to roles, so a file the
    filter reads as roles was linted as policies (and the other way round)."""
    rules = tmp_path / "property-protections-policies.conf"
    ops = "\n".join(f"{op} = context_is_admin" for op in ("create", "read", "update", "delete"))
    rules.write_text(f"[.*]\n{ops}\n")
    # Read as roles (as the filter reads it), context_is_admin is a role nobody has: PG208.
    assert main(["lint", str(rules), "--name-collation", "binary"]) == 1
    captured = capsys.readouterr()
    assert "1 rules (roles format)" in captured.err
    assert "PG208 error role 'context_is_admin'" in captured.out
    assert main(["lint", str(rules), "--name-collation", "binary", "--rules-format", "auto"]) == 0
    assert "(policies format, assumed by --rules-format auto)" in capsys.readouterr().err
