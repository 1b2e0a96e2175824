"""``propguard explain --shadow-rules``: what switching to other rules would change, for one caller."""

from __future__ import annotations

import json
from pathlib import Path

from propguard.cli import main

RULES = (
    "[^secret_]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n\n"
    "[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n"
)
NEXT = RULES.replace("read = admin", "read = admin,member", 1)


def test_each_operation_says_whether_the_shadow_rules_decide_otherwise(tmp_path: Path, capsys):
    rules, shadow = tmp_path / "rules.conf", tmp_path / "next.conf"
    rules.write_text(RULES)
    shadow.write_text(NEXT)
    argv = ["explain", "--rules", str(rules), "--shadow-rules", str(shadow), "--roles", "member"]
    assert main([*argv, "--format", "json", "secret_key"]) == 0
    decisions = {d["op"]: d for d in json.loads(capsys.readouterr().out)["decisions"]}
    assert decisions["read"]["allowed"] is False and decisions["read"]["shadow"]["allowed"] is True
    assert decisions["read"]["diverges"] is True
    assert decisions["read"]["shadow"]["where"] == f"{shadow}:1"
    assert [op for op, d in decisions.items() if d["diverges"]] == ["read"]
    assert main([*argv, "secret_key", "read"]) == 0
    text = capsys.readouterr().out
    assert "DENIED  by [^secret_]" in text and "shadow ALLOWED by [^secret_]" in text
    assert "DIVERGES" in text


def test_a_shadow_file_that_does_not_load_is_reported_as_the_filter_would(tmp_path, capsys):
    rules, shadow = tmp_path / "rules.conf", tmp_path / "next.conf"
    rules.write_text(RULES)
    shadow.write_text("[.*]\ncreate = @\n")
    code = main(["explain", "--rules", str(rules), "--shadow-rules", str(shadow), "x"])
    assert code == 1
    assert "the shadow rules do not load" in capsys.readouterr().err


def test_matrix_lists_what_the_shadow_rules_change_per_section_and_role_set(tmp_path, capsys):
    rules, shadow = tmp_path / "rules.conf", tmp_path / "next.conf"
    rules.write_text(RULES)
    shadow.write_text(NEXT)
    argv = ["matrix", "--rules", str(rules), "--shadow-rules", str(shadow)]
    assert main([*argv, "--roles-sets", "member;admin", "--format", "json"]) == 0
    changes = json.loads(capsys.readouterr().out)["changes"]
    assert [(c["section"], c["role_set"], c["op"], c["now"], c["shadow"]) for c in changes] == [
        ("^secret_", "member", "read", "deny", "allow")
    ]
    assert main([*argv, "--roles-sets", "member;admin"]) == 0
    assert "[^secret_] (line 1), member: read deny -> allow" in capsys.readouterr().out
