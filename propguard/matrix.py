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
from propguard.glance.collation import BINARY, NameFolding
from propguard.lint.regex import analyse
from propguard.lint.sections import analyse_sections
from propguard.rules.engine import OS_GLANCE_SECTION, RuleEngine
from propguard.rules.model import OPERATIONS, Conjunction, RulesDocument


@dataclass(frozen=True)
class RoleSet:
    label: str
    creds: Credentials


def parse_role_sets(text: str) -> list[RoleSet]:
    """``"member;admin;member+service:nova"`` -> role sets (``,`` also joins roles).

    ``-`` is a caller with no role. Raises ``ValueError`` for an empty set, an
    empty role (``member+``, ``a,,b``, ``service:``) or a malformed one.
    """
    sets = []
    for chunk in text.split(";"):
        label = chunk.strip()
        if label == "-":
            sets.append(RoleSet("-", credentials(frozenset(), frozenset())))
            continue
        if not label:
            raise ValueError(f"empty role set in {text!r} (write '-' for a caller with no role)")
        atoms = label.replace(",", "+").split("+")
        if any(not a.strip() for a in atoms):
            raise ValueError(f"empty role in {label!r}")
        entry = Conjunction.parse("+".join(a.strip() for a in atoms))
        sets.append(RoleSet(label, credentials(entry.user_roles, entry.service_roles)))
    return sets


def matrix(
    doc: RulesDocument,
    engine: RuleEngine,
    role_sets: list[RoleSet],
    os_glance_section: bool = True,
    folding: NameFolding = BINARY,
) -> dict:
    """The table; under a folding collation each row's example is a folded name
    (the filter decides every spelling as its folded one), so a section no
    folded name reaches is unreachable."""
    reaching = _reaching(doc, engine, os_glance_section)
    rows = []
    sections = list(doc.sections)
    if os_glance_section:
        sections.insert(0, OS_GLANCE_SECTION)
    fold = folding.fold
    for k, section in enumerate(sections):
        name = "os_glance_example" if section.builtin else reaching.get(section.index)
        if not folding.is_identity and not section.builtin:
            name = _folded_example(name, section, sections[:k], engine, folding)
        cells = []
        for rs in role_sets:
            if name is None:
                cells.append(None)
            else:
                cells.append({op: engine.allowed(fold(name), op, rs.creds) for op in OPERATIONS})
        rows.append(
            {
                "section": section.pattern,
                "line": None if section.builtin else section.position.line,
                "example": name,
                "cells": cells,
            }
        )
    return {
        "file": doc.path,
        "name_collation": folding.name,
        "role_sets": [rs.label for rs in role_sets],
        "rows": rows,
    }


def with_shadow(result: dict, shadow: RuleEngine, role_sets: list[RoleSet], folding: NameFolding) -> dict:
    """``result`` with, per section and role set, what the shadow rules decide otherwise for
    the row's example name: ``changes`` lists ``{section, line, role_set, op, now, shadow}``
    (the summary of what switching to the shadow rules would change, for whom)."""
    changes = []
    for row in result["rows"]:
        name = row["example"]
        if name is None:
            continue
        for rs, cell in zip(role_sets, row["cells"], strict=True):
            for op in OPERATIONS:
                other = shadow.allowed(folding.fold(name), op, rs.creds)
                if other != cell[op]:
                    changes.append(
                        {
                            "section": row["section"],
                            "line": row["line"],
                            "example": name,
                            "role_set": rs.label,
                            "op": op,
                            "now": "allow" if cell[op] else "deny",
                            "shadow": "allow" if other else "deny",
                        }
                    )
    result["shadow_file"] = shadow.document.path
    result["changes"] = changes
    return result


def _changes_text(result: dict) -> list[str]:
    if "changes" not in result:
        return []
    out = ["", f"With the shadow rules ({result['shadow_file']}):"]
    if not result["changes"]:
        out.append("  no decision of this table changes")
    for c in result["changes"]:
        where = f"line {c['line']}" if c["line"] is not None else "built in"
        out.append(
            f"  [{c['section']}] ({where}), {c['role_set']}: {c['op']} {c['now']} -> {c['shadow']}"
        )
    return out


def _folded_example(
    raw: str | None, section, earlier: list, engine: RuleEngine, folding: NameFolding
) -> str | None:
    """A folded name the engine routes to ``section`` (None: no folded name reaches it)."""
    from propguard.rules.folded import reaching_folded

    candidates = [folding.fold(raw)] if raw is not None else []
    try:
        found = reaching_folded(section.pattern, [s.pattern for s in earlier], folding)
    except (RecursionError, MemoryError, OverflowError):
        found = None
    if found is not None:
        candidates.append(found)
    return next((n for n in candidates if engine.section_for(folding.fold(n)) is section), None)


def _reaching(doc: RulesDocument, engine: RuleEngine, os_glance_section: bool) -> dict:
    """Section index -> a name the engine routes there (None: none reaches it).

    From lint's order analysis; when a pattern is too large to model, from
    each pattern's own example names, kept only if the engine routes them to
    that section.
    """
    try:
        return analyse_sections(doc, os_glance_section=os_glance_section, overlap=False).reaching
    except (RecursionError, MemoryError, OverflowError):
        found: dict[int, str | None] = {}
        for section in doc.sections:
            try:
                samples = analyse(section.pattern).samples
            except (RecursionError, MemoryError, OverflowError):
                samples = ()
            found[section.index] = next(
                (n for n in samples if engine.section_for(n) is section), None
            )
        return found


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
    out += _changes_text(result)
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


#: Readable at 1366 px with a dozen role sets: long patterns wrap (and are cut
#: at SHOWN_PATTERN characters, the whole text in the tooltip), headers wrap at
#: '+' and ',', cells stay narrow.
_CSS = """
body{font-family:system-ui,sans-serif;margin:1em;color:#222;font-size:14px}
table{border-collapse:collapse;width:100%;table-layout:auto}
th,td{border:1px solid #bbb;padding:.2em .35em;text-align:center;vertical-align:middle}
thead th{background:#eee;position:sticky;top:0}
thead tr:nth-child(2) th{top:1.9em}
th.set{min-width:4.5em;max-width:9em;overflow-wrap:break-word;font-weight:600}
td.name{text-align:left;font-family:ui-monospace,monospace;overflow-wrap:anywhere;
  max-width:24em;min-width:8em}
td.example{text-align:left;font-family:ui-monospace,monospace;overflow-wrap:anywhere;
  max-width:12em;min-width:7em;color:#444}
td.line{white-space:nowrap}
td.allow{background:#c8e6c9;color:#1b5e20;width:1.4em}
td.deny{background:#ffcdd2;color:#b71c1c;width:1.4em}
td.unreach{background:#e0e0e0;color:#616161;font-style:italic}
caption{caption-side:top;text-align:left;font-weight:bold;margin-bottom:.5em;
  overflow-wrap:anywhere}
p.legend{font-size:90%;color:#444}
"""

#: Longest pattern shown in full in a cell; longer ones end in '...' (full text on hover).
SHOWN_PATTERN = 60


def _wrappable(text: str) -> str:
    """Escaped ``text`` with break opportunities after '+', ',', ':', '|' and '_'."""
    out = html.escape(text)
    for sep in ("+", ",", ":", "|", "_"):
        out = out.replace(sep, sep + "<wbr>")
    return out


def _pattern_cell(pattern: str) -> str:
    full = f"[{pattern}]"
    shown = full if len(full) <= SHOWN_PATTERN else full[: SHOWN_PATTERN - 4] + "...]"
    return f'<td class="name" title="{html.escape(full, quote=True)}">{_wrappable(shown)}</td>'


def render_matrix_html(result: dict) -> str:
    e = html.escape
    ops = [op[0].upper() for op in OPERATIONS]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>propguard matrix: {e(result['file'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<table>",
        f"<caption>Property protections in {e(result['file'])}</caption>",
        "<thead><tr><th rowspan=2>section</th><th rowspan=2>line</th>"
        "<th rowspan=2>example name</th>",
    ]
    parts += [
        f'<th class="set" colspan=4 title="{e(label, quote=True)}">{_wrappable(label)}</th>'
        for label in result["role_sets"]
    ]
    parts.append("</tr><tr>")
    parts += [
        f'<th title="{op}">{op[0].upper()}</th>' for _ in result["role_sets"] for op in OPERATIONS
    ]
    parts.append("</tr></thead><tbody>")
    for row in result["rows"]:
        line = "built in" if row["line"] is None else str(row["line"])
        example = "-" if row["example"] is None else row["example"]
        cells = [
            _pattern_cell(row["section"]),
            f'<td class="line">{line}</td>',
            f'<td class="example" title="{e(example, quote=True)}">{_wrappable(example)}</td>',
        ]
        for label, cell in zip(result["role_sets"], row["cells"], strict=True):
            if cell is None:
                cells.append('<td class="unreach" colspan=4>unreachable</td>')
                continue
            for op, letter in zip(OPERATIONS, ops, strict=True):
                ok = cell[op]
                cls, text = ("allow", letter) if ok else ("deny", "-")
                verdict = "allowed" if ok else "denied"
                cells.append(
                    f'<td class="{cls}" title="{e(label, quote=True)}: {op} {verdict}">{text}</td>'
                )
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    parts.append(
        '<p class="legend">C R U D: create, read, update, delete; green: allowed; red: denied. '
        "Each row is decided by the filter's engine for the example name, which the engine "
        "routes to that section; hover a cell for its role set and operation, a pattern for "
        "its full text.</p></body></html>"
    )
    return "\n".join(parts) + "\n"


MATRIX_RENDERERS = {
    "text": render_matrix_text,
    "markdown": render_matrix_markdown,
    "md": render_matrix_markdown,
    "html": render_matrix_html,
    "json": lambda r: json.dumps(r, indent=2) + "\n",
}
