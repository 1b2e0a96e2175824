"""oslo.policy side of the ``policies`` rule format.

A rule name in a rules file resolves against the operator's policy file and
the registered defaults of the namespaces named in ``policy_namespaces``
(found through ``oslo.policy.policies`` entry points, e.g. ``glance``), so a
file written for Glance works unchanged. Unlike Glance, which lets an unknown
name fall back to the ``default`` rule (``''``: allow everyone), propguard
refuses a name or a ``rule:`` reference that resolves nowhere, and evaluates
with the default-rule fallback switched off.

The files are read by :mod:`propguard.rules.policy_source`, the reader
``propguard lint`` shares, never by oslo.policy itself; the rules a rules
file uses are checked before the set is used (:meth:`PolicySet.use_problems`):
undefined, unparsable, unevaluable, cyclic or nested deeper than
:data:`~propguard.rules.policy_source.MAX_POLICY_DEPTH`, each refused with the
file and line where it is written.
"""

from __future__ import annotations

import difflib
import functools
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata

from oslo_config import cfg
from oslo_policy import _checks
from oslo_policy import policy as oslo_policy

from propguard.rules.model import Position, Problem, Severity
from propguard.rules.policy_source import (
    DEFAULT_POLICY_DIRS,
    MAX_POLICY_DEPTH,
    PolicyEntry,
    PolicySource,
    RuleGraph,
    merged_entries,
    policy_dir_files,
    policy_dir_paths,
    read_policy_set,
    rule_graph,
    unparsable_problem,
    walk,
)

__all__ = [
    "DEFAULT_POLICY_DIRS",
    "MAX_POLICY_DEPTH",
    "PolicyLoadError",
    "PolicySet",
    "load_policy_set",
    "namespace_defaults",
    "policy_dir_files",
    "policy_dir_paths",
]

POLICY_ENTRY_POINT_GROUP = "oslo.policy.policies"

#: Credentials a check is tried with at load (any will do: what raises does not depend on them).
_PROBE_VALUES = {
    "roles": ["propguard-probe"],
    "service_roles": ["propguard-probe"],
    "user_id": "propguard-probe",
    "project_id": "propguard-probe",
}


class PolicyLoadError(Exception):
    """The policy set could not be loaded; ``problems`` name file, line and column."""

    def __init__(self, problems: Problem | list[Problem]) -> None:
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        self.problem = self.problems[0]
        super().__init__(str(self.problem))


@dataclass(frozen=True)
class PolicySet:
    """Parsed policy rules ready to evaluate without an Enforcer round trip."""

    enforcer: oslo_policy.Enforcer
    policy_file: str | None
    #: name -> the file entry in force (positions), for names a file defines
    entries: dict[str, PolicyEntry] = field(default_factory=dict, compare=False)
    graph: RuleGraph | None = field(default=None, compare=False)

    def check_for(self, name: str) -> _checks.BaseCheck | None:
        return dict.get(self.enforcer.rules, name)

    def defined_names(self) -> list[str]:
        return list(self.enforcer.rules)

    def reachable_names(self, name: str) -> list[str]:
        """``name`` and every defined rule it references, directly or not (each once)."""
        graph = self.graph
        seen: dict[str, None] = {}
        pending = [name]
        while pending:
            current = pending.pop()
            if current in seen or self.check_for(current) is None:
                continue
            seen[current] = None
            refs = graph.refs.get(current, ()) if graph is not None else ()
            pending.extend(reversed(refs))
        return list(seen)

    def reachable_checks(self, name: str) -> Iterable[tuple[str, _checks.BaseCheck]]:
        """Every check node of ``name`` and of the rules it references, with its rule name.

        A ``rule:x`` whose ``x`` is undefined is yielded as the RuleCheck
        itself (its target is not followed); cycles are visited once.
        """
        seen: set[str] = set()
        pending = [name]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            root = self.check_for(current)
            stack = [root] if root is not None else []
            while stack:
                check = stack.pop()
                yield current, check
                if isinstance(check, oslo_policy.RuleCheck):
                    pending.append(check.match)
                stack.extend(getattr(check, "rules", ()) or ())
                inner = getattr(check, "rule", None)
                if isinstance(inner, _checks.BaseCheck):
                    stack.append(inner)

    def undefined_references(self, name: str) -> list[tuple[str, str]]:
        """``(rule, missing reference)`` pairs reachable from ``name``."""
        return [
            (rule, check.match)
            for rule, check in self.reachable_checks(name)
            if isinstance(check, oslo_policy.RuleCheck) and self.check_for(check.match) is None
        ]

    def where(self) -> str:
        return self.policy_file or "the registered defaults"

    def did_you_mean(self, name: str) -> str | None:
        """The defined name closest to a misspelt ``name``, if one is close."""
        found = difflib.get_close_matches(name, self.defined_names(), n=1, cutoff=0.75)
        return found[0] if found else None

    def use_problems(self, name: str, where: Position) -> list[Problem]:
        """Why ``name``, used at ``where`` in a rules file, cannot be evaluated.

        Undefined (PG111, with "did you mean"), an undefined ``rule:``
        reference (PG111), a reachable rule oslo.policy could not parse
        (PG303), a reachable cycle (PG305) or a nesting deeper than
        :data:`MAX_POLICY_DEPTH` (PG118). Problems inside a policy file are
        placed in that file.
        """
        if self.check_for(name) is None:
            guess = self.did_you_mean(name)
            return [
                Problem(
                    "PG111",
                    Severity.ERROR,
                    where,
                    f"policy '{name}' is not defined in {self.where()} "
                    "(Glance would silently allow everyone here)",
                    f"did you mean '{guess}'? (or define '{name}' in the policy file)"
                    if guess
                    else "define it in the policy file or fix the name",
                )
            ]
        problems: list[Problem] = []
        graph = self.graph
        for rule, ref in self.undefined_references(name):
            guess = self.did_you_mean(ref)
            entry = self.entries.get(rule)
            at = f" at {entry.value_pos}" if entry is not None else ""
            problems.append(
                Problem(
                    "PG111",
                    Severity.ERROR,
                    where,
                    f"policy '{name}' uses 'rule:{ref}' (in '{rule}'){at}, "
                    f"which is not defined in {self.where()}",
                    (f"did you mean 'rule:{guess}'? " if guess else "")
                    + "an undefined reference would fall back to the 'default' rule in oslo.policy",
                )
            )
        reachable = self.reachable_names(name)
        for rule in reachable:
            entry = self.entries.get(rule)
            if entry is not None and entry.unparsable:
                problems.append(entry.problem or unparsable_problem(entry))
            elif entry is not None:
                problems.extend(self._unevaluable(entry))
        if graph is None:
            return problems
        for cycle in graph.cycles:
            if any(n in cycle for n in reachable):
                first = self.entries.get(cycle[0])
                problems.append(
                    Problem(
                        "PG305",
                        Severity.ERROR,
                        first.value_pos if first is not None else where,
                        "cyclic rule references: " + " -> ".join([*cycle, cycle[0]]),
                        "oslo.policy would recurse until the request fails; break the cycle",
                    )
                )
        depth = graph.depth.get(name)
        if depth is not None and depth > MAX_POLICY_DEPTH:
            entry = self.entries.get(name)
            problems.append(too_deep(name, depth, entry.value_pos if entry is not None else where))
        return problems

    def _unevaluable(self, entry: PolicyEntry) -> list[Problem]:
        """Checks of ``entry`` that raise when oslo.policy evaluates them (PG303).

        ``role:50%`` ('%' formatting against the empty target) or a kind
        that is neither a credential path nor a Python literal (``a[:x``)
        end the request in an exception; they are refused at load.
        """
        assert entry.check is not None
        for node in walk(entry.check):
            if not isinstance(node, (_checks.RoleCheck, _checks.GenericCheck)):
                continue
            try:
                node({}, _PROBE_VALUES, self.enforcer)
            except Exception as exc:  # whatever the check raises, a request would too
                return [
                    Problem(
                        "PG303",
                        Severity.ERROR,
                        entry.value_pos,
                        f"'{entry.name}': oslo.policy cannot evaluate '{node}' "
                        f"({type(exc).__name__}: {exc})",
                        "write '%%' for a literal '%'; a check is kind:match",
                    )
                ]
        return []

    def evaluate(self, name: str, creds: dict) -> bool:
        check = self.check_for(name)
        if check is None:
            return False
        return bool(check({}, creds, self.enforcer))


def namespace_defaults(namespace: str) -> list[oslo_policy.RuleDefault]:
    """Registered policy defaults of one ``oslo.policy.policies`` namespace.

    Listed once per process (they are code, not configuration); the
    RuleDefault objects are shared and must not be modified.
    """
    return list(_namespace_defaults(namespace))


@functools.lru_cache(maxsize=32)
def _namespace_defaults(namespace: str) -> tuple[oslo_policy.RuleDefault, ...]:
    entry_point = _policy_entry_points().get(namespace)
    if entry_point is None:
        raise KeyError(namespace)
    return tuple(entry_point.load()())


@functools.lru_cache(maxsize=1)
def _policy_entry_points() -> dict[str, metadata.EntryPoint]:
    """The installed ``oslo.policy.policies`` entry points (scanned once: the scan is slow)."""
    found: dict[str, metadata.EntryPoint] = {}
    for entry_point in metadata.entry_points(group=POLICY_ENTRY_POINT_GROUP):
        found.setdefault(entry_point.name, entry_point)
    return found


def load_policy_set(
    policy_file: str | None,
    namespaces: Iterable[str],
    policy_dirs: Iterable[str] = DEFAULT_POLICY_DIRS,
) -> PolicySet:
    """Read the policy set with the shared reader and build an isolated Enforcer.

    Never glance-api's global Enforcer. The files are those of
    :func:`~propguard.rules.policy_source.policy_set_files` (the policy file,
    then each file of its ``policy_dirs``, overriding it); each is read by
    :func:`~propguard.rules.policy_source.read_policy_source`, which is also
    what ``propguard lint`` reads, and every error is raised with its file,
    line and column (all of them, not only the first). The rules read are
    handed to oslo.policy as they are, so oslo.policy never reads a file of
    its own.
    """
    path = policy_file or None
    namespaces = tuple(dict.fromkeys(namespaces))
    sources = read_policy_set(path, policy_dirs)
    # The same files (by content: sources are shared while unchanged) and
    # namespaces give the same set: built once (lint and auto-detection ask often).
    key = (path, namespaces, tuple(id(s) for s in sources))
    with _SETS_LOCK:
        hit = _SETS.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], sources, strict=True)):
            _SETS.move_to_end(key)
            if isinstance(hit[1], PolicySet):
                return hit[1]
            raise PolicyLoadError(hit[1])
    try:
        result: PolicySet | list[Problem] = _build_policy_set(path, namespaces, sources)
    except PolicyLoadError as exc:
        result = exc.problems
    with _SETS_LOCK:
        _SETS[key] = (sources, result)
        while len(_SETS) > 16:
            _SETS.popitem(last=False)
    if isinstance(result, PolicySet):
        return result
    raise PolicyLoadError(result)


_SETS: OrderedDict[tuple, tuple[list[PolicySource], PolicySet | list[Problem]]] = OrderedDict()
_SETS_LOCK = threading.Lock()


def _build_policy_set(
    path: str | None, namespaces: tuple[str, ...], sources: list[PolicySource]
) -> PolicySet:
    problems: list[Problem] = []
    defaults: list[oslo_policy.RuleDefault] = []
    for namespace in dict.fromkeys(namespaces):
        try:
            defaults.extend(namespace_defaults(namespace))
        except KeyError:
            problems.append(unknown_namespace(namespace, Position("<policy_namespaces>", 1)))
    problems.extend(p for s in sources for p in s.errors)
    if problems:
        raise PolicyLoadError(problems)
    entries = merged_entries(sources)
    conf = cfg.ConfigOpts()
    conf([], project="propguard-policy", default_config_files=[], default_config_dirs=[])
    enforcer = oslo_policy.Enforcer(conf, use_conf=False)
    enforcer.suppress_deprecation_warnings = True
    enforcer.suppress_default_change_warnings = True
    for default in defaults:
        # As Enforcer.register_default, without its deep copy of every default.
        if default.name in enforcer.registered_rules:
            raise PolicyLoadError(
                [
                    Problem(
                        "PG117",
                        Severity.ERROR,
                        Position("<policy_namespaces>", 1),
                        f"policy '{default.name}' is registered by two of the namespaces "
                        f"{', '.join(dict.fromkeys(namespaces))}",
                    )
                ]
            )
        enforcer.registered_rules[default.name] = default
    enforcer.set_rules({name: e.check for name, e in entries.items()}, use_conf=False)
    enforcer.file_rules = {name: _FileRule(e.check_str, e.check) for name, e in entries.items()}
    _apply_defaults(enforcer)
    # Unknown names must never fall back to a permissive 'default' rule.
    enforcer.rules.default_rule = None
    graph = rule_graph(enforcer.rules)
    for name, check in list(enforcer.rules.items()):
        if graph.depth.get(name, MAX_POLICY_DEPTH + 1) > MAX_POLICY_DEPTH:
            continue  # never evaluated: refused where a rules file uses it
        role_checks = case_insensitive_role_checks(check)
        if role_checks is not check:
            enforcer.rules[name] = role_checks
    return PolicySet(enforcer, path, entries, graph)


@dataclass(frozen=True)
class _FileRule:
    """What oslo.policy's deprecated-rule handling reads of a file rule."""

    check_str: object
    check: _checks.BaseCheck


def _apply_defaults(enforcer: oslo_policy.Enforcer) -> None:
    """Registered defaults for every name the files do not define, as ``load_rules`` does.

    Including oslo.policy's handling of deprecated rules (a file override of
    a deprecated name keeps applying, a changed default is OR-ed with the old
    one unless ``enforce_new_defaults``).
    """
    for default in enforcer.registered_rules.values():
        if default.name in enforcer.rules:
            continue
        check = default.check
        if default.deprecated_rule:
            check = enforcer._handle_deprecated_rule(default)
        enforcer.rules[default.name] = check
    enforcer._need_check_rule = False  # its check_rules only logs, and recurses


def too_deep(name: str, depth: int, where: Position) -> Problem:
    return Problem(
        "PG118",
        Severity.ERROR,
        where,
        f"policy '{name}' nests {depth} levels deep ('rule:' references and and/or/not); "
        f"propguard evaluates at most {MAX_POLICY_DEPTH} (oslo.policy recurses per level)",
        "flatten the chain of rule: references",
    )


def unknown_namespace(namespace: str, where: Position) -> Problem:
    return Problem(
        "PG117",
        Severity.ERROR,
        where,
        f"policy namespace '{namespace}' is not installed "
        f"(no '{POLICY_ENTRY_POINT_GROUP}' entry point of that name)",
        "install the service that registers it, or fix the name",
    )


#: Credential lists of role names: propguard lower-cases them (Keystone role
#: names are case-insensitive), so a check on them must compare the same way.
ROLE_LIST_KINDS = frozenset({"roles", "service_roles"})


class RoleListCheck(_checks.GenericCheck):
    """``service_roles:<role>`` (and ``roles:<role>``), compared case-insensitively.

    oslo.policy parses any kind but ``role``/``rule``/``http(s)`` into a
    :class:`GenericCheck`, which compares ``match == str(value)`` exactly,
    while its :class:`RoleCheck` (``role:``) lower-cases both sides. propguard
    lower-cases every role name in :class:`~propguard.identity.Credentials`,
    so ``service_roles:Service`` could never match although ``role:Service``
    does and docs/filter.md promises case-insensitive role names. This check
    compares as ``RoleCheck`` does, element-wise and lower-cased; a
    ``%(key)s`` match is still taken from the (empty) target, so it fails as
    it does in oslo.policy.

    It stays a ``GenericCheck`` with the same ``kind`` and ``match`` (and the
    same ``str``), so whatever walks parsed policies (``propguard lint``,
    ``explain``) sees the ``service_roles:`` atom exactly as before.
    """

    def __call__(self, target, creds, enforcer, current_rule=None) -> bool:
        try:
            match = self.match % target
        except KeyError:
            return False
        values = creds.get(self.kind)
        if not isinstance(values, (list, tuple, set, frozenset)):
            return False
        wanted = match.lower()
        return any(str(value).lower() == wanted for value in values)


def case_insensitive_role_checks(check: _checks.BaseCheck) -> _checks.BaseCheck:
    """``check`` with every ``roles:``/``service_roles:`` GenericCheck made a RoleListCheck.

    Why a rewrite of propguard's own parsed rules rather than registering a
    check class for the ``service_roles`` kind: oslo.policy's check registry
    (``_checks.register``, and the ``oslo.policy.rule_checks`` entry points)
    is process-wide, so registering there would also change how glance-api's
    own Enforcer, in the same process, evaluates ``service_roles:`` -- the
    very thing propguard must leave alone. The rewrite only touches the rule
    table of propguard's isolated Enforcer, and it is copy-on-write: a
    registered default's parsed check (``RuleDefault.check``) is the same
    object Glance's Enforcer holds, so no node is modified in place; a tree
    without such a check is returned unchanged (the same object).
    """
    if type(check) is _checks.GenericCheck and check.kind in ROLE_LIST_KINDS:
        return RoleListCheck(check.kind, check.match)
    if isinstance(check, (oslo_policy.AndCheck, oslo_policy.OrCheck)):
        rules = [case_insensitive_role_checks(rule) for rule in check.rules]
        if all(new is old for new, old in zip(rules, check.rules, strict=True)):
            return check
        return type(check)(rules)
    if isinstance(check, oslo_policy.NotCheck):
        rule = case_insensitive_role_checks(check.rule)
        return check if rule is check.rule else oslo_policy.NotCheck(rule)
    return check
