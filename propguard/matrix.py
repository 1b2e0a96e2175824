"""``propguard matrix``: sections x role sets x create/read/update/delete.

For each section the engine is asked about a name it really routes to that
section (found by the linter's regex analysis of the section patterns); a
section no name reaches is shown as unreachable. The rules are loaded as
``explain`` loads them (:func:`propguard.explain.load`).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from propguard.credentials import Credentials
from propguard.explain import credentials
from propguard.lint.sections import analyse_sections
from propguard.rules.engine import OS_GLANCE_SECTION, RuleEngine
from propguard.rules.model import OPERATIONS, Conjunction, RulesDocument


@dataclass(frozen=True)
class RoleSet:
    label: str
    creds: Credentials


def parse_role_sets(text: str) -> list[RoleSet]:
    """``"member;admin;member+service:nova"`` -> role sets (``,`` also joins roles)."""
    sets = []
    for chunk in text.split(";"):
        label = chunk.strip()
        atoms = [a for a in label.replace(",", "+").split("+") if a.strip()]
        entry = Conjunction.parse("+".join(atoms)) if atoms else Conjunction(frozenset(), frozenset())
        sets.append(
            RoleSet(label or "(no roles)", credentials(entry.user_roles, entry.service_roles))
        )
    return sets


def matrix(
    doc: RulesDocument, engine: RuleEngine, role_sets: list[RoleSet], os_glance_section: bool = True
) -> dict:
    report = analyse_sections(doc, os_glance_section=os_glance_section, overlap=False)
    rows = []
    sections = list(doc.sections)
    if os_glance_section:
        sections.insert(0, OS_GLANCE_SECTION)
    for section in sections:
        name = "os_glance_example" if section.builtin else report.reaching.get(section.index)
        cells = []
        for rs in role_sets:
            if name is None:
                cells.append(None)
            else:
                cells.append({op: engine.allowed(name, op, rs.creds) for op in OPERATIONS})
        rows.append(
            {
                "section": section.pattern,
                "line": None if section.builtin else section.position.line,
                "example": name,
                "cells": cells,
            }
        )
    return {"file": doc.path, "role_sets": [rs.label for rs in role_sets], "rows": rows}


def _cell_text(cell: dict | None) -> str:
    if cell is None:
        return "unreachable"
    return "".join(op[0].upper() if cell[op] else "-" for op in OPERATIONS)


def _table(result: dict) -> tuple[list[str], list[list[str]]]:
    header = ["section", "line", "example name", *result["role_sets"]]
    body = []
    for row in result["rows"]:
        body.append(
            [
                f"[{row['section']}]",
                "built in" if row["line"] is None else str(row["line"]),
                "-" if row["example"] is None else row["example"],
                *(_cell_text(c) for c in row["cells"]),
            ]
        )
    return header, body


def render_matrix_text(result: dict) -> str:
    header, body = _table(result)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*r) for r in body]
    out.append("")
    out.append("C R U D = create read update delete allowed; - = denied")
    return "\n".join(line.rstrip() for line in out) + "\n"


def render_matrix_markdown(result: dict) -> str:
    header, body = _table(result)

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    out = ["| " + " | ".join(esc(h) for h in header) + " |"]
    out.append("|" + "|".join(["---"] * len(header)) + "|")
    for r in body:
        cells = [f"`{esc(r[0])}`", r[1], f"`{esc(r[2])}`" if r[2] != "-" else "-"]
        cells += [f"`{c}`" for c in r[3:]]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("`C R U D` = create, read, update, delete allowed; `-` = denied.")
    return "\n".join(out) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}th,td{border:1px solid #bbb;padding:.25em .5em;text-align:center}
th{background:#eee}td.name{text-align:left;font-family:monospace}
td.allow{background:#c8e6c9;color:#1b5e20}td.deny{background:#ffcdd2;color:#b71c1c}
td.unreach{background:#e0e0e0;color:#616161;font-style:italic}
caption{caption-side:top;text-align:left;font-weight:bold;margin-bottom:.5em}
"""


def render_matrix_html(result: dict) -> str:
    e = html.escape
    ops = [op[0].upper() for op in OPERATIONS]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>propguard matrix: {e(result['file'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<table>",
        f"<caption>Property protections in {e(result['file'])}</caption>",
        "<thead><tr><th rowspan=2>section</th><th rowspan=2>line</th><th rowspan=2>example name</th>",
    ]
    parts += [f"<th colspan=4>{e(label)}</th>" for label in result["role_sets"]]
    parts.append("</tr><tr>")
    parts += [
        f'<th title="{op}">{op[0].upper()}</th>' for _ in result["role_sets"] for op in OPERATIONS
    ]
    parts.append("</tr></thead><tbody>")
    for row in result["rows"]:
        line = "built in" if row["line"] is None else str(row["line"])
        example = "-" if row["example"] is None else row["example"]
        cells = [
            f'<td class="name">[{e(row["section"])}]</td><td>{line}</td>',
            f'<td class="name">{e(example)}</td>',
        ]
        for cell in row["cells"]:
            if cell is None:
                cells.append('<td class="unreach" colspan=4>unreachable</td>')
                continue
            for op, letter in zip(OPERATIONS, ops, strict=True):
                ok = cell[op]
                cls, text = ("allow", letter) if ok else ("deny", "-")
                cells.append(
                    f'<td class="{cls}" title="{op}: {"allowed" if ok else "denied"}">{text}</td>'
                )
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    parts.append(
        "<p>Green: allowed; red: denied; each row is decided for the example name, which the "
        "engine routes to that section.</p></body></html>"
    )
    return "\n".join(parts) + "\n"


MATRIX_RENDERERS = {
    "text": render_matrix_text,
    "markdown": render_matrix_markdown,
    "md": render_matrix_markdown,
    "html": render_matrix_html,
    "json": lambda r: json.dumps(r, indent=2) + "\n",
}
