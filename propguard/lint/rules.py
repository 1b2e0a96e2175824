"""Lint a property-protection rules file (both formats).

The file is parsed by :mod:`propguard.rules.parser` and compiled by
:func:`propguard.rules.engine.compile_rules`, exactly as the filter does, so
every load error the filter would raise is reported with the same code. The
linter then adds its own analyses of the parsed model: section order
(:mod:`propguard.lint.sections`), role names, blind writes and always-true
policies.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass, field

from oslo_policy import _checks
from oslo_policy import policy as oslo_policy

from propguard.credentials import Credentials
from propguard.injection import Injection
from propguard.lint.sections import SectionReport, analyse_sections
from propguard.rules.engine import RuleEngine
from propguard.rules.ini import DEFAULT_SECTION
from propguard.rules.loading import RulesOptions
from propguard.rules.model import (
    OPERATIONS,
    SERVICE_PREFIX,
    OpValue,
    Position,
    Problem,
    RuleFormat,
    RulesDocument,
    RulesError,
    Section,
    Severity,
    role_atom,
)
from propguard.rules.parser import OS_GLANCE_PREFIX, regex_error
from propguard.rules.policy_set import (
    ROLE_LIST_KINDS,
    PolicyLoadError,
    PolicySet,
    RoleListCheck,
    load_policy_set,
)

#: Role names that usually belong to service users (checked in union mode).
SERVICE_LIKE_ROLES = frozenset(
    {
        "service",
        "nova",
        "cinder",
        "neutron",
        "glance",
        "swift",
        "heat",
        "ironic",
        "octavia",
        "manila",
        "placement",
        "barbican",
        "designate",
    }
)

WRITE_OPS = ("create", "update", "delete")


@dataclass
class LintOptions:
    """What the linter checks for; ``rules`` are the filter's own rules options."""

    #: The filter's defaults (``roles`` format): lint is never cleaner than the filter.
    rules: RulesOptions = field(default_factory=RulesOptions)
    known_roles: frozenset[str] | None = None
    service_like_roles: frozenset[str] = field(default_factory=lambda: SERVICE_LIKE_ROLES)
    overlap: bool = True
    #: The filter's ``inject_*`` options (from --config-file/--paste-ini): PG214, PG215.
    injection: Injection | None = None


@dataclass
class RulesLint:
    document: RulesDocument
    problems: list[Problem]
    sections: SectionReport | None = None
    engine: RuleEngine | None = None
    policies: PolicySet | None = None
    #: (code, position, message) of every error the filter's loader raises for this
    #: file: no suppression comment or --ignore hides them (the filter refuses the file)
    binding: set[tuple] = field(default_factory=set)


def problem_key(problem: Problem) -> tuple:
    return (problem.code, problem.position, problem.message)


def lint_rules_file(path: str, options: LintOptions) -> RulesLint:
    return lint_rules_document(options.rules.with_file(path).parse(), options)


def lint_rules_document(doc: RulesDocument, options: LintOptions) -> RulesLint:
    """Every finding of a parsed rules file: the loader's errors first, then the analyses.

    The valid sections are compiled by the filter's own loader
    (``RulesOptions.compile``), so every error the filter would raise is
    reported with its code and place; the analyses then run on whatever
    parsed.
    """
    problems = list(doc.problems)
    result = RulesLint(doc, problems)
    clean = dataclasses.replace(
        doc, problems=[]
    )  # the valid sections, compiled as the filter would
    try:
        result.engine = options.rules.compile(clean)
    except RulesError as exc:
        seen = {problem_key(p) for p in problems}
        problems.extend(p for p in exc.problems if problem_key(p) not in seen)
        result.binding.update(problem_key(p) for p in exc.problems)
    result.binding.update(problem_key(p) for p in doc.errors)
    if doc.format is RuleFormat.POLICIES:
        result.policies = result.engine.policies if result.engine is not None else None
        if result.policies is None:
            try:
                result.policies = load_policy_set(
                    options.rules.policy_file,
                    options.rules.policy_namespaces,
                    options.rules.policy_dirs,
                )
            except PolicyLoadError:
                result.policies = None
    problems[:] = _with_policy_file_hint(problems, doc, options)
    result.sections = order_analysis(doc, options)
    problems[:] = _with_order_note(problems, doc, result.sections)
    problems.extend(result.sections.problems)
    problems.extend(_role_names(doc, options))
    if result.policies is not None:
        problems.extend(_always_true_policies(doc, result.policies))
    if result.engine is not None:
        problems.extend(_blind_writes(doc, result))
        if options.injection is not None and options.injection.properties:
            from propguard.lint.injection import injection_problems

            problems.extend(injection_problems(doc, result.engine, options.injection))
    return result


def order_analysis(doc: RulesDocument, options: LintOptions) -> SectionReport:
    """The order analysis of every section whose pattern compiles, or why it was skipped.

    Sections refused for their values still take names in file order, so
    they are part of the model (they may shadow a later section); sections
    whose pattern does not compile cannot be modelled and are left out (their
    PG104 says so).
    """
    try:
        return analyse_sections(
            doc,
            os_glance_section=options.rules.os_glance_section,
            overlap=options.overlap,
            broken=_broken_sections(doc),
        )
    except (RecursionError, MemoryError, OverflowError) as exc:
        report = SectionReport()
        first = doc.sections[0].position if doc.sections else Position(doc.path, 1)
        report.problems.append(
            Problem(
                "PG212",
                Severity.INFO,
                first,
                f"order analysis skipped for this file: its patterns are too large to model "
                f"({type(exc).__name__})",
                "PG202/PG203/PG210 were not checked",
            )
        )
        return report


def _broken_sections(doc: RulesDocument) -> list[Section]:
    """Sections with a compilable pattern that the parser refused for their values."""
    parsed = {s.pattern for s in doc.sections}
    broken: list[Section] = []
    for raw in doc.raw_sections:
        if (
            raw.name in parsed
            or raw.name == DEFAULT_SECTION
            or raw.name.startswith(OS_GLANCE_PREFIX)
        ):
            continue
        if regex_error(raw.name) is None:
            broken.append(Section(-2 - len(broken), raw.name, raw.position, {}))
    return broken


def _with_order_note(
    problems: list[Problem], doc: RulesDocument, report: SectionReport
) -> list[Problem]:
    """Say on each PG104 that the order analysis ran without that section."""
    if not doc.sections and not report.problems:
        return problems
    note = "order analysis (PG202, PG203, PG210) ran without this section"
    return [
        dataclasses.replace(p, hint=f"{p.hint}; {note}" if p.hint else note)
        if p.code == "PG104"
        else p
        for p in problems
    ]


def _with_policy_file_hint(
    problems: list[Problem], doc: RulesDocument, options: LintOptions
) -> list[Problem]:
    """Undefined names without a policy file: point at ``--policy-file`` (and a file beside)."""
    if options.rules.policy_file or not any(p.code == "PG111" for p in problems):
        return problems
    folder = os.path.dirname(doc.path)
    beside = next(
        (
            os.path.join(folder, name)
            for name in ("policy.yaml", "policy.yml", "policy.json")
            if os.path.isfile(os.path.join(folder, name))
        ),
        None,
    )
    extra = "no policy file was given: pass the filter's policy_file with --policy-file"
    if beside is not None:
        extra += f" (one lies beside this file: --policy-file {beside})"
    return [
        dataclasses.replace(p, hint=f"{p.hint}; {extra}" if p.hint else extra)
        if p.code == "PG111"
        else p
        for p in problems
    ]


# -- role names -------------------------------------------------------------


def _atoms(value: OpValue):
    """``(written role, is_service, position)`` for each role atom of a roles value."""
    raw = value.raw
    pos = value.value_position
    for match in re.finditer(r"[^,+]+", raw):
        atom = match.group(0)
        stripped = atom.strip()
        if not stripped or stripped in ("@", "!"):
            continue
        col = pos.column + match.start() + (len(atom) - len(atom.lstrip()))
        name, service = role_atom(stripped)
        yield name, service, Position(pos.file, pos.line, col)


def _role_names(doc: RulesDocument, options: LintOptions) -> list[Problem]:
    if doc.format is not RuleFormat.ROLES:
        return []
    problems: list[Problem] = []
    spellings: dict[str, dict[str, Position]] = {}
    atoms = []
    for section in doc.sections:
        for value in section.values.values():
            for name, service, where in _atoms(value):
                atoms.append((name, service, where, section))
                spellings.setdefault(name.lower(), {}).setdefault(name, where)
    known = options.known_roles
    known_by_lower = {k.lower(): k for k in known} if known is not None else {}
    union = options.rules.service_role_mode == "union"
    reported: set[tuple] = set()

    def report(problem: Problem, name: str, section: Section) -> None:
        key = (problem.code, name, section.index)
        if problem.code == "PG208":  # every occurrence: each is a right given to nobody
            key += (problem.position,)
        if key not in reported:  # once per role spelling and section
            reported.add(key)
            problems.append(problem)

    for name, service, where, section in atoms:
        lower = name.lower()
        variants = spellings[lower]
        canonical = known_by_lower.get(lower)
        if canonical is not None and canonical != name:
            report(
                Problem(
                    "PG207",
                    Severity.WARNING,
                    where,
                    f"role '{name}' differs only in case from the known role '{canonical}'",
                    f"write '{canonical}' (roles compare case-insensitively)",
                ),
                name,
                section,
            )
        elif canonical is None and len(variants) > 1:
            first_name = lower if lower in variants else next(iter(variants))
            first_pos = variants[first_name]
            if name != first_name:
                report(
                    Problem(
                        "PG207",
                        Severity.WARNING,
                        where,
                        f"role '{name}' is also written '{first_name}' (line {first_pos.line}); "
                        "roles compare case-insensitively, so both mean the same role",
                        f"write '{first_name}' everywhere",
                    ),
                    name,
                    section,
                )
        if known is not None and lower not in known_by_lower:
            guess = difflib.get_close_matches(lower, list(known_by_lower), n=1, cutoff=0.6)
            report(
                Problem(
                    "PG208",
                    Severity.ERROR,
                    where,
                    f"role '{name}' in [{section.pattern}] is not a known role (not Keystone's "
                    "default roles, the policy files' or the deployment's): the right it "
                    "gives reaches nobody",
                    f"did you mean '{known_by_lower[guess[0]]}'?"
                    if guess
                    else "check the spelling or add it to --known-roles",
                ),
                name,
                section,
            )
        if union and not service and lower in options.service_like_roles:
            report(
                Problem(
                    "PG209",
                    Severity.WARNING,
                    where,
                    f"role '{name}' looks like a service role: in union mode a service token "
                    "carrying it satisfies this entry without any user role",
                    f"write 'service:{lower}' (and use service_role_mode = strict) "
                    "or pair it with a user role",
                ),
                name,
                section,
            )
    return problems


# -- policies ---------------------------------------------------------------


def always_true(
    check, policies, seen: frozenset[str] = frozenset(), memo: dict | None = None
) -> bool:
    """Is an oslo.policy check true for every caller (whatever the credentials)?

    ``policies`` resolves ``rule:`` references (anything with ``check_for``);
    each rule is followed once per path. ``memo`` (name -> answer) shares the
    answers for referenced rules between calls over one acyclic rule table.
    A tree too deep to walk is not claimed to be anything.
    """
    try:
        return _Truth(policies, memo).always(check, seen)
    except RecursionError:
        return False


def never_true(
    check, policies, seen: frozenset[str] = frozenset(), memo: dict | None = None
) -> bool:
    try:
        return _Truth(policies, memo).never(check, seen)
    except RecursionError:
        return False


class _Truth:
    def __init__(self, policies, memo: dict | None) -> None:
        self.policies = policies
        self.memo = memo

    def _ref(self, kind: str, check, seen: frozenset[str]) -> bool:
        name = check.match
        if self.memo is not None and (kind, name) in self.memo:
            return self.memo[(kind, name)]
        target = self.policies.check_for(name)
        if kind == "always":
            answer = target is not None and self.always(target, seen | {name})
        else:
            answer = target is None or self.never(target, seen | {name})
        if self.memo is not None:
            self.memo[(kind, name)] = answer
        return answer

    def always(self, check, seen: frozenset[str]) -> bool:
        if isinstance(check, _checks.TrueCheck):
            return True
        if isinstance(check, oslo_policy.OrCheck):
            return any(self.always(r, seen) for r in check.rules)
        if isinstance(check, oslo_policy.AndCheck):
            return all(self.always(r, seen) for r in check.rules)
        if isinstance(check, oslo_policy.NotCheck):
            return self.never(check.rule, seen)
        if (
            isinstance(check, oslo_policy.RuleCheck)
            and self.policies is not None
            and check.match not in seen
        ):
            return self._ref("always", check, seen)
        return False

    def never(self, check, seen: frozenset[str]) -> bool:
        if isinstance(check, _checks.FalseCheck):
            return True
        if isinstance(check, oslo_policy.AndCheck):
            return any(self.never(r, seen) for r in check.rules)
        if isinstance(check, oslo_policy.OrCheck):
            return all(self.never(r, seen) for r in check.rules)
        if isinstance(check, oslo_policy.NotCheck):
            return self.always(check.rule, seen)
        if (
            isinstance(check, oslo_policy.RuleCheck)
            and self.policies is not None
            and check.match not in seen
        ):
            return self._ref("never", check, seen)
        return False


def _always_true_policies(doc: RulesDocument, policies: PolicySet) -> list[Problem]:
    problems: list[Problem] = []
    for section in doc.sections:
        grouped: dict[str, list[OpValue]] = {}
        for value in section.values.values():
            if value.policy is not None:
                grouped.setdefault(value.policy, []).append(value)
        for name, values in grouped.items():
            check = policies.check_for(name)
            if check is None or not always_true(check, policies):
                continue
            ops = "/".join(v.op for v in values)
            problems.append(
                Problem(
                    "PG213",
                    Severity.WARNING,
                    values[0].value_position,
                    f"{ops} in [{section.pattern}] use policy '{name}', which is always true "
                    f"({str(check)!r}): everyone is allowed",
                    "write '@' if everyone is meant, or point to a policy that checks something",
                )
            )
    return problems


# -- blind writes -----------------------------------------------------------


def principals(section: Section, policies: PolicySet | None) -> list[Credentials]:
    """Callers worth trying against a section: each role entry, each policy role, nobody."""
    found: dict[tuple, Credentials] = {}

    def add(roles, service_roles) -> None:
        key = (frozenset(roles), frozenset(service_roles))
        if key not in found:
            found[key] = Credentials.for_roles(
                key[0], key[1], user_id="lint-user", project_id="lint-project"
            )

    add((), ())
    for value in section.values.values():
        for entry in value.entries:
            add(entry.user_roles, entry.service_roles)
        if value.policy is not None and policies is not None:
            for kind, match in _policy_atoms(policies, value.policy):
                if kind == "role":
                    add({match.lower()}, ())
                else:
                    add((), {match})
    return list(found.values())


def _policy_atoms(policies: PolicySet, name: str):
    """The ``role:`` and ``service_roles:`` atoms a policy depends on."""
    for _rule, check in policies.reachable_checks(name):
        if isinstance(check, _checks.RoleCheck):
            yield "role", check.match
        elif isinstance(check, _checks.GenericCheck) and check.kind == "service_roles":
            yield "service", check.match


def describe_credentials(creds: Credentials) -> str:
    parts = sorted(creds.roles) + [SERVICE_PREFIX + r for r in sorted(creds.service_roles)]
    return "+".join(parts) if parts else "any authenticated caller"


def _blind_writes(doc: RulesDocument, result: RulesLint) -> list[Problem]:
    engine = result.engine
    assert engine is not None and result.sections is not None
    problems: list[Problem] = []
    for section in doc.sections:
        name = result.sections.reaching.get(section.index)
        if name is None:
            continue
        callers = principals(section, engine.policies)
        # `name` reaches `section` (the order analysis checked it with the engine's
        # own regexes, in its order): decide on the section without a new search.
        allowed = _allowed_masks(engine, section, callers)
        if allowed is None:
            continue
        blind: list[tuple[str, list[str]]] = []
        for bit, creds in enumerate(callers):
            if allowed["read"] >> bit & 1:
                continue
            writes = [op for op in WRITE_OPS if allowed[op] >> bit & 1]
            if writes:
                blind.append((describe_credentials(creds), writes))
        if not blind:
            continue
        first_op = min((w[0] for _, w in blind), key=WRITE_OPS.index)
        by_ops: dict[str, list[str]] = {}
        for who, writes in blind:
            by_ops.setdefault("/".join(writes), []).append(who)
        who = "; ".join(f"{', '.join(names)} may {ops}" for ops, names in by_ops.items())
        problems.append(
            Problem(
                "PG206",
                Severity.WARNING,
                section.values[first_op].position,
                f"blind write in [{section.pattern}]: {who} but not read",
                "let whoever may write also read (Glance answers 'does not exist' to an "
                "update or delete of a property the caller cannot read)",
            )
        )
    return problems


# -- many callers at once ----------------------------------------------------
#
# Asking the engine about every caller one by one is quadratic on a long
# 'or' chain (n callers x n terms, each through oslo.policy's dispatch).
# The masks below answer for all callers at once: bit i is caller i. They
# follow the engine's own semantics (propguard.rules.engine, oslo.policy's
# checks with an empty target); anything else is asked of the check itself,
# caller by caller.


def _allowed_masks(
    engine: RuleEngine, section: Section | None, callers: list[Credentials]
) -> dict[str, int] | None:
    """``op -> mask of callers allowed`` for a section, as the engine decides."""
    if section is None:
        return None
    union = engine.mode == "union"
    everyone = (1 << len(callers)) - 1
    masks: dict[str, int] = {}
    evaluator = _PolicyMasks(engine.policies, callers, union) if engine.policies else None
    holders: dict[tuple[str, str], int] = {}  # ("user"|"service", role) -> callers holding it
    for bit, creds in enumerate(callers):
        for role in creds.roles | creds.service_roles if union else creds.roles:
            holders[("user", role)] = holders.get(("user", role), 0) | 1 << bit
        for role in creds.service_roles:
            holders[("service", role)] = holders.get(("service", role), 0) | 1 << bit
    for op in OPERATIONS:
        value = section.values[op]
        if value.nobody or value.empty:
            masks[op] = 0
        elif value.everyone:
            masks[op] = everyone
        elif value.policy is not None:
            assert evaluator is not None
            masks[op] = evaluator.mask_of_rule(value.policy)
        else:
            mask = 0
            for entry in value.entries:
                hit = everyone
                for role in entry.user_roles:
                    hit &= holders.get(("user", role), 0)
                for role in entry.service_roles:
                    hit &= holders.get(("service", role), 0)
                mask |= hit
            masks[op] = mask
    return masks


class _PolicyMasks:
    """oslo.policy checks evaluated for many callers at once (empty target, as the engine)."""

    def __init__(self, policies: PolicySet, callers: list[Credentials], union: bool) -> None:
        self.policies = policies
        self.values = [c.policy_values(union) for c in callers]
        self.everyone = (1 << len(callers)) - 1
        self.rules: dict[str, int] = {}
        self.lists: dict[tuple[str, str], int] = {}
        for bit, values in enumerate(self.values):
            for kind in ("roles", "service_roles"):
                for role in values.get(kind) or ():
                    key = (kind, str(role).lower())
                    self.lists[key] = self.lists.get(key, 0) | 1 << bit

    def mask_of_rule(self, name: str) -> int:
        if name not in self.rules:
            self.rules[name] = 0  # a cycle evaluates to nothing here; the loader refuses them
            check = self.policies.check_for(name)
            self.rules[name] = 0 if check is None else self.mask(check)
        return self.rules[name]

    def mask(self, check) -> int:
        if isinstance(check, _checks.TrueCheck):
            return self.everyone
        if isinstance(check, _checks.FalseCheck):
            return 0
        if isinstance(check, oslo_policy.OrCheck):
            mask = 0
            for rule in check.rules:
                mask |= self.mask(rule)
            return mask
        if isinstance(check, oslo_policy.AndCheck):
            mask = self.everyone
            for rule in check.rules:
                mask &= self.mask(rule)
            return mask
        if isinstance(check, oslo_policy.NotCheck):
            return self.everyone & ~self.mask(check.rule)
        if isinstance(check, oslo_policy.RuleCheck):
            return self.mask_of_rule(check.match)
        kind = "roles" if type(check) is _checks.RoleCheck else getattr(check, "kind", None)
        is_list_check = type(check) is _checks.RoleCheck or (
            isinstance(check, RoleListCheck) and kind in ROLE_LIST_KINDS
        )
        if is_list_check and "%" not in check.match:
            return self.lists.get((kind, check.match.lower()), 0)
        mask = 0
        for bit, values in enumerate(self.values):
            try:
                if check({}, values, self.policies.enforcer):
                    mask |= 1 << bit
            except Exception:  # the loader refuses what raises; never a crash here
                continue
        return mask
