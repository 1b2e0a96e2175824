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
                if isinstance(check, _checks.RuleCheck):
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
            if isinstance(check, _checks.RuleCheck) and self.check_for(check.match) is None
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
    return PolicySet(enforcer, path)


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
