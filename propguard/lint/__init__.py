"""``propguard lint``: find what is wrong with rules and policy files, and where.

Rules files go through the same parser and compiler as the filter
(:mod:`propguard.rules`); the linter adds order, role and policy analyses.
Entry point: :func:`lint_paths`.
"""

from __future__ import annotations

import dataclasses
import os

from propguard.lint import suppress
from propguard.lint.codes import CODES
from propguard.lint.policy_file import POLICY_SUFFIXES, lint_policy_files
from propguard.lint.rules import LintOptions, lint_rules_file
from propguard.rules.model import Problem, Severity

__all__ = ["CODES", "LintOptions", "lint_paths", "is_policy_path", "SEVERITY_RANK"]

SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


def is_policy_path(path: str) -> bool:
    return os.path.isdir(path) or path.lower().endswith(POLICY_SUFFIXES)


def _read_lines(path: str) -> list[str] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None


def lint_paths(
    paths: list[str], options: LintOptions | None = None, ignore: frozenset[str] = frozenset()
) -> list[Problem]:
    """Lint rules files and policy files/directories; findings sorted by place."""
    options = options or LintOptions()
    problems: list[Problem] = []
    policy_paths = [p for p in paths if is_policy_path(p)]
    policy_files = [p for p in policy_paths if not os.path.isdir(p)]
    if options.rules.policy_file is None and len(policy_files) == 1:
        # `propguard lint rules.conf policy.yaml`: names in the rules file
        # resolve in the policy file linted next to it.
        rules = dataclasses.replace(options.rules, policy_file=policy_files[0])
        options = dataclasses.replace(options, rules=rules)
    for path in paths:
        if path not in policy_paths:
            problems.extend(lint_rules_file(path, options).problems)
    if policy_paths:
        problems.extend(lint_policy_files(policy_paths, options))
    lines = {}
    for p in problems:
        f = p.position.file
        if f not in lines:
            text = _read_lines(f) if not f.startswith("<") else None
            if text is not None:
                lines[f] = text
    problems = suppress.apply(problems, lines)
    problems = [p for p in problems if p.code not in ignore]
    unique = list(dict.fromkeys(problems))
    return sorted(
        unique,
        key=lambda p: (p.position.file, p.position.line, p.position.column, p.code, p.message),
    )
