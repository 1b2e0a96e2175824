"""The wrong answers of issue 13 (lint, explain, matrix, the CLI), one test each.

Each test names the wrong answer it pins down; each failed before the fix.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from lint_helpers import CODES_DIR, ROOT

from propguard import __version__
from propguard.cli import build_parser, main
from propguard.lint import LintOptions, lint_paths, lint_run
from propguard.rules.loading import RulesOptions
from propguard.rules.model import RulesError

#: The tests of format auto-detection ask for it (the default is the filter's: roles).
AUTO = LintOptions(rules=RulesOptions(rule_format="auto"))

POLICIES = ROOT / "policies"
CATCH_ALL = "[.*]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n"
POLICY_RULES = "[.*]\ncreate = pg_rule\nread = pg_rule\nupdate = pg_rule\ndelete = pg_rule\n"


def _codes(problems) -> list[str]:
    return [p.code for p in problems]


def _errors(problems) -> list:
    return [p for p in problems if p.severity == "error"]


def _policy_set(tmp_path: Path, base: str = '"pg_rule": "role:admin"\n') -> Path:
    (tmp_path / "policy.yaml").write_text(base)
    (tmp_path / "policy.d").mkdir()
    return tmp_path / "policy.yaml"


# -- lint reads exactly what the filter reads ---------------------------------------


def test_directory_with_a_broken_rules_file_is_not_clean(tmp_path, capsys):
    """Was: `propguard lint DIR` printed nothing and exited 0 (JSON: [])."""
    (tmp_path / "property-protections.conf").write_text("[^[0-9)]\ncreate = admin\n")
    assert main(["lint", "--format", "json", str(tmp_path)]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert {"PG104", "PG105"} <= {r["code"] for r in rows}


@pytest.mark.parametrize("name", ["20-override", "30.YAML", "x.bak", "y~", "z.conf"])
def test_every_file_of_policy_d_is_read_as_the_filter_reads_it(tmp_path, capsys, name):
    """Was: lint read only .yaml/.yml/.json in a policy.d; the filter reads every file
    not starting with a dot, so `role:admin or or x` in policy.d/20-override linted clean."""
    policy = _policy_set(tmp_path)
    broken = tmp_path / "policy.d" / name
    broken.write_text('"pg_rule": "role:admin or or x"\n')
    (tmp_path / "policy.d" / ".hidden").write_text('"pg_rule": [oops\n')  # skipped, as oslo.policy
    rules = tmp_path / "rules.conf"
    rules.write_text(POLICY_RULES)
    for args in ([str(policy)], [str(tmp_path / "policy.d")], [str(tmp_path)]):
        run = lint_run(args, AUTO)
        assert [(p.code, p.position.file) for p in _errors(run.problems)] == [
            ("PG303", str(broken))
        ], args
    # The loader refuses it too, at the same place, and explain says so (exit 2).
    options = RulesOptions(rules_file=str(rules), rule_format="policies", policy_file=str(policy))
    with pytest.raises(RulesError) as info:
        options.load()
    assert info.value.problems[0].position.file == str(broken)
    argv = ["explain", "--rules", str(rules), "--policy-file", str(policy), "x"]
    argv += ["--rules-format", "auto"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{broken}:1:" in err and "PG303" in err and "Traceback" not in err


def test_dangling_link_in_policy_d_is_an_error(tmp_path):
    policy = _policy_set(tmp_path)
    os.symlink(tmp_path / "nowhere", tmp_path / "policy.d" / "50-gone.yaml")
    problems = lint_paths([str(policy)])
    assert [(p.code, Path(p.position.file).name) for p in _errors(problems)] == [
        ("PG118", "50-gone.yaml")
    ]


def test_a_bad_value_in_policy_d_is_placed_in_that_file(tmp_path):
    """Was: the filter reported a bad value inside a policy.d file at policy.yaml:1:1."""
    policy = _policy_set(tmp_path)
    (tmp_path / "policy.d" / "10.yaml").write_text('"other": "role:x"\n"pg_rule": 12\n')
    rules = tmp_path / "rules.conf"
    rules.write_text(POLICY_RULES)
    options = RulesOptions(rules_file=str(rules), rule_format="policies", policy_file=str(policy))
    with pytest.raises(RulesError) as info:
        options.load()
    (problem,) = info.value.problems
    assert str(problem.position) == f"{tmp_path / 'policy.d' / '10.yaml'}:2:12"
    assert problem.code == "PG303" and "not int" in problem.message


def test_broken_policy_set_is_an_error_not_a_reason_to_lint_as_roles(tmp_path):
    """Was: auto-detection fell back to the roles format when the policy set failed to
    load, so a policies-format file with a broken policy.yaml linted clean."""
    (tmp_path / "policy.yaml").write_text('"pg_rule": [unclosed\n')
    rules = tmp_path / "protections.conf"
    rules.write_text(POLICY_RULES)
    for paths, options in (
        (
            [str(rules)],
            LintOptions(
                rules=RulesOptions(rule_format="auto", policy_file=str(tmp_path / "policy.yaml"))
            ),
        ),
        ([str(rules), str(tmp_path / "policy.yaml")], AUTO),
    ):
        run = lint_run(paths, options)
        assert "PG118" in _codes(_errors(run.problems)), paths
        assert run.rules_files[str(rules)] == "policies"


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b'"a": "role:x"\n"b": "\xff"\n', ":2:7"),
        (b'"a": "role:x"\n"b": "x\x00y"\n', ":2:8"),
        (b'"a": "role:x\x07"\n', ":1:13"),
    ],
    ids=["not-utf8", "nul", "control"],
)
def test_unreadable_policy_text_is_a_finding_not_a_crash(tmp_path, content, where):
    """Was: lint crashed on a non-UTF-8 policy file and on NUL or control characters."""
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(content)
    (problem,) = lint_paths([str(policy)])
    assert problem.code == "PG118" and str(problem.position).endswith(where)
    rules = tmp_path / "rules.conf"
    rules.write_text(POLICY_RULES)
    with pytest.raises(RulesError) as info:
        RulesOptions(rules_file=str(rules), rule_format="policies", policy_file=str(policy)).load()
    assert str(info.value.problems[0].position).endswith(where)


@pytest.mark.parametrize(
    "pattern", ["a{4294967296}", "(" * 1500 + "a" + ")" * 1500], ids=["repeat", "nesting"]
)
def test_pathological_section_is_refused_with_a_position(tmp_path, pattern):
    """Was: `[a{4294967296}]` crashed lint and killed the filter without file or line."""
    rules = tmp_path / "rules.conf"
    rules.write_text(
        f"[{pattern}]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n"
        + "\n"
        + CATCH_ALL
    )
    with pytest.raises(RulesError) as info:
        RulesOptions(rules_file=str(rules)).load()
    (problem,) = info.value.problems
    assert problem.code == "PG104" and str(problem.position) == f"{rules}:1:2"
    assert [p.code for p in _errors(lint_paths([str(rules)]))] == ["PG104"]


def test_a_1500_deep_rule_chain_is_refused_with_a_position(tmp_path):
    """Was: a 1500-deep `rule:` chain crashed lint (RecursionError)."""
    lines = ['"pg_rule": "rule:deep_0"']
    lines += [f'"deep_{i}": "rule:deep_{i + 1}"' for i in range(1500)]
    lines.append('"deep_1500": "role:admin"')
    policy = tmp_path / "policy.yaml"
    policy.write_text("\n".join(lines) + "\n")
    rules = tmp_path / "rules.conf"
    rules.write_text(POLICY_RULES)
    with pytest.raises(RulesError) as info:
        RulesOptions(rules_file=str(rules), rule_format="policies", policy_file=str(policy)).load()
    (problem,) = info.value.problems
    assert problem.code == "PG118" and str(problem.position) == f"{policy}:1:12"
    assert "nests 1502 levels deep" in problem.message
    problems = lint_paths([str(rules)], LintOptions(rules=RulesOptions(policy_file=str(policy))))
    assert "PG118" in _codes(_errors(problems))


def test_a_directory_where_a_file_belongs(tmp_path, capsys):
    """Was: a directory given as the policy file was linted as a policy directory."""
    rules = tmp_path / "rules.conf"
    rules.write_text(POLICY_RULES)
    problems = lint_paths([str(rules)], LintOptions(rules=RulesOptions(policy_file=str(tmp_path))))
    assert any("it is a directory" in p.message for p in _errors(problems))
    assert main(["explain", "--rules", str(tmp_path), "x"]) == 1
    assert "PG101" in capsys.readouterr().err


def test_lint_has_the_filters_policy_dirs_and_namespaces(tmp_path, capsys):
    """Was: lint had no options matching the filter's policy_dirs and policy_namespaces."""
    policy = _policy_set(tmp_path)
    (tmp_path / "policy.d" / "10.yaml").write_text('"pg_rule": [oops\n')
    (tmp_path / "other.d").mkdir()
    (tmp_path / "other.d" / "10.yaml").write_text('"pg_rule": "role:member"\n')
    rules = tmp_path / "rules.conf"
    rules.write_text(POLICY_RULES)
    base = ["lint", "--rules-format", "policies", "--policy-file", str(policy), str(rules)]
    assert main(base) == 1  # policy.d is read by default, as by the filter
    assert main([*base, "--policy-dirs", "other.d"]) == 0
    assert main([*base, "--policy-dirs", ""]) == 0
    assert main([*base, "--policy-dirs", "other.d", "--policy-namespaces", "nosuch"]) == 1
    assert "PG117" in capsys.readouterr().out


def test_pg117_once_per_bad_namespace(tmp_path, capsys):
    """Was: PG117 was reported twice for one bad namespace."""
    policy = tmp_path / "policy.yaml"
    policy.write_text('"pg_rule": "role:admin"\n')
    rules = tmp_path / "rules.conf"
    rules.write_text(POLICY_RULES)
    for extra in ([], ["--rules-format", "policies"], ["--policy-file", str(policy)]):
        argv = ["lint", "--format", "json", "--policy-namespace", "nosuch", *extra]
        assert main([*argv, str(rules), str(policy)]) == 1
        rows = json.loads(capsys.readouterr().out)
        assert [r["code"] for r in rows].count("PG117") == 1, extra


def test_argument_that_yields_nothing_exits_2(tmp_path, capsys):
    (tmp_path / "README").write_text("nothing to lint\n")
    assert main(["lint", str(tmp_path)]) == 2
    assert str(tmp_path) in capsys.readouterr().err
    (tmp_path / "policy.d").mkdir()
    assert main(["lint", str(tmp_path / "policy.d")]) == 2


def test_a_clean_run_ends_with_a_summary(capsys):
    """Was: a clean lint printed nothing at all."""
    argv = ["lint", str(POLICIES), "--name-collation", "binary", "--rules-format", "auto"]
    argv += ["--known-roles", "_member_"]  # Glance's legacy role, in glance-compatible-roles
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert re.fullmatch(
        r"propguard lint: 4 files \(3 rules \(policies/roles format, assumed by --rules-format "
        r"auto\), 1 policy\): "
        r"0 errors, 0 warnings, 0 infos",
        line,
    ), line


def test_order_analysis_runs_on_what_parsed(tmp_path):
    """Was: when a file had errors, the order analysis (PG202) silently did not run."""
    rules = tmp_path / "rules.conf"
    rules.write_text(
        "[^x_.*]\ncreate = admin,\nread = admin\nupdate = admin\ndelete = admin\n\n"
        "[^x_foo_.*]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n\n"
        "[^[0-9)]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n\n" + CATCH_ALL
    )
    problems = lint_paths([str(rules)])
    codes = _codes(problems)
    assert "PG108" in codes and "PG202" in codes  # shadowed by a section refused for its value
    (bad_regex,) = [p for p in problems if p.code == "PG104"]
    assert "order analysis (PG202, PG203, PG210) ran without this section" in bad_regex.hint


def test_undefined_names_point_at_policy_file_and_guess_misspellings(tmp_path):
    """Was: ten PG111 without a word about --policy-file, no "did you mean"."""
    problems = lint_paths([str(POLICIES / "property-protections-policies.conf")], AUTO)
    assert problems and {p.code for p in problems} == {"PG111"}
    beside = str(POLICIES / "policy.yaml")
    assert all(f"--policy-file {beside}" in p.hint for p in problems)
    rules = tmp_path / "rules.conf"
    rules.write_text(POLICY_RULES.replace("pg_rule", "contxt_is_admin"))
    (first, *_) = lint_paths([str(rules)], LintOptions(rules=RulesOptions(rule_format="policies")))
    assert "did you mean 'context_is_admin'?" in first.hint


def test_long_or_chain_is_linear(tmp_path, monkeypatch):
    """Was: 17 s for a 1,000-term `or` chain (every caller x every term, through
    oslo.policy's dispatch). Now each term is looked at a bounded number of times."""
    from oslo_policy import _checks

    terms = 1000
    policy = tmp_path / "policy.yaml"
    policy.write_text('"big": "' + " or ".join(f"role:r{i}" for i in range(terms)) + '"\n')
    rules = tmp_path / "or.conf"
    rules.write_text("[.*]\ncreate = big\nread = big\nupdate = big\ndelete = big\n")
    calls = 0
    real = _checks._check

    def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(_checks, "_check", counting)
    assert lint_paths([str(rules), str(policy)]) == []
    # Linear by count, not by the clock (timed in benchmarks/bench_lint.py).
    assert calls < 10 * terms, calls


# -- explain and matrix -----------------------------------------------------------


@pytest.mark.parametrize("command", ["explain", "matrix"])
def test_bad_policy_rule_is_reported_like_lint(tmp_path, capsys, caplog, command):
    """Was: explain printed oslo.policy's traceback six times; lint was quiet."""
    policy = tmp_path / "policy.yaml"
    policy.write_text('"ok": "role:admin"\n"pg_rule": "role:admin or or role:member"\n')
    rules = tmp_path / "rules.conf"
    rules.write_text(POLICY_RULES)
    args = ["--rules", str(rules), "--policy-file", str(policy), "--rules-format", "auto"]
    args += ["x"] if command == "explain" else ["--roles-sets", "admin"]
    assert main([command, *args]) == 2
    err = capsys.readouterr().err
    assert f"{policy}:2:12: PG303 error" in err
    assert "Traceback" not in err and "Traceback" not in caplog.text
    assert main(["lint", "--rules-format", "auto", "--policy-file", str(policy), str(rules)]) == 1
    assert f"{policy}:2:12: PG303 error" in capsys.readouterr().out


def test_explain_notes_glances_reservation_of_os_glance(capsys):
    rules = str(POLICIES / "production.conf")
    assert main(["explain", "--rules", rules, "--roles", "member", "os_glance_foo"]) == 0
    out = capsys.readouterr().out
    assert "create ALLOWED by [^os_glance] (built in)" in out
    assert "Glance reserves the os_glance namespace" in out and "403" in out
    assert main(["explain", "--format", "json", "--rules", rules, "os_glance_foo"]) == 0
    assert "reserves" in json.loads(capsys.readouterr().out)["note"]
    assert main(["explain", "--format", "json", "--rules", rules, "x_os_glance"]) == 0
    assert "note" not in json.loads(capsys.readouterr().out)


def test_html_matrix_wraps_long_patterns_and_keeps_them_on_hover(tmp_path, capsys):
    """Was: one long regex did not wrap and pushed member+service:service out of view."""
    out = tmp_path / "m.html"
    sets = "member;admin;member+service:service"
    argv = ["matrix", "--rules", str(POLICIES / "production.conf"), "--roles-sets", sets]
    assert main([*argv, "--format", "html", "-o", str(out)]) == 0
    text = out.read_text()
    full = "[^(instance_uuid|image_type|backup_type|base_image_ref|user_id|owner_user_name|owner_project_name|boot_roles)$]"
    assert f'title="{full}"' in text  # the whole pattern on hover
    cell = re.search(r'<td class="name" title="\[\^\(instance_uuid[^"]*">(.*?)</td>', text).group(1)
    assert cell.endswith("...]") and "<wbr>" in cell  # cut, and breakable
    assert "overflow-wrap:anywhere" in text and "table-layout:auto" in text
    assert 'title="member+service:service"' in text


@pytest.mark.parametrize(
    "sets", ["member+service:", "member+", "member;;admin", "a,,b", "service:"]
)
def test_malformed_role_sets_are_refused(capsys, sets):
    rules = str(POLICIES / "production.conf")
    assert main(["matrix", "--rules", rules, "--roles-sets", sets]) == 2
    assert "--roles-sets" in capsys.readouterr().err


# -- the command line -------------------------------------------------------------


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"propguard {__version__}\n"
    # A PEP 440 version from git (setuptools-scm): 0.1.0, or 0.1.1.dev3+g1a2b3c4 between tags.
    from packaging.version import Version

    assert Version(__version__).release


@pytest.mark.parametrize("command", [None, "lint", "explain", "matrix"])
def test_help_has_exit_codes_a_description_and_help_for_every_option(command):
    parser = build_parser()
    if command is not None:
        parser = parser._subparsers._group_actions[0].choices[command]
    text = parser.format_help()
    assert "exit codes:" in text and "  2  " in text
    assert parser.description
    for action in parser._actions:
        assert action.help, (command, action.dest)
    assert "docs/lint.md" not in text


def test_lint_docs_ship_with_the_package(capsys):
    """Was: --help and SARIF pointed at docs/lint.md, which is not packaged."""
    from propguard.lint.codes import CODES
    from propguard.lint.guide import TEXT

    shipped = TEXT
    assert (ROOT / "docs" / "lint.md").read_text(encoding="utf-8") == shipped
    assert main(["lint", "--list-codes"]) == 0
    out = capsys.readouterr().out
    for code in CODES:
        assert re.search(rf"^{code} ", out, re.M), code
    assert "e.g. `[^[0-9)]`; fix: fix the regex" in out


def test_sarif_uris_are_real(capsys, monkeypatch, tmp_path):
    """Was: helpUri docs/lint.md#pgxxx (not published) and informationUri a placeholder."""
    monkeypatch.chdir(CODES_DIR)
    outside = tmp_path / "outside dir.conf"
    outside.write_text("[^[0-9)]\n")
    argv = ["lint", "--format", "sarif", "PG104.conf", "PG117.policies.conf", str(outside)]
    argv += ["--policy-namespace", "no_such_namespace"]
    main(argv)
    log = json.loads(capsys.readouterr().out)
    driver = log["runs"][0]["tool"]["driver"]
    assert "informationUri" not in driver and driver["version"] == __version__
    for rule in driver["rules"]:
        assert "helpUri" not in rule and rule["help"]["text"]
    uris = set()
    for result in log["runs"][0]["results"]:
        (location,) = result["locations"]
        if "physicalLocation" in location:
            artifact = location["physicalLocation"]["artifactLocation"]
            uris.add((artifact["uri"], artifact.get("uriBaseId")))
        else:
            assert location["logicalLocations"][0]["name"] == "policy_namespaces"
    assert ("PG104.conf", "%SRCROOT%") in uris
    assert (outside.as_uri(), None) in uris and "%20" in outside.as_uri()
