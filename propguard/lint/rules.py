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
import re
from dataclasses import dataclass, field

from oslo_policy import _checks
from oslo_policy import policy as oslo_policy

from propguard.credentials import Credentials
from propguard.lint.sections import SectionReport, analyse_sections
from propguard.rules.engine import RuleEngine
from propguard.rules.loading import AUTO, RulesOptions
from propguard.rules.model import (
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
from propguard.rules.policy_set import PolicyLoadError, PolicySet, load_policy_set

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

    rules: RulesOptions = field(default_factory=lambda: RulesOptions(rule_format=AUTO))
    known_roles: frozenset[str] | None = None
    service_like_roles: frozenset[str] = field(default_factory=lambda: SERVICE_LIKE_ROLES)
    overlap: bool = True


@dataclass
class RulesLint:
    document: RulesDocument
    problems: list[Problem]
    sections: SectionReport | None = None
    engine: RuleEngine | None = None
    policies: PolicySet | None = None


def lint_rules_file(path: str, options: LintOptions) -> RulesLint:
    return lint_rules_document(options.rules.with_file(path).parse(), options)


def lint_rules_document(doc: RulesDocument, options: LintOptions) -> RulesLint:
    problems = list(doc.problems)
    result = RulesLint(doc, problems)
    clean = dataclasses.replace(
        doc, problems=[]
    )  # the valid sections, compiled as the filter would
    try:
        result.engine = options.rules.compile(clean)
    except RulesError as exc:
        seen = {(p.code, p.position, p.message) for p in problems}
        problems.extend(p for p in exc.problems if (p.code, p.position, p.message) not in seen)
    if doc.format is RuleFormat.POLICIES:
        try:
            result.policies = load_policy_set(
                options.rules.policy_file, options.rules.policy_namespaces
            )
        except PolicyLoadError:
            result.policies = None
    result.sections = analyse_sections(
        doc, os_glance_section=options.rules.os_glance_section, overlap=options.overlap
    )
    problems.extend(result.sections.problems)
    problems.extend(_role_names(doc, options))
    if result.policies is not None:
        problems.extend(_always_true_policies(doc, result.policies))
    if result.engine is not None:
        problems.extend(_blind_writes(doc, result))
    return result


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
                    Severity.WARNING,
                    where,
                    f"role '{name}' in [{section.pattern}] is not a known role",
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


def always_true(check, policies: PolicySet | None, seen: frozenset[str] = frozenset()) -> bool:
    """Is an oslo.policy check true for every caller (whatever the credentials)?"""
    if isinstance(check, _checks.TrueCheck):
        return True
    if isinstance(check, oslo_policy.OrCheck):
        return any(always_true(r, policies, seen) for r in check.rules)
    if isinstance(check, oslo_policy.AndCheck):
        return all(always_true(r, policies, seen) for r in check.rules)
    if isinstance(check, oslo_policy.NotCheck):
        return never_true(check.rule, policies, seen)
    if isinstance(check, oslo_policy.RuleCheck) and policies is not None and check.match not in seen:
        target = policies.check_for(check.match)
        return target is not None and always_true(target, policies, seen | {check.match})
    return False


def never_true(check, policies: PolicySet | None, seen: frozenset[str] = frozenset()) -> bool:
    if isinstance(check, _checks.FalseCheck):
        return True
    if isinstance(check, oslo_policy.AndCheck):
        return any(never_true(r, policies, seen) for r in check.rules)
    if isinstance(check, oslo_policy.OrCheck):
        return all(never_true(r, policies, seen) for r in check.rules)
    if isinstance(check, oslo_policy.NotCheck):
        return always_true(check.rule, policies, seen)
    if isinstance(check, oslo_policy.RuleCheck) and policies is not None and check.match not in seen:
        target = policies.check_for(check.match)
        return target is None or never_true(target, policies, seen | {check.match})
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
        blind: list[tuple[str, list[str]]] = []
        for creds in principals(section, engine.policies):
            if engine.allowed(name, "read", creds):
                continue
            writes = [op for op in WRITE_OPS if engine.allowed(name, op, creds)]
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
