"""``propguard lint --config-file/--paste-ini``: what the deployed filter loads, and
the injection checks (PG214, PG215; issue "Property injection", point 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from propguard.cli import main

ROOT = Path(__file__).resolve().parents[3]
PRODUCTION = ROOT / "policies" / "production.conf"

RULES = """\
[^x_]
create = admin
read = admin,member
update = admin,member
delete = admin

[^site_]
create = admin
read = @
update = admin
delete = admin

[.*]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member
"""

PASTE = """\
[pipeline:glance-api-keystone]
pipeline = authtoken propguard context rootapp

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory

[filter:propguard]
paste.filter_factory = propguard.middleware:filter_factory
rules_file = %(here)s/rules.conf
{extra}
"""


def deployment(tmp_path: Path, extra: str = "", rules: str = RULES) -> Path:
    (tmp_path / "rules.conf").write_text(rules, encoding="utf-8")
    paste = tmp_path / "glance-api-paste.ini"
    paste.write_text(PASTE.format(extra=extra), encoding="utf-8")
    return paste


def findings(capsys) -> list[dict]:
    return json.loads(capsys.readouterr().out)


def test_injected_name_a_member_may_change_is_pg214(tmp_path, capsys):
    paste = deployment(tmp_path, "inject_properties = x_owner:{project_id},site_id:{project_id}")
    assert main(["lint", "--format", "json", "--paste-ini", str(paste)]) == 0
    (problem,) = findings(capsys)
    assert problem["code"] == "PG214"
    assert "'x_owner' in [^x_]" in problem["message"]
    assert "member may update" in problem["message"]
    assert problem["file"].endswith("rules.conf") and problem["line"] == 4


def test_exempt_roles_do_not_count(tmp_path, capsys):
    paste = deployment(
        tmp_path, "inject_properties = x_owner:{project_id}\ninject_ignore_roles = admin,member"
    )
    assert main(["lint", "--format", "json", "--paste-ini", str(paste)]) == 0
    assert findings(capsys) == []


def test_injected_name_no_section_matches_is_pg215(tmp_path, capsys):
    rules = RULES.rsplit("[.*]", 1)[0]
    paste = deployment(tmp_path, "inject_properties = zz_site:one", rules)
    main(["lint", "--format", "json", "--paste-ini", str(paste)])
    codes = {p["code"]: p for p in findings(capsys)}
    assert set(codes) == {"PG210", "PG215"}
    assert "'zz_site' matches no section" in codes["PG215"]["message"]
    assert codes["PG215"]["file"] == "<inject_properties>"


def test_config_file_alone_names_the_rules_and_paste_wins(tmp_path, capsys):
    (tmp_path / "rules.conf").write_text(RULES, encoding="utf-8")
    conf = tmp_path / "glance-api.conf"
    conf.write_text(
        f"[propguard]\nrules_file = {tmp_path / 'rules.conf'}\ninject_properties = x_a:1\n",
        encoding="utf-8",
    )
    assert main(["lint", "--format", "json", "--config-file", str(conf)]) == 0
    assert [p["code"] for p in findings(capsys)] == ["PG214"]
    # The paste section's own value wins over [propguard], as in the filter.
    paste = deployment(tmp_path, "inject_properties = site_id:{project_id}")
    argv = ["lint", "--format", "json", "--config-file", str(conf), "--paste-ini", str(paste)]
    assert main(argv) == 0
    assert findings(capsys) == []


def test_the_documented_injection_example_needs_its_section_as_documented(tmp_path, capsys):
    """With the production rules alone the injected names fall in the catch-all,
    which members may change: three PG214. With docs/filter.md's section for them: none."""
    extra = "inject_properties = created_by:{user_id},created_in:{project_id},licence:gpl"
    production = PRODUCTION.read_text(encoding="utf-8")
    main(["lint", "--format", "json", "--paste-ini", str(deployment(tmp_path, extra, production))])
    changeable = [p["message"] for p in findings(capsys) if p["code"] in ("PG214", "PG215")]
    assert len(changeable) == 3 and all("member" in m for m in changeable), changeable
    section = "[^(created_by|created_in|licence)$]\ncreate = admin\nread = @\nupdate = admin\ndelete = admin\n\n"
    main(
        [
            "lint",
            "--format",
            "json",
            "--paste-ini",
            str(deployment(tmp_path, extra, section + production)),
        ]
    )
    assert [p for p in findings(capsys) if p["code"] in ("PG214", "PG215")] == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("inject_properties = x_a:{nope}", "unknown placeholder {nope}"),
        ("inject_properties = x_a", "inject_properties"),
        ("rule_format = rolez", "rule_format"),
        ("no_such_option = 1", "no_such_option"),
    ],
)
def test_a_configuration_the_filter_refuses_exits_2_naming_it(tmp_path, capsys, extra, expected):
    paste = deployment(tmp_path, extra)
    assert main(["lint", "--paste-ini", str(paste)]) == 2
    assert expected in capsys.readouterr().err


def test_the_filter_section_must_be_found_or_named(tmp_path, capsys):
    paste = deployment(tmp_path)
    paste.write_text(paste.read_text() + "\n[filter:pg2]\nuse = egg:propguard#propguard\n")
    assert main(["lint", "--paste-ini", str(paste)]) == 2
    assert "--paste-filter" in capsys.readouterr().err
    assert main(["lint", "--paste-ini", str(paste), "--paste-filter", "propguard"]) == 0
    assert main(["lint", "--config-file", str(tmp_path / "missing.conf")]) == 2
    assert "missing.conf: no such file" in capsys.readouterr().err
