"""Parse Glance ``property-protections`` files (roles and policies formats).

Semantics kept from Glance (``glance/common/property_utils.py``): sections are
regular expressions in file order, the four operations are mandatory, ``@`` is
everyone and ``!`` nobody, roles compare case-insensitively, one policy name
per operation.

Where Glance is lenient, propguard fails closed and says where (documented in
docs/differences.md): unknown or misspelt operation keys,
``[DEFAULT]`` filling operations, ``%`` interpolation, empty role entries,
``@``/``!`` mixed with role names and ``@`` with ``!`` are load errors. Roles
may name service-token roles explicitly as ``service:<role>`` and combine
roles with ``+`` (``member+service:nova``: the user holds ``member`` *and* a
confirmed service token holds ``nova``).
"""

from __future__ import annotations

import functools
import re

from propguard.rules.ini import DEFAULT_SECTION, read_ini, split_lines
from propguard.rules.model import (
    EVERYONE,
    NOBODY,
    OPERATIONS,
    Conjunction,
    OpValue,
    Position,
    Problem,
    RawOption,
    RawSection,
    RuleFormat,
    RulesDocument,
    Section,
    Severity,
)
from propguard.rules.policy_source import read_text

#: Glance (32.0.0+) drops user sections whose name starts with this.
OS_GLANCE_PREFIX = "os_glance"


def parse_rules_file(path: str, rule_format: RuleFormat | str) -> RulesDocument:
    """Read and parse ``path``; an unreadable file becomes a PG101 problem."""
    rule_format = RuleFormat(rule_format)
    text, problem = read_rules_text(path)
    if problem is not None:
        return RulesDocument(path, rule_format, problems=[problem])
    assert text is not None
    return parse_rules_text(path, text, rule_format)


def read_rules_text(path: str) -> tuple[str | None, Problem | None]:
    """The text of a rules file, or the PG101 problem that stops reading it."""
    return read_text(path, "rules file", "PG101")


def parse_rules_text(path: str, text: str, rule_format: RuleFormat | str) -> RulesDocument:
    """Parse rules from ``text``; ``path`` is only used to name positions."""
    rule_format = RuleFormat(rule_format)
    raw_sections, problems = read_ini(path, text)
    doc = RulesDocument(path, rule_format, problems=problems, raw_sections=raw_sections)
    doc.lines = split_lines(text)
    index = 0
    for raw in raw_sections:
        if raw.name == DEFAULT_SECTION:
            _check_default_section(raw, doc)
            continue
        if raw.name.startswith(OS_GLANCE_PREFIX):
            doc.problems.append(
                Problem(
                    "PG116",
                    Severity.WARNING,
                    raw.position,
                    f"section [{raw.name}] is ignored: the os_glance namespace is reserved "
                    "for Glance (as Glance 32.0.0+ does)",
                    "remove the section; os_glance_* properties are readable by everyone "
                    "and written only by Glance itself",
                )
            )
            continue
        section = _parse_section(raw, index, doc)
        if section is not None:
            doc.sections.append(section)
            index += 1
    return doc


def _check_default_section(raw: RawSection, doc: RulesDocument) -> None:
    for option in raw.options.values():
        doc.problems.append(
            Problem(
                "PG112",
                Severity.ERROR,
                option.position,
                f"[DEFAULT] sets '{option.name}': configparser would silently copy it into "
                "every section that lacks it",
                "write the operation in each section explicitly",
            )
        )


def _parse_section(raw: RawSection, index: int, doc: RulesDocument) -> Section | None:
    ok = True
    reason = regex_error(raw.name)
    if reason is not None:
        ok = False
        doc.problems.append(
            Problem(
                "PG104",
                Severity.ERROR,
                Position(raw.position.file, raw.position.line, raw.position.column + 1),
                f"section [{_shown(raw.name)}] is not a valid regular expression: {reason}",
            )
        )
    for name, option in raw.options.items():
        if name not in OPERATIONS:
            ok = False
            guess = _closest_operation(name)
            doc.problems.append(
                Problem(
                    "PG106",
                    Severity.ERROR,
                    option.position,
                    f"unknown operation '{name}' in [{raw.name}]",
                    f"did you mean '{guess}'?"
                    if guess
                    else "operations are " + ", ".join(OPERATIONS),
                )
            )
    values: dict[str, OpValue] = {}
    for op in OPERATIONS:
        option = raw.options.get(op)
        if option is None:
            ok = False
            doc.problems.append(
                Problem(
                    "PG105",
                    Severity.ERROR,
                    raw.position,
                    f"section [{raw.name}] has no '{op}' operation",
                    "all four of create, read, update and delete are required",
                )
            )
            continue
        value = _parse_value(option, doc)
        if value is None:
            ok = False
        else:
            values[op] = value
    if not ok:
        return None
    return Section(index, raw.name, raw.position, values)


@functools.lru_cache(maxsize=4096)
def regex_error(pattern: str) -> str | None:
    """Why Python's ``re`` cannot compile ``pattern`` (as the engine does), or None.

    Besides ``re.error``, ``re.compile`` raises OverflowError for a repeat
    count it cannot hold (``a{4294967296}``) and RecursionError for groups
    nested too deeply: each is a position in the file, never a crash.
    """
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    except OverflowError as exc:
        return f"{exc} (at most {_MAX_REPEAT - 1} repetitions)"
    except RecursionError:
        return "groups nested too deeply for Python's re"
    except (ValueError, MemoryError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


_MAX_REPEAT = 4294967295


def _shown(pattern: str, limit: int = 80) -> str:
    """A long pattern shortened for a message."""
    return pattern if len(pattern) <= limit else pattern[: limit - 3] + "..."


def _closest_operation(name: str) -> str | None:
    import difflib

    matches = difflib.get_close_matches(name, OPERATIONS, n=1, cutoff=0.5)
    return matches[0] if matches else None


def _parse_value(option: RawOption, doc: RulesDocument) -> OpValue | None:
    raw = option.value
    pos = option.value_position
    if "%" in raw:
        doc.problems.append(
            Problem(
                "PG109",
                Severity.ERROR,
                Position(pos.file, pos.line, pos.column + raw.index("%")),
                f"'%' in the value of '{option.name}': configparser interpolation is not "
                "supported (Glance fails with a 500 here)",
                "write role or policy names literally",
            )
        )
        return None
    if "\n" in raw:
        doc.problems.append(
            Problem(
                "PG115",
                Severity.ERROR,
                pos,
                f"the value of '{option.name}' continues on the next line",
                "keep each value on one line",
            )
        )
        return None
    base = {"op": option.name, "raw": raw, "position": option.position, "value_position": pos}
    if not raw:
        doc.problems.append(
            Problem(
                "PG201",
                Severity.WARNING,
                option.position,
                f"'{option.name}' is empty: nobody is allowed (write '!' to say so)",
            )
        )
        return OpValue(**base, nobody=True)
    if doc.format is RuleFormat.POLICIES:
        return _parse_policy_value(option, doc, base)
    return _parse_roles_value(option, doc, base)


def _parse_policy_value(option: RawOption, doc: RulesDocument, base: dict) -> OpValue | None:
    raw = option.value
    if "," in raw:
        doc.problems.append(
            Problem(
                "PG110",
                Severity.ERROR,
                option.value_position,
                f"more than one policy for '{option.name}': {raw!r}",
                "name exactly one policy; combine them in the policy file with 'or'/'and'",
            )
        )
        return None
    if raw == EVERYONE:
        return OpValue(**base, everyone=True)
    if raw == NOBODY:
        return OpValue(**base, nobody=True)
    return OpValue(**base, policy=raw)


def _parse_roles_value(option: RawOption, doc: RulesDocument, base: dict) -> OpValue | None:
    raw = option.value
    pos = option.value_position
    entries: list[Conjunction] = []
    specials: set[str] = set()
    ok = True
    offset = 0
    for part in raw.split(","):
        entry = part.strip()
        col = pos.column + offset + (len(part) - len(part.lstrip()))
        offset += len(part) + 1
        where = Position(pos.file, pos.line, col)
        if not entry:
            ok = False
            doc.problems.append(
                Problem(
                    "PG108",
                    Severity.ERROR,
                    where,
                    f"empty role entry in '{option.name}' ({raw!r})",
                    "remove the stray comma (Glance would match a caller with an empty role)",
                )
            )
            continue
        if entry in (EVERYONE, NOBODY):
            specials.add(entry)
            continue
        conj = _parse_conjunction(entry, where, option.name, doc)
        if conj is None:
            ok = False
        else:
            entries.append(conj)
    if EVERYONE in specials and NOBODY in specials:
        doc.problems.append(
            Problem(
                "PG107",
                Severity.ERROR,
                pos,
                f"'@' and '!' together in '{option.name}'",
                "'@' means everyone and '!' nobody; keep one",
            )
        )
        return None
    if specials and entries:
        special = next(iter(specials))
        doc.problems.append(
            Problem(
                "PG114",
                Severity.ERROR,
                pos,
                f"'{special}' mixed with role names in '{option.name}' ({raw!r})",
                "Glance lets '@' win over roles and '!' win over roles silently; "
                f"write '{special}' alone or list roles only",
            )
        )
        return None
    if not ok:
        return None
    if specials:
        return OpValue(**base, everyone=EVERYONE in specials, nobody=NOBODY in specials)
    return OpValue(**base, entries=tuple(entries))


def _parse_conjunction(
    entry: str, where: Position, op: str, doc: RulesDocument
) -> Conjunction | None:
    try:
        return Conjunction.parse(entry)
    except ValueError:
        doc.problems.append(
            Problem(
                "PG115",
                Severity.ERROR,
                where,
                f"malformed role entry {entry!r} in '{op}'",
                "write role, service:role, or roles joined with '+'",
            )
        )
        return None
