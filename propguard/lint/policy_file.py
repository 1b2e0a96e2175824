"""Lint oslo.policy YAML (or JSON) files and ``policy.d`` directories (PG3xx).

oslo.policy's own tools stop at the first broken file, keep the last of two
duplicate keys silently and say nothing about always-true rules. Here every
file of a set (``policy.yaml`` plus its ``policy.d``) is read on its own, so a
broken one is reported with its line and the others are still checked;
references resolve across the whole set and the registered defaults of the
namespaces given.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

import yaml
from oslo_policy import _checks, _parser
from oslo_policy import policy as oslo_policy

from propguard.credentials import Credentials
from propguard.lint.rules import LintOptions, always_true
from propguard.rules.model import Position, Problem, Severity
from propguard.rules.policy_set import namespace_defaults

POLICY_SUFFIXES = (".yaml", ".yml", ".json")

#: Credential keys propguard passes to oslo.policy (Credentials.policy_values,
#: with ``system`` as oslo.policy adds it for a system-scoped caller).
CREDENTIAL_KEYS = frozenset(Credentials(system_scope="all").policy_values())


@dataclass
class PolicyEntry:
    name: str
    check_str: object
    key_pos: Position
    value_pos: Position
    check: _checks.BaseCheck | None = None


@dataclass
class PolicyFile:
    path: str
    entries: dict[str, PolicyEntry] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


class _Loader(yaml.SafeLoader):
    """SafeLoader that records duplicate keys and key/value positions."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    seen: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            continue
        if key in seen:
            loader.duplicates.append((key, key_node.start_mark, seen[key]))
        else:
            seen[key] = key_node.start_mark
        if node is loader.top:
            loader.positions[key] = (key_node.start_mark, value_node.start_mark)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _mark_pos(path: str, mark) -> Position:
    return Position(path, mark.line + 1, mark.column + 1)


def read_policy_file(path: str) -> PolicyFile:
    result = PolicyFile(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        result.problems.append(
            Problem(
                "PG101", Severity.ERROR, Position(path, 1), f"cannot read policy file: {reason}"
            )
        )
        return result
    loader = _Loader(text)
    loader.duplicates = []
    loader.positions = {}
    try:
        loader.top = loader.get_single_node()
        data = loader.construct_document(loader.top) if loader.top is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = _mark_pos(path, mark) if mark is not None else Position(path, 1)
        result.problems.append(
            Problem(
                "PG118",
                Severity.ERROR,
                where,
                f"policy file is not valid YAML: {getattr(exc, 'problem', None) or exc}",
                "oslo.policy refuses the whole file (and, in a policy.d, the whole set)",
            )
        )
        return result
    finally:
        loader.dispose()
    if data is None:
        return result
    if not isinstance(data, dict):
        result.problems.append(
            Problem(
                "PG118",
                Severity.ERROR,
                Position(path, 1),
                "policy file must be a mapping of rule names to check strings",
            )
        )
        return result
    for key, mark, first in loader.duplicates:
        result.problems.append(
            Problem(
                "PG301",
                Severity.WARNING,
                _mark_pos(path, mark),
                f"'{key}' is defined twice (first at line {first.line + 1}); "
                "YAML keeps only this last value, silently",
                "remove one of the two definitions",
            )
        )
    for key, value in data.items():
        key_mark, value_mark = loader.positions.get(key, (None, None))
        key_pos = _mark_pos(path, key_mark) if key_mark else Position(path, 1)
        value_pos = _mark_pos(path, value_mark) if value_mark else key_pos
        result.entries[str(key)] = PolicyEntry(str(key), value, key_pos, value_pos)
    return result


def policy_set_files(paths: list[str]) -> list[str]:
    """Expand directories (policy.d) into their policy files, in oslo.policy's order."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if os.path.isfile(full) and name.endswith(POLICY_SUFFIXES):
                    files.append(full)
        else:
            files.append(path)
            sibling = os.path.join(os.path.dirname(path) or ".", "policy.d")
            if os.path.isdir(sibling) and sibling not in paths:
                files.extend(policy_set_files([sibling]))
    return files


class _Resolver:
    """``check_for`` over a set of files plus registered defaults (for always_true)."""

    def __init__(self, checks: dict[str, _checks.BaseCheck]) -> None:
        self.checks = checks

    def check_for(self, name: str):
        return self.checks.get(name)


def lint_policy_files(paths: list[str], options: LintOptions) -> list[Problem]:
    files = [read_policy_file(p) for p in policy_set_files(paths)]
    problems: list[Problem] = [p for f in files for p in f.problems]
    defaults: dict[str, _checks.BaseCheck] = {}
    for namespace in options.rules.policy_namespaces:
        try:
            for rule in namespace_defaults(namespace):
                defaults[rule.name] = _parser.parse_rule(rule.check_str)
        except KeyError:
            problems.append(
                Problem(
                    "PG117",
                    Severity.ERROR,
                    Position("<policy_namespaces>", 1),
                    f"policy namespace '{namespace}' is not installed",
                )
            )
    checks = dict(defaults)
    for f in files:
        for entry in f.entries.values():
            problems.extend(_parse_entry(entry))
            if entry.check is not None:
                checks[entry.name] = entry.check
    resolver = _Resolver(checks)
    for f in files:
        for entry in f.entries.values():
            if entry.check is None:
                continue
            problems.extend(_check_entry(entry, resolver, options))
    problems.extend(_cycles(files, checks))
    return problems


def _parse_entry(entry: PolicyEntry) -> list[Problem]:
    if not isinstance(entry.check_str, str):
        return [
            Problem(
                "PG303",
                Severity.ERROR,
                entry.value_pos,
                f"'{entry.name}' must be a check string, not {type(entry.check_str).__name__}",
            )
        ]
    parser_log = logging.getLogger(_parser.__name__)
    was_disabled, parser_log.disabled = parser_log.disabled, True  # it logs a traceback
    try:
        check = _parser.parse_rule(entry.check_str)
    finally:
        parser_log.disabled = was_disabled
    entry.check = check
    bangs = len(re.findall(r"(?<![\w:])!(?![\w])", entry.check_str))
    falses = sum(1 for c in _walk(check) if isinstance(c, _checks.FalseCheck))
    if falses > bangs:
        entry.check = _checks.FalseCheck()
        return [
            Problem(
                "PG303",
                Severity.ERROR,
                entry.value_pos,
                f"oslo.policy cannot parse (all of) '{entry.name}': {entry.check_str!r}; "
                "it treats the unparsable part as '!' (never true)",
                "check 'and'/'or'/'not', parentheses and 'kind:match' pairs",
            )
        ]
    return []


def _walk(check):
    stack = [check]
    while stack:
        c = stack.pop()
        yield c
        stack.extend(getattr(c, "rules", ()) or ())
        inner = getattr(c, "rule", None)
        if isinstance(inner, _checks.BaseCheck):
            stack.append(inner)


def _check_entry(entry: PolicyEntry, resolver: _Resolver, options: LintOptions) -> list[Problem]:
    problems: list[Problem] = []
    if always_true(entry.check, resolver):
        problems.append(
            Problem(
                "PG302",
                Severity.WARNING,
                entry.value_pos,
                f"'{entry.name}' is always true ({entry.check_str!r}): it allows every caller, "
                "anonymous included",
                "write the roles it should require, or '!' to deny",
            )
        )
    known = options.known_roles
    known_lower = {k.lower(): k for k in known} if known is not None else {}
    for c in _walk(entry.check):
        if isinstance(c, oslo_policy.RuleCheck) and resolver.check_for(c.match) is None:
            problems.append(
                Problem(
                    "PG304",
                    Severity.ERROR,
                    entry.value_pos,
                    f"'{entry.name}' references 'rule:{c.match}', which no policy file or "
                    "registered default defines",
                    "oslo.policy would fall back to the 'default' rule (Glance: allow everyone)",
                )
            )
        elif isinstance(c, _checks.RoleCheck) and known is not None:
            if "%(" not in c.match and c.match.lower() not in known_lower:
                problems.append(
                    Problem(
                        "PG208",
                        Severity.WARNING,
                        entry.value_pos,
                        f"role '{c.match}' in '{entry.name}' is not a known role",
                        "check the spelling or add it to --known-roles",
                    )
                )
        elif isinstance(c, _checks.GenericCheck):
            problems.extend(_generic(entry, c))
    return problems


_HINTS = {
    "rol": "did you mean 'role:'?",
    "roles_": "did you mean 'role:'?",
    "is_admin": "did you mean 'role:'?",
    "service_role": "did you mean 'service_roles:'?",
}


def _generic(entry: PolicyEntry, c: _checks.GenericCheck) -> list[Problem]:
    kind = c.kind
    try:
        import ast

        ast.literal_eval(kind)
        return []  # a literal compared with a target value
    except (ValueError, SyntaxError):
        pass
    root = kind.split(".", 1)[0]
    if root not in CREDENTIAL_KEYS:
        return [
            Problem(
                "PG306",
                Severity.WARNING,
                entry.value_pos,
                f"'{kind}:{c.match}' in '{entry.name}' never matches: propguard's credentials "
                f"have no '{root}' (they have {', '.join(sorted(CREDENTIAL_KEYS))})",
                _HINTS.get(root),
            )
        ]
    # roles:/service_roles: compare case-insensitively in propguard, like role:
    # (propguard.rules.policy_set.RoleListCheck), so 'service_roles:Service' matches.
    return []


def _cycles(files: list[PolicyFile], checks: dict) -> list[Problem]:
    entries = {e.name: e for f in files for e in f.entries.values()}
    graph = {
        name: [c.match for c in _walk(check) if isinstance(c, oslo_policy.RuleCheck)]
        for name, check in checks.items()
    }
    problems: list[Problem] = []
    reported: set[frozenset] = set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    where = next((entries[n] for n in cycle if n in entries), None)
                    if where is not None:
                        problems.append(
                            Problem(
                                "PG305",
                                Severity.ERROR,
                                where.value_pos,
                                "cyclic rule references: " + " -> ".join([*cycle, nxt]),
                                "oslo.policy refuses the rules (InvalidDefinitionError)",
                            )
                        )
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return problems
