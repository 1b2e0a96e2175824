"""``propguard lint``: find what is wrong with rules and policy files, and where.

Rules files go through the same parser and loader as the filter
(:mod:`propguard.rules`), policy files through the same reader
(:mod:`propguard.rules.policy_source`), so lint is never cleaner than the
filter is strict; the linter adds order, role and policy analyses.
Entry points: :func:`lint_run` (findings and what was read) and
:func:`lint_paths` (findings only).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from propguard.lint import suppress
from propguard.lint.codes import CODES
from propguard.lint.policy_file import PolicyTarget, is_policy_file_name, lint_policy_files
from propguard.lint.rules import LintOptions, lint_rules_file
from propguard.rules.ini import read_ini
from propguard.rules.loading import AUTO
from propguard.rules.model import OPERATIONS, Problem, RuleFormat, Severity
from propguard.rules.policy_source import policy_dir_files, read_text

__all__ = [
    "CODES",
    "SEVERITY_RANK",
    "LintOptions",
    "LintRun",
    "LintUsageError",
    "is_policy_path",
    "lint_paths",
    "lint_run",
]

SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


class LintUsageError(Exception):
    """An argument that gives lint nothing to read (exit 2)."""


def is_policy_path(path: str) -> bool:
    """A policy file by its name (``.yaml``/``.yml``/``.json``), or a directory."""
    return os.path.isdir(path) or is_policy_file_name(path)


@dataclass
class LintRun:
    """What one lint run read and found."""

    problems: list[Problem] = field(default_factory=list)
    #: rules file -> the format it was read in
    rules_files: dict[str, RuleFormat] = field(default_factory=dict)
    #: every policy file read (policy_dirs files included)
    policy_files: list[str] = field(default_factory=list)
    #: files of a directory argument that are neither (not read)
    skipped: list[str] = field(default_factory=list)
    #: the format was guessed (``--rules-format auto``): the summary says so
    guessed: bool = False

    @property
    def files(self) -> int:
        return len(self.rules_files) + len(self.policy_files)

    def counts(self) -> dict[Severity, int]:
        counts = dict.fromkeys(Severity, 0)
        for p in self.problems:
            counts[Severity(p.severity)] += 1
        return counts

    def summary(self) -> str:
        """One line: files read and findings by severity."""
        counts = self.counts()
        formats = sorted(set(self.rules_files.values()))
        files = f"{self.files} file{'s' if self.files != 1 else ''}"
        parts = []
        if self.rules_files:
            how = ", assumed by --rules-format auto" if self.guessed else ""
            parts.append(
                f"{len(self.rules_files)} rules ({'/'.join(str(f) for f in formats)} format{how})"
            )
        if self.policy_files:
            parts.append(f"{len(self.policy_files)} policy")
        detail = f" ({', '.join(parts)})" if parts else ""
        found = ", ".join(
            f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}"
            for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)
        )
        skipped = ""
        if self.skipped:
            names = ", ".join(os.path.basename(f) for f in self.skipped[:3])
            more = f" and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
            skipped = f"; skipped {len(self.skipped)} other file(s): {names}{more}"
        return f"propguard lint: {files}{detail}: {found}{skipped}"


@dataclass
class _Targets:
    rules: list[str] = field(default_factory=list)
    policies: list[PolicyTarget] = field(default_factory=list)
    #: a policy file found with rules files in one directory: theirs, as the filter pairs them
    paired: dict[str, str] = field(default_factory=dict)
    #: files in a directory argument that are neither rules nor policy files
    skipped: list[str] = field(default_factory=list)


def looks_like_rules_file(path: str) -> bool:
    """A file lint reads as a rules file when it finds it in a directory.

    An INI file one of whose keys is (or is close to) create, read, update or
    delete, or whose name says it holds protections or rules; not
    ``glance-api.conf`` and its like, which are also INI files.
    """
    name = os.path.basename(path).lower()
    if "protection" in name or "rules" in name:
        return True
    text, problem = read_text(path, "rules file", "PG101")
    if problem is not None or text is None:
        return False
    sections, _ = read_ini(path, text)
    keys = {k for s in sections for k in s.options}
    return any(difflib.get_close_matches(k, OPERATIONS, n=1, cutoff=0.6) for k in keys)


def _expand(paths: list[str], options: LintOptions) -> _Targets:
    """Files to lint for the arguments; a directory is read as the filter would read it.

    * a file named ``*.yaml``/``*.yml``/``*.json`` is a policy file (with its
      ``policy_dirs``), any other file a rules file;
    * a directory named like one of ``policy_dirs`` (``policy.d``) is read as
      a policy directory: every file not starting with a dot;
    * any other directory: its policy files, its rules files (INI files with
      create/read/update/delete keys), and, when it holds no policy file, each
      of its ``policy_dirs`` as a policy directory. Rules files there use the
      directory's one policy file as their ``policy_file`` (unless
      ``--policy-file`` is given).

    An argument that yields nothing to lint raises :class:`LintUsageError`.
    """
    targets = _Targets()
    dir_names = {os.path.basename(os.path.normpath(d)) for d in options.rules.policy_dirs if d}
    for path in paths:
        if not os.path.isdir(path):
            if is_policy_file_name(path):
                targets.policies.append(PolicyTarget(path))
            else:
                targets.rules.append(path)
            continue
        if os.path.basename(os.path.normpath(path)) in dir_names:
            if not policy_dir_files(path):
                raise LintUsageError(f"{path}: a policy directory with no file to lint")
            targets.policies.append(PolicyTarget(path, directory=True))
            continue
        files = [f for f in policy_dir_files(path) if os.path.isfile(f)]
        policies = [f for f in files if is_policy_file_name(f)]
        rules = [f for f in files if not is_policy_file_name(f) and looks_like_rules_file(f)]
        targets.skipped.extend(f for f in files if f not in policies and f not in rules)
        subdirs = [
            os.path.join(path, d)
            for d in sorted(dir_names)
            if os.path.isdir(os.path.join(path, d)) and policy_dir_files(os.path.join(path, d))
        ]
        if not (policies or rules or subdirs):
            raise LintUsageError(
                f"{path}: no rules file (INI with create/read/update/delete) or policy file "
                "(.yaml, .yml, .json) in this directory"
            )
        targets.policies.extend(PolicyTarget(p) for p in policies)
        if not policies:
            targets.policies.extend(PolicyTarget(d, directory=True) for d in subdirs)
        targets.rules.extend(rules)
        if len(policies) == 1:
            targets.paired.update(dict.fromkeys(rules, policies[0]))
    return targets


def lint_run(
    paths: list[str],
    options: LintOptions | None = None,
    ignore: frozenset[str] = frozenset(),
    rules_files: Sequence[str] = (),
) -> LintRun:
    """Lint rules files, policy files and directories; findings sorted by place.

    ``rules_files`` are read as the filter reads its ``rules_file``, whatever
    they are (a directory is PG101, as in the loader), never searched.
    Raises :class:`LintUsageError` for an argument that gives nothing to lint.
    """
    options = options or LintOptions()
    targets = _expand(paths, options)
    targets.rules.extend(f for f in rules_files if f not in targets.rules)
    run = LintRun(skipped=targets.skipped, guessed=options.rules.rule_format == AUTO)
    problems: list[Problem] = []
    binding: set[tuple] = set()
    given = [t.path for t in targets.policies if not t.directory]
    if options.rules.policy_file is None and len(given) == 1:
        # `propguard lint rules.conf policy.yaml`: names in the rules file
        # resolve in the policy file linted next to it.
        rules = dataclasses.replace(options.rules, policy_file=given[0])
        options = dataclasses.replace(options, rules=rules)
    elif options.rules.policy_file is not None and options.rules.policy_file not in given:
        # --policy-file: the filter reads it (and its policy_dirs): lint it too.
        targets.policies.append(PolicyTarget(options.rules.policy_file))
    for path in targets.rules:
        rules_options = options
        paired = targets.paired.get(path)
        if paired is not None and options.rules.policy_file is None:
            rules_options = dataclasses.replace(
                options, rules=dataclasses.replace(options.rules, policy_file=paired)
            )
        result = lint_rules_file(path, rules_options)
        run.rules_files[path] = result.document.format
        problems.extend(result.problems)
        binding |= result.binding
    if targets.policies:
        problems.extend(lint_policy_files(targets.policies, options, binding))
        for target in targets.policies:
            for file in target.files(options):
                if file not in run.policy_files:
                    run.policy_files.append(file)
    run.problems = _finish(problems, ignore, binding)
    return run


def lint_paths(
    paths: list[str], options: LintOptions | None = None, ignore: frozenset[str] = frozenset()
) -> list[Problem]:
    """Findings of :func:`lint_run`, sorted by place."""
    return lint_run(paths, options, ignore).problems


def _finish(problems: list[Problem], ignore: frozenset[str], binding: set[tuple]) -> list[Problem]:
    """Suppressions and ``--ignore`` applied, duplicates dropped, sorted by place.

    An error the filter's loader raises (``binding``) is never suppressed:
    the filter refuses the file whatever a comment says.
    """
    lines = {}
    for p in problems:
        f = p.position.file
        if f not in lines and not f.startswith("<"):
            text, problem = read_text(f, "file")
            if problem is None and text is not None:
                lines[f] = text.splitlines()
    kept = suppress.apply(problems, lines)
    kept = [p for p in kept if p.code not in ignore]
    kept_ids = {id(p) for p in kept}
    kept = [p for p in problems if id(p) in kept_ids or (p.code, p.position, p.message) in binding]
    unique = list(dict.fromkeys(kept))
    return sorted(
        unique,
        key=lambda p: (p.position.file, p.position.line, p.position.column, p.code, p.message),
    )
