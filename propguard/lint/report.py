"""Render findings as text, JSON or SARIF 2.1.0."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

from propguard.lint.codes import CODES, code_docs
from propguard.rules.model import Problem, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
#: Base of the relative artifact URIs: the directory lint ran in (the checkout).
SRCROOT = "%SRCROOT%"


def render_text(problems: list[Problem]) -> str:
    out = []
    for p in problems:
        out.append(str(p))
        if p.hint:
            out.append(f"    hint: {p.hint}")
    return "\n".join(out) + ("\n" if out else "")


def as_dicts(problems: list[Problem]) -> list[dict]:
    rows = []
    for p in problems:
        row = {
            "code": p.code,
            "severity": str(p.severity),
            "file": p.position.file,
            "line": p.position.line,
            "column": p.position.column,
            "message": p.message,
        }
        if p.hint:
            row["hint"] = p.hint
        rows.append(row)
    return rows


def render_json(problems: list[Problem]) -> str:
    return json.dumps(as_dicts(problems), indent=2) + "\n"


def _location(path: str, line: int, column: int) -> dict:
    """A SARIF location: a real URI for a file, a logical location for ``<policy_namespaces>``.

    Paths under the current directory become relative URIs against
    ``%SRCROOT%`` (what code-scanning services resolve to the checkout);
    others become ``file://`` URIs. Both are percent-encoded.
    """
    if path.startswith("<"):
        return {"logicalLocations": [{"name": path.strip("<>"), "kind": "module"}]}
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    region = {"startLine": max(line, 1), "startColumn": max(column, 1)}
    if relative.startswith(os.pardir):
        artifact = {"uri": Path(absolute).as_uri()}
    else:
        artifact = {"uri": quote(relative.replace(os.sep, "/")), "uriBaseId": SRCROOT}
    return {"physicalLocation": {"artifactLocation": artifact, "region": region}}


def _rule(code: str) -> dict:
    info = CODES.get(code)
    meaning, example, fix = code_docs().get(code, (info.summary if info else code, "", ""))
    text = f"{meaning}." + (f" Example: {example}. Fix: {fix}." if example else "")
    markdown = f"**{code}** {meaning}" + (
        f"\n\nExample: {example}\n\nFix: {fix}" if example else ""
    )
    return {
        "id": code,
        "name": info.name if info else code,
        "shortDescription": {"text": info.summary if info else code},
        "fullDescription": {"text": meaning},
        "help": {"text": text + " (propguard lint --list-codes)", "markdown": markdown},
        "defaultConfiguration": {"level": _SARIF_LEVEL[info.severity] if info else "warning"},
    }


def sarif_log(problems: list[Problem], version: str | None = None) -> dict:
    from propguard import __version__

    used = sorted({p.code for p in problems} | set(CODES))
    index = {code: i for i, code in enumerate(used)}
    results = []
    for p in problems:
        location = _location(p.position.file, p.position.line, p.position.column)
        results.append(
            {
                "ruleId": p.code,
                "ruleIndex": index[p.code],
                "level": _SARIF_LEVEL[p.severity],
                "message": {"text": p.message + (f" (hint: {p.hint})" if p.hint else "")},
                "locations": [location],
            }
        )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "propguard-lint",
                        "version": version or __version__,
                        "rules": [_rule(code) for code in used],
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def render_sarif(problems: list[Problem]) -> str:
    return json.dumps(sarif_log(problems), indent=2) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "sarif": render_sarif}
