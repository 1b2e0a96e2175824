"""oslo.policy side of the ``policies`` rule format.

A rule name in a rules file resolves against the operator's policy file and
the registered defaults of the namespaces named in ``policy_namespaces``
(found through ``oslo.policy.policies`` entry points, e.g. ``glance``), so a
file written for Glance works unchanged. Unlike Glance, which lets an unknown
name fall back to the ``default`` rule (``''``: allow everyone), propguard
refuses a name or a ``rule:`` reference that resolves nowhere, and evaluates
with the default-rule fallback switched off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata

import yaml
from oslo_config import cfg
from oslo_policy import _checks
from oslo_policy import policy as oslo_policy

from propguard.rules.model import Position, Problem, Severity

POLICY_ENTRY_POINT_GROUP = "oslo.policy.policies"


class PolicyLoadError(Exception):
    """The policy file or a namespace could not be loaded."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


@dataclass(frozen=True)
class PolicySet:
    """Parsed policy rules ready to evaluate without an Enforcer round trip."""

    enforcer: oslo_policy.Enforcer
    policy_file: str | None

    def check_for(self, name: str) -> _checks.BaseCheck | None:
        return dict.get(self.enforcer.rules, name)

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

    def evaluate(self, name: str, creds: dict) -> bool:
        check = self.check_for(name)
        if check is None:
            return False
        return bool(check({}, creds, self.enforcer))


def namespace_defaults(namespace: str) -> list[oslo_policy.RuleDefault]:
    """Registered policy defaults of one ``oslo.policy.policies`` namespace."""
    for entry_point in metadata.entry_points(group=POLICY_ENTRY_POINT_GROUP):
        if entry_point.name == namespace:
            return list(entry_point.load()())
    raise KeyError(namespace)


#: oslo.policy's default ``[oslo_policy] policy_dirs``, as glance-api uses it.
DEFAULT_POLICY_DIRS: tuple[str, ...] = ("policy.d",)


def policy_dir_paths(policy_file: str | None, policy_dirs: Iterable[str]) -> list[str]:
    """Absolute paths of ``policy_dirs``; a relative one is taken next to ``policy_file``.

    Without a policy file there is nothing for a directory to override, as
    in oslo.policy, so no directory is used.
    """
    if not policy_file:
        return []
    base = os.path.dirname(os.path.abspath(policy_file))
    return [os.path.normpath(os.path.join(base, d)) for d in policy_dirs if d]


def policy_dir_files(directory: str) -> list[str]:
    """The files oslo.policy loads from a policy directory, in its order.

    Every regular file not starting with a dot, sorted by name, no recursion
    (``Enforcer._walk_through_policy_directory``).
    """
    try:
        names = sorted(next(os.walk(directory))[2])
    except StopIteration:
        return []
    return [os.path.join(directory, n) for n in names if not n.startswith(".")]


def load_policy_set(
    policy_file: str | None,
    namespaces: Iterable[str],
    policy_dirs: Iterable[str] = DEFAULT_POLICY_DIRS,
) -> PolicySet:
    """Build an isolated Enforcer (never glance-api's global one) and load it.

    ``policy_dirs`` are read as oslo.policy reads ``[oslo_policy] policy_dirs``
    (their files override the policy file's rules); a directory that does not
    exist is skipped, as oslo.policy skips it. Each file is checked first so
    that a broken one is reported with its name and line.
    """
    conf = cfg.ConfigOpts()
    conf([], project="propguard-policy", default_config_files=[], default_config_dirs=[])
    path = os.path.abspath(policy_file) if policy_file else None
    where = Position(path or "<policy_namespaces>", 1)
    directories = [d for d in policy_dir_paths(path, policy_dirs) if os.path.isdir(d)]
    if path is not None:
        _check_policy_file(path)
        for directory in directories:
            for file in policy_dir_files(directory):
                _check_policy_file(file)
    enforcer = oslo_policy.Enforcer(
        conf, policy_file=path or "propguard-no-policy-file.yaml", use_conf=path is not None
    )
    conf.set_override("policy_dirs", directories, group="oslo_policy")
    for namespace in namespaces:
        try:
            defaults = namespace_defaults(namespace)
        except KeyError:
            raise PolicyLoadError(
                Problem(
                    "PG117",
                    Severity.ERROR,
                    where,
                    f"policy namespace '{namespace}' is not installed "
                    f"(no '{POLICY_ENTRY_POINT_GROUP}' entry point of that name)",
                )
            ) from None
        enforcer.register_defaults(defaults)
    try:
        enforcer.load_rules(force_reload=True)
    except (yaml.YAMLError, ValueError, TypeError) as exc:
        raise PolicyLoadError(
            Problem("PG118", Severity.ERROR, where, f"cannot load policy file: {exc}")
        ) from exc
    # Unknown names must never fall back to a permissive 'default' rule.
    enforcer.rules.default_rule = None
    for name, check in list(enforcer.rules.items()):
        role_checks = case_insensitive_role_checks(check)
        if role_checks is not check:
            enforcer.rules[name] = role_checks
    return PolicySet(enforcer, path)


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
    does and the README promises case-insensitive role names. This check
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


def _check_policy_file(path: str) -> None:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise PolicyLoadError(
            Problem(
                "PG118",
                Severity.ERROR,
                Position(path, 1),
                f"cannot read policy file: {exc.strerror}",
            )
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        column = mark.column + 1 if mark is not None else 1
        raise PolicyLoadError(
            Problem(
                "PG118",
                Severity.ERROR,
                Position(path, line, column),
                f"policy file is not valid YAML: {getattr(exc, 'problem', exc)}",
            )
        ) from exc
    if data is not None and not isinstance(data, dict):
        raise PolicyLoadError(
            Problem(
                "PG118",
                Severity.ERROR,
                Position(path, 1),
                "policy file must be a mapping of rule names to check strings",
            )
        )
