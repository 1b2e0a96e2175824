"""An INI reader with positions, faithful to :mod:`configparser` as Glance uses it.

Glance reads rules with ``configparser.ConfigParser()`` (strict, ``=``/``:``
delimiters, full-line ``#``/``;`` comments, lower-cased option names,
indented continuation lines). This reader applies the same grammar, with
configparser's own regular expressions, but keeps the line and column of every
section and option and reports *every* syntax problem instead of stopping at
the first, which the linter and the load errors both need.
"""

from __future__ import annotations

import configparser
import io

from propguard.rules.model import Position, Problem, RawOption, RawSection, Severity

_SECTION_RE = configparser.RawConfigParser.SECTCRE
_OPTION_RE = configparser.RawConfigParser.OPTCRE
_COMMENT_PREFIXES = ("#", ";")
DEFAULT_SECTION = configparser.DEFAULTSECT


def split_lines(text: str) -> list[str]:
    """Split like a file opened in text mode (universal newlines), as configparser reads.

    ``str.splitlines`` also breaks at form feeds, ``\\x1c``-``\\x1e``, ``\\x85`` and
    ``\\u2028``/``\\u2029``, which configparser keeps inside a line: a comment
    or value could then hide a ``[section]`` or ``key = value`` line that
    Glance never sees, and every later line number would be off.
    """
    return [line.rstrip("\n") for line in io.StringIO(text, newline=None)]


def read_ini(path: str, text: str) -> tuple[list[RawSection], list[Problem]]:
    """Split ``text`` into sections and options; return them with syntax problems.

    ``[DEFAULT]`` is returned like any other section (named ``DEFAULT``) so the
    caller can decide what to do with it.
    """
    sections: list[RawSection] = []
    problems: list[Problem] = []
    seen_sections: dict[str, RawSection] = {}
    current: RawSection | None = None
    option: RawOption | None = None
    continuation: list[str] = []
    indent_level = 0

    def finish_option() -> None:
        nonlocal option, continuation
        if option is not None and continuation:
            option.value = "\n".join([option.value, *continuation]).rstrip()
        option = None
        continuation = []

    for lineno, line in enumerate(split_lines(text), start=1):
        stripped = line.strip()
        if any(stripped.startswith(p) for p in _COMMENT_PREFIXES):
            continue
        if not stripped:
            if option is not None:
                continuation.append("")
            continue
        indent = len(line) - len(line.lstrip())
        if option is not None and indent > indent_level:
            continuation.append(stripped)
            continue
        finish_option()
        indent_level = indent
        column = indent + 1
        header = _SECTION_RE.match(stripped)
        if header:
            name = header.group("header")
            pos = Position(path, lineno, column)
            if name in seen_sections:
                first = seen_sections[name].position.line
                problems.append(
                    Problem(
                        "PG103",
                        Severity.ERROR,
                        pos,
                        f"duplicate section [{name}] (first defined at line {first})",
                        "configparser refuses duplicate sections; merge them into one",
                    )
                )
                current = RawSection(name, pos)  # parsed, but not kept
                continue
            current = RawSection(name, pos)
            seen_sections[name] = current
            sections.append(current)
            continue
        if current is None:
            problems.append(
                Problem(
                    "PG102",
                    Severity.ERROR,
                    Position(path, lineno, column),
                    "text before the first [section] header",
                )
            )
            continue
        match = _OPTION_RE.match(stripped)
        if not match or not match.group("option").strip():
            problems.append(
                Problem(
                    "PG102",
                    Severity.ERROR,
                    Position(path, lineno, column),
                    "not a 'key = value' line",
                    "each line in a section must be 'create|read|update|delete = value'",
                )
            )
            continue
        name = match.group("option").rstrip().lower()
        if name in current.options:
            first = current.options[name].position.line
            problems.append(
                Problem(
                    "PG113",
                    Severity.ERROR,
                    Position(path, lineno, column),
                    f"'{name}' given twice in [{current.name}] (first at line {first})",
                )
            )
            continue
        raw_value = match.group("value")
        value = raw_value.strip()
        value_col = indent + match.start("value") + 1
        option = RawOption(
            name,
            value,
            Position(path, lineno, column),
            Position(path, lineno, value_col),
        )
        current.options[name] = option
    finish_option()
    return sections, problems
