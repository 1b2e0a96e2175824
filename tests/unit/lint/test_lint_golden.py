"""Golden outputs of ``propguard lint`` in text, JSON and SARIF (schema-validated).

Regenerate after an intended change with ``PROPGUARD_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import json
import os

import jsonschema
import pytest
from lint_helpers import FIXTURES, GOLDEN, SARIF_SCHEMA

from propguard.cli import main

FILES = [
    "glance/property-protections.conf",
    "codes/PG203.conf",
    "codes/PG301.yaml",
    "codes/PG303.yaml",
]


def _run(fmt: str, capsys) -> tuple[int, str]:
    code = main(["lint", "--format", fmt, "--rules-format", "roles", *FILES])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["text", "json", "sarif"])
def test_golden(fmt, capsys, monkeypatch):
    monkeypatch.chdir(FIXTURES)
    # SARIF names the tool's version, which git derives anew for every commit.
    monkeypatch.setattr("propguard.__version__", "0.0.0")
    code, out = _run(fmt, capsys)
    assert code == 1  # PG303 is an error
    golden = GOLDEN / f"lint.{fmt if fmt != 'text' else 'txt'}"
    if os.environ.get("PROPGUARD_UPDATE_GOLDEN"):
        golden.write_text(out, encoding="utf-8")
        # a run that writes its golden compares the output with itself: it never passes
        pytest.fail(f"{golden.name} rewritten (PROPGUARD_UPDATE_GOLDEN): review, re-run without it")
    assert out == golden.read_text(encoding="utf-8")


def test_text_lines_have_the_documented_shape(capsys, monkeypatch):
    monkeypatch.chdir(FIXTURES)
    _, out = _run("text", capsys)
    finding = [line for line in out.splitlines() if not line.startswith("    hint: ")]
    for line in finding:
        place, rest = line.split(": ", 1)
        file, lineno, col = place.rsplit(":", 2)
        assert file in FILES and int(lineno) >= 1 and int(col) >= 1
        code, severity, message = rest.split(" ", 2)
        assert code.startswith("PG") and severity in ("error", "warning", "info") and message


def test_json_fields(capsys, monkeypatch):
    monkeypatch.chdir(FIXTURES)
    _, out = _run("json", capsys)
    rows = json.loads(out)
    assert rows
    for row in rows:
        assert {"code", "severity", "file", "line", "column", "message"} <= set(row)
        assert set(row) <= {"code", "severity", "file", "line", "column", "message", "hint"}


def test_sarif_is_valid_against_the_schema(capsys, monkeypatch):
    monkeypatch.chdir(FIXTURES)
    _, out = _run("sarif", capsys)
    log = json.loads(out)
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    jsonschema.Draft4Validator(schema).validate(log)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        region = result["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1


def test_sarif_of_a_clean_run_is_valid(capsys, monkeypatch):
    monkeypatch.chdir(FIXTURES)
    argv = ["--known-roles", "_member_", "glance/property-protections-roles.conf.sample"]
    assert main(["lint", "--format", "sarif", *argv]) == 0
    log = json.loads(capsys.readouterr().out)
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator(schema).validate(log)
    assert log["runs"][0]["results"] == []
