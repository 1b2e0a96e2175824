"""Render findings as text, JSON or SARIF 2.1.0."""

from __future__ import annotations

import json
import os

from propguard.lint.codes import CODES
from propguard.rules.model import Problem, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
DOCS_URI = "docs/lint.md"


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


def _uri(path: str) -> str:
    if path.startswith("<"):
        return path
    rel = os.path.relpath(path) if os.path.isabs(path) else path
    return rel.replace(os.sep, "/")


def sarif_log(problems: list[Problem], version: str = "0.1.0") -> dict:
    used = sorted({p.code for p in problems} | set(CODES))
    rules = []
    index = {}
    for i, code in enumerate(used):
        info = CODES.get(code)
        index[code] = i
        rule = {
            "id": code,
            "name": info.name if info else code,
            "shortDescription": {"text": info.summary if info else code},
            "helpUri": f"{DOCS_URI}#{code.lower()}",
            "defaultConfiguration": {"level": _SARIF_LEVEL[info.severity] if info else "warning"},
        }
        rules.append(rule)
    results = []
    for p in problems:
        line = max(p.position.line, 1)
        result = {
            "ruleId": p.code,
            "ruleIndex": index[p.code],
            "level": _SARIF_LEVEL[p.severity],
            "message": {"text": p.message + (f" (hint: {p.hint})" if p.hint else "")},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(p.position.file)},
                        "region": {"startLine": line, "startColumn": max(p.position.column, 1)},
                    }
                }
            ],
        }
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "propguard-lint",
                        "version": version,
                        "informationUri": "https://opendev.org/",
                        "rules": rules,
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
