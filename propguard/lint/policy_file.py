"""Lint oslo.policy YAML (or JSON) files and ``policy.d`` directories (PG3xx).

Files are read by the filter's own reader
(:mod:`propguard.rules.policy_source`): the same files (the policy file, then
every file of its ``policy_dirs`` not starting with a dot), decoded and parsed
the same way, so whatever the filter's loader refuses is reported here with
its file and line. The loader itself is run on each policy file too, and its
errors are reported: lint is never cleaner than the filter.

Beyond what the loader refuses, every rule of the set is checked, used or
not: oslo.policy's own tools stop at the first broken file, keep the last of
two duplicate keys silently and say nothing about always-true rules.
References resolve across the whole set and the registered defaults of the
namespaces given.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from oslo_policy import _checks
from oslo_policy import policy as oslo_policy

from propguard.credentials import Credentials
from propguard.lint.rules import LintOptions, always_true
from propguard.rules.model import Position, Problem, Severity
from propguard.rules.policy_set import (
    MAX_POLICY_DEPTH,
    PolicyLoadError,
    load_policy_set,
    namespace_defaults,
    too_deep,
)
from propguard.rules.policy_source import (
    PolicyEntry,
    PolicySource,
    policy_dir_files,
    policy_set_files,
    read_policy_source,
    rule_graph,
    walk,
)

#: Names of policy files (by suffix, case-insensitive) among lint's arguments.
POLICY_SUFFIXES = (".yaml", ".yml", ".json")

#: Credential keys propguard passes to oslo.policy (Credentials.policy_values,
#: with ``system`` as oslo.policy adds it for a system-scoped caller).
CREDENTIAL_KEYS = frozenset(Credentials(system_scope="all").policy_values())


def is_policy_file_name(path: str) -> bool:
    return path.lower().endswith(POLICY_SUFFIXES)


@dataclass
class PolicyTarget:
    """A policy set to lint: a policy file (with its ``policy_dirs``) or a bare directory."""

    path: str
    directory: bool = False

    def files(self, options: LintOptions) -> list[str]:
        if self.directory:
            return policy_dir_files(self.path)
        return policy_set_files(self.path, options.rules.policy_dirs)


@dataclass
class _Resolver:
    """``check_for`` over a set of files plus registered defaults (for always_true)."""

    checks: dict[str, _checks.BaseCheck] = field(default_factory=dict)

    def check_for(self, name: str):
        return self.checks.get(name)


def lint_policy_files(
    targets: list[PolicyTarget], options: LintOptions, binding: set[tuple] | None = None
) -> list[Problem]:
    """Findings for policy files and directories, each file read once.

    ``binding`` receives the key (code, position, message) of every error
    the filter's loader raises for these sets: nothing may suppress those.
    """
    problems: list[Problem] = []
    binding = binding if binding is not None else set()
    read: dict[str, PolicySource] = {}
    for target in targets:
        if not target.directory:
            refused = _loader_problems(target.path, options)
            binding.update((p.code, p.position, p.message) for p in refused)
            problems.extend(refused)
        sources = []
        for path in target.files(options):
            if path not in read:
                read[path] = read_policy_source(path)
                problems.extend(read[path].problems)
                problems.extend(read[path].entry_problems)
                binding.update((p.code, p.position, p.message) for p in read[path].errors)
            sources.append(read[path])
        problems.extend(_lint_set(sources, options))
    return problems


def _loader_problems(path: str, options: LintOptions) -> list[Problem]:
    """What the filter's loader refuses in this policy set (its own words and places)."""
    try:
        load_policy_set(path, options.rules.policy_namespaces, options.rules.policy_dirs)
    except PolicyLoadError as exc:
        return exc.problems
    return []


def _lint_set(sources: list[PolicySource], options: LintOptions) -> list[Problem]:
    checks: dict[str, _checks.BaseCheck] = {}
    for namespace in options.rules.policy_namespaces:
        try:
            for rule in namespace_defaults(namespace):
                checks[rule.name] = rule.check
        except KeyError:
            continue  # PG117 comes from the loader, once
    entries: dict[str, PolicyEntry] = {}
    for source in sources:
        for entry in source.entries.values():
            entries[entry.name] = entry
            if entry.check is not None:
                checks[entry.name] = entry.check
    graph = rule_graph(checks)
    resolver = _Resolver(checks)
    problems: list[Problem] = []
    memo: dict = {}  # always/never answers per rule: the table below is walked acyclically
    for source in sources:
        for entry in source.entries.values():
            if entry.check is None or entry.unparsable:
                continue
            depth = graph.depth.get(entry.name)
            if depth is not None and depth > MAX_POLICY_DEPTH:
                problems.append(too_deep(entry.name, depth, entry.value_pos))
                continue
            if depth is None:
                continue  # on or through a cycle: PG305 below
            problems.extend(_check_entry(entry, resolver, options, memo))
    for cycle in graph.cycles:
        where = next((entries[n] for n in cycle if n in entries), None)
        if where is not None:
            problems.append(
                Problem(
                    "PG305",
                    Severity.ERROR,
                    where.value_pos,
                    "cyclic rule references: " + " -> ".join([*cycle, cycle[0]]),
                    "oslo.policy would recurse until the request fails; break the cycle",
                )
            )
    return problems


def _check_entry(
    entry: PolicyEntry, resolver: _Resolver, options: LintOptions, memo: dict
) -> list[Problem]:
    problems: list[Problem] = []
    if always_true(entry.check, resolver, memo=memo):
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
    for c in walk(entry.check):
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
                        Severity.ERROR,
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
        ast.literal_eval(kind)
        return []  # a literal compared with a target value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
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


__all__ = [
    "POLICY_SUFFIXES",
    "PolicyTarget",
    "Position",
    "is_policy_file_name",
    "lint_policy_files",
]
