"""Inline suppression comments.

* ``# propguard: disable=PG203,PG204`` on a comment line applies to the next
  line that is not a comment or blank; when that line is a ``[section]``
  header, to the whole section. At the end of a line (YAML), to that line.
* ``# propguard: disable-file=PG210`` anywhere applies to the whole file.
* ``disable=all`` suppresses every code.
"""

from __future__ import annotations

import re

from propguard.rules.model import Problem

_MARK = re.compile(r"[#;]\s*propguard:\s*(disable|disable-file)\s*=\s*([A-Za-z0-9_, ]+)")


def _codes(text: str) -> set[str]:
    return {c.strip().upper() for c in text.split(",") if c.strip()}


def suppressions(lines: list[str]) -> tuple[set[str], dict[int, set[str]]]:
    """``(file-wide codes, {line number: codes})``."""
    whole: set[str] = set()
    by_line: dict[int, set[str]] = {}
    pending: set[str] = set()
    section: set[str] = set()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        match = _MARK.search(line)
        is_comment = stripped.startswith(("#", ";"))
        if match and match.group(1) == "disable-file":
            whole |= _codes(match.group(2))
            continue
        if is_comment:
            if match:
                pending |= _codes(match.group(2))
            continue
        if not stripped:
            continue
        if stripped.startswith("["):
            section = set(pending)
        codes = pending | section
        if match:
            codes = codes | _codes(match.group(2))
        if codes:
            by_line[number] = codes
        pending = set()
    return whole, by_line


def apply(problems: list[Problem], lines_by_file: dict[str, list[str]]) -> list[Problem]:
    cache: dict[str, tuple[set[str], dict[int, set[str]]]] = {}
    kept: list[Problem] = []
    for problem in problems:
        path = problem.position.file
        if path not in lines_by_file:
            kept.append(problem)
            continue
        if path not in cache:
            cache[path] = suppressions(lines_by_file[path])
        whole, by_line = cache[path]
        codes = whole | by_line.get(problem.position.line, set())
        if problem.code in codes or "ALL" in codes:
            continue
        kept.append(problem)
    return kept
