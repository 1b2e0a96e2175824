"""The one way to build the rules engine from options: :func:`open_rules`.

The paste filter, ``explain``, ``matrix``, the demo and every later adapter
(notification filter, proxy) build their engine here, from a
:class:`RulesOptions`, so that each of them reads and watches exactly the
files the filter would and decides exactly as it would.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from propguard.glance.collation import NameFolding
from propguard.rules.engine import RuleEngine, compile_rules
from propguard.rules.folded import folded_problems
from propguard.rules.model import SERVICE_PREFIX, RuleFormat, RulesDocument, RulesError
from propguard.rules.parser import parse_rules_file, parse_rules_text, read_rules_text
from propguard.rules.policy_set import (
    DEFAULT_POLICY_DIRS,
    PolicyLoadError,
    load_policy_set,
    policy_dir_paths,
)
from propguard.rules.reloader import RulesHolder

#: ``rule_format`` value of the tools: guess the format from the file.
AUTO = "auto"


@dataclass(frozen=True)
class RulesOptions:
    """Everything that decides which rules are loaded and how they decide.

    Field names are those of the ``[propguard]`` options (:mod:`propguard.opts`).
    ``rule_format`` may be ``auto`` for the tools (see :func:`detect_format`);
    the filter takes ``roles`` or ``policies`` only.
    """

    rules_file: str | None = None
    rule_format: str = RuleFormat.ROLES.value
    policy_file: str | None = None
    policy_dirs: tuple[str, ...] = DEFAULT_POLICY_DIRS
    policy_namespaces: tuple[str, ...] = ("glance",)
    service_role_mode: str = "strict"
    os_glance_section: bool = True
    name_cache_size: int = 10000
    decision_cache_size: int = 65536
    #: How Glance's database compares property names: under a folding collation
    #: a section that matches no folded name is a load error (PG119,
    #: :mod:`propguard.rules.folded`). ``auto`` is resolved as the filter
    #: resolves it (:meth:`name_folding`); the tools resolve it before.
    name_collation: str = "binary"
    _folding: list[NameFolding] = field(
        default_factory=list, init=False, repr=False, compare=False, hash=False
    )

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> RulesOptions:
        """Pick the rules options out of resolved ``[propguard]`` values (other keys ignored)."""
        picked = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        for name in ("policy_dirs", "policy_namespaces"):
            if name in picked:
                picked[name] = tuple(picked[name])
        return cls(**picked)

    def name_folding(self) -> NameFolding:
        """The folding of ``name_collation``; ``auto`` as the filter resolves it, once."""
        if not self._folding:
            from propguard.glance.database import name_folding

            self._folding.append(name_folding(self.name_collation))
        return self._folding[0]

    def with_file(self, rules_file: str) -> RulesOptions:
        return replace(self, rules_file=rules_file)

    def watched_paths(self) -> list[str]:
        """The rules file, the policy file and its ``policy_dirs``: what a reload watches."""
        paths = [self.rules_file, self.policy_file]
        paths += policy_dir_paths(self.policy_file, self.policy_dirs)
        return [p for p in paths if p]

    def parse(self, text: str | None = None) -> RulesDocument:
        """Parse the rules file (or ``text`` under its name), the format resolved."""
        if self.rules_file is None:
            raise ValueError("propguard: 'rules_file' is not set; refusing to start without rules")
        if text is None:
            if self.rule_format != AUTO:
                return parse_rules_file(self.rules_file, self.rule_format)
            text, problem = read_rules_text(self.rules_file)
            if problem is not None:
                return RulesDocument(self.rules_file, RuleFormat.ROLES, problems=[problem])
        return parse_rules_text(self.rules_file, text, detect_format(self.rules_file, text, self))

    def compile(self, document: RulesDocument) -> RuleEngine:
        """Compile a parsed document with these options; raises ``RulesError``.

        Under a folding ``name_collation`` a section (or top-level alternative)
        that matches no folded name is refused too (PG119), reported with the
        other load errors.
        """
        dead = folded_problems(document, self.name_folding())
        try:
            engine = self._compile(document)
        except RulesError as exc:
            raise RulesError([*exc.problems, *dead]) from None
        if dead:
            raise RulesError(dead)
        return engine

    def _compile(self, document: RulesDocument) -> RuleEngine:
        return compile_rules(
            document,
            mode=self.service_role_mode,
            policy_file=self.policy_file,
            policy_namespaces=self.policy_namespaces,
            policy_dirs=self.policy_dirs,
            os_glance_section=self.os_glance_section,
            name_cache_size=self.name_cache_size,
            decision_cache_size=self.decision_cache_size,
        )

    def load(self) -> RuleEngine:
        """Parse and compile; raises ``RulesError`` naming file and line."""
        return self.compile(self.parse())


def open_rules(
    options: RulesOptions, *, reload_interval: float = -1.0, reload_on_sighup: bool = False
) -> RulesHolder:
    """The engine for ``options`` in a holder that reloads it when its files change.

    The first load must succeed (``RulesError`` propagates: fail closed).
    ``reload_interval`` < 0 never polls (the tools); ``reload_on_sighup``
    also reloads on SIGHUP, chaining any previous handler.
    """
    holder = RulesHolder(options.load, options.watched_paths(), interval=reload_interval)
    if reload_on_sighup:
        holder.install_sighup()
    return holder


def detect_format(path: str, text: str, options: RulesOptions) -> RuleFormat:
    """The format of ``options.rule_format``; for ``auto``, guessed from the values.

    Roles when a value uses roles syntax (``a,b``, ``a+b``, ``service:x``)
    or names nothing; otherwise policies when a name is defined in the policy
    set (``policy_file``, its ``policy_dirs``, ``policy_namespaces``), when
    that set cannot be loaded although a policy file is given (its errors are
    reported then, never hidden by linting the file as roles) or when the
    file's name says ``polic``; roles else.
    """
    if options.rule_format != AUTO:
        return RuleFormat(options.rule_format)
    doc = parse_rules_text(path, text, RuleFormat.ROLES)
    names: set[str] = set()
    for raw in doc.raw_sections:
        for option in raw.options.values():
            value = option.value.strip()
            if value in ("", "@", "!"):
                continue
            if "," in value or "+" in value or value.lower().startswith(SERVICE_PREFIX):
                return RuleFormat.ROLES
            names.add(value)
    if not names:
        return RuleFormat.ROLES
    try:
        policies = load_policy_set(
            options.policy_file, options.policy_namespaces, options.policy_dirs
        )
    except PolicyLoadError:
        if options.policy_file:
            return RuleFormat.POLICIES
        policies = None
    if policies is not None and any(policies.check_for(n) is not None for n in names):
        return RuleFormat.POLICIES
    if "polic" in os.path.basename(path).lower():
        return RuleFormat.POLICIES
    return RuleFormat.ROLES
