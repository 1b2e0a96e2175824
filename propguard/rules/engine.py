"""The compiled rules engine: ``decide(property, op, credentials)``.

Compiled once from a :class:`RulesDocument`; immutable afterwards, so any
number of threads may use it. Two bounded caches make repeated decisions
cheap: property name -> section (names repeat across images; bounded so a
flood of random names cannot exhaust memory) and (credentials, section, op)
-> allowed (role sets repeat across requests).
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from propguard.credentials import Credentials
from propguard.rules.model import (
    OPERATIONS,
    OpValue,
    Position,
    Problem,
    RuleFormat,
    RulesDocument,
    RulesError,
    Section,
)
from propguard.rules.policy_set import (
    DEFAULT_POLICY_DIRS,
    PolicyLoadError,
    PolicySet,
    load_policy_set,
)


class ServiceRoleMode(enum.StrEnum):
    """How service-token roles count.

    ``strict`` (default): only where a rule names them (``service:<role>``,
    ``service_roles:<role>``). ``union``: as Glance does, they also count as
    user roles, for a drop-in migration.
    """

    STRICT = "strict"
    UNION = "union"


#: Glance 32.0.0+ injects ``[os_glance.*]`` (all ``@``) first; propguard
#: anchors it, so ``x_os_glance_y`` is not caught by it.
OS_GLANCE_SECTION = Section(
    index=-1,
    pattern="^os_glance",
    position=Position("<built-in>", 0),
    values={
        op: OpValue(op, "@", Position("<built-in>", 0), Position("<built-in>", 0), everyone=True)
        for op in OPERATIONS
    },
    builtin=True,
)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one check and what made it."""

    allowed: bool
    op: str
    section: Section | None
    reason: str

    @property
    def section_name(self) -> str | None:
        return self.section.pattern if self.section else None

    @property
    def line(self) -> int | None:
        return self.section.position.line if self.section and not self.section.builtin else None


class _Check:
    """One operation of one section, compiled."""

    __slots__ = ()

    def allowed(self, creds: Credentials, union: bool) -> bool:
        raise NotImplementedError

    def explain(self, creds: Credentials, union: bool) -> str:
        raise NotImplementedError


class _Everyone(_Check):
    def allowed(self, creds: Credentials, union: bool) -> bool:
        return True

    def explain(self, creds: Credentials, union: bool) -> str:
        return "'@': everyone"


class _Nobody(_Check):
    def allowed(self, creds: Credentials, union: bool) -> bool:
        return False

    def explain(self, creds: Credentials, union: bool) -> str:
        return "'!' (or empty): nobody"


class _Roles(_Check):
    __slots__ = ("entries",)

    def __init__(self, value: OpValue) -> None:
        self.entries = tuple((c.user_roles, c.service_roles, str(c)) for c in value.entries)

    def _match(self, creds: Credentials, union: bool) -> str | None:
        user = creds.roles | creds.service_roles if union else creds.roles
        for users, services, text in self.entries:
            if users <= user and services <= creds.service_roles:
                return text
        return None

    def allowed(self, creds: Credentials, union: bool) -> bool:
        return self._match(creds, union) is not None

    def explain(self, creds: Credentials, union: bool) -> str:
        hit = self._match(creds, union)
        listed = ", ".join(text for _, _, text in self.entries)
        if hit is not None:
            return f"role entry '{hit}' matched (rule lists: {listed})"
        return f"no role entry matched (rule lists: {listed})"


class _Policy(_Check):
    __slots__ = ("name", "policies")

    def __init__(self, name: str, policies: PolicySet) -> None:
        self.name = name
        self.policies = policies

    def allowed(self, creds: Credentials, union: bool) -> bool:
        return self.policies.evaluate(self.name, creds.policy_values(union))

    def explain(self, creds: Credentials, union: bool) -> str:
        check = self.policies.check_for(self.name)
        verdict = "passed" if self.allowed(creds, union) else "failed"
        return f"policy '{self.name}' ({check}) {verdict}"


class RuleEngine:
    """Compiled rules. Build with :func:`compile_rules` or :func:`load_rules`."""

    def __init__(
        self,
        document: RulesDocument,
        sections: list[Section],
        checks: list[tuple[_Check, ...]],
        mode: ServiceRoleMode,
        policies: PolicySet | None,
        name_cache_size: int,
        decision_cache_size: int,
    ) -> None:
        self.document = document
        self.sections = tuple(sections)
        self.mode = mode
        self.policies = policies
        self._union = mode is ServiceRoleMode.UNION
        self._checks = tuple(checks)
        self._searches = tuple(re.compile(s.pattern).search for s in sections)
        self._op_index = {op: i for i, op in enumerate(OPERATIONS)}
        # Only role lists, '@' and '!': the decisions read nothing else of a caller.
        self._roles_only = all(
            isinstance(check, (_Everyone, _Nobody, _Roles)) for ops in checks for check in ops
        )
        self.section_index = functools.lru_cache(maxsize=name_cache_size)(self._find_section)
        self._cached_allowed = functools.lru_cache(maxsize=decision_cache_size)(self._allowed)

    @property
    def rule_format(self) -> RuleFormat:
        return self.document.format

    def _find_section(self, name: str) -> int:
        for index, search in enumerate(self._searches):
            if search(name):
                return index
        return -1

    def _allowed(self, creds: Credentials, index: int, op_index: int) -> bool:
        return self._checks[index][op_index].allowed(creds, self._union)

    def caller_key(self, creds: Credentials) -> Hashable:
        """What of ``creds`` this engine's decisions read: callers with equal keys get equal
        decisions (so the view shares its memo of them between a role set's requests)."""
        if self._roles_only:
            return (creds.roles, creds.service_roles)
        return creds  # policies read the whole caller (ids, scope, domains)

    def section_for(self, name: str) -> Section | None:
        index = self.section_index(name)
        return self.sections[index] if index >= 0 else None

    def allowed(self, name: str, op: str, creds: Credentials) -> bool:
        """Fast path: is ``op`` on property ``name`` allowed for ``creds``?"""
        op_index = self._op_index.get(op)
        if op_index is None:
            return False
        index = self.section_index(name)
        if index < 0:
            return False
        return self._cached_allowed(creds, index, op_index)

    def checker(self, op: str, creds: Credentials) -> Callable[[str], bool]:
        """A per-request memoised ``name -> allowed`` for one op and caller."""
        memo: dict[str, bool] = {}
        allowed = self.allowed

        def check(name: str) -> bool:
            result = memo.get(name)
            if result is None:
                result = memo[name] = allowed(name, op, creds)
            return result

        return check

    def decide(self, name: str, op: str, creds: Credentials) -> Decision:
        """The decision with the section (name and line) that made it, and why."""
        if op not in self._op_index:
            return Decision(False, op, None, f"unknown operation '{op}'")
        index = self.section_index(name)
        if index < 0:
            return Decision(
                False, op, None, "no section matches this name: denied to everyone, admin included"
            )
        section = self.sections[index]
        check = self._checks[index][self._op_index[op]]
        allowed = check.allowed(creds, self._union)
        return Decision(allowed, op, section, check.explain(creds, self._union))


def compile_rules(
    document: RulesDocument,
    *,
    mode: ServiceRoleMode | str = ServiceRoleMode.STRICT,
    policy_file: str | None = None,
    policy_namespaces: tuple[str, ...] | list[str] = (),
    policy_dirs: tuple[str, ...] | list[str] = DEFAULT_POLICY_DIRS,
    os_glance_section: bool = True,
    name_cache_size: int = 10000,
    decision_cache_size: int = 65536,
) -> RuleEngine:
    """Compile a parsed document; raise :class:`RulesError` on any error."""
    mode = ServiceRoleMode(mode)
    problems = list(document.errors)
    policies: PolicySet | None = None
    if document.format is RuleFormat.POLICIES and not problems:
        try:
            policies = load_policy_set(policy_file, policy_namespaces, policy_dirs)
        except PolicyLoadError as exc:
            problems.extend(exc.problems)
        else:
            problems.extend(_unresolved_policies(document, policies))
    if problems:
        raise RulesError(problems)
    sections = list(document.sections)
    if os_glance_section:
        sections.insert(0, OS_GLANCE_SECTION)
    checks = [tuple(_compile_value(s.values[op], policies) for op in OPERATIONS) for s in sections]
    return RuleEngine(
        document, sections, checks, mode, policies, name_cache_size, decision_cache_size
    )


def _compile_value(value: OpValue, policies: PolicySet | None) -> _Check:
    if value.nobody or value.empty:
        return _Nobody()
    if value.everyone:
        return _Everyone()
    if value.policy is not None:
        assert policies is not None
        return _Policy(value.policy, policies)
    return _Roles(value)


def _unresolved_policies(document: RulesDocument, policies: PolicySet) -> list[Problem]:
    """Every policy name the document uses that cannot be evaluated, each problem once."""
    problems: dict[Problem, None] = {}
    for section in document.sections:
        for value in section.values.values():
            if value.policy is not None:
                problems.update(
                    dict.fromkeys(policies.use_problems(value.policy, value.value_position))
                )
    return list(problems)


def load_rules(
    path: str, rule_format: RuleFormat | str = RuleFormat.ROLES, **options
) -> RuleEngine:
    """Parse and compile ``path``; raise :class:`RulesError` naming file and line."""
    from propguard.rules.parser import parse_rules_file

    return compile_rules(parse_rules_file(path, rule_format), **options)
