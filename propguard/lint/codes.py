"""Every finding code the linter can report, with its severity and meaning.

Codes ``PG101``-``PG119`` and the warnings ``PG116``/``PG201`` come from the
rules parser and engine themselves (a file that fails to load in the filter
fails lint with the same code); ``PG2xx`` are the linter's analyses of a rules
file, ``PG3xx`` of an oslo.policy YAML file. ``docs/lint.md`` documents them
with examples; this table feeds the SARIF ``rules`` array and ``--list-codes``.
"""

from __future__ import annotations

from dataclasses import dataclass

from propguard.rules.model import Severity

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    severity: Severity
    name: str  # a short kebab-case name (SARIF rule name)
    summary: str


CODES: dict[str, Code] = {
    c.code: c
    for c in (
        Code("PG101", E, "unreadable-file", "the file cannot be read"),
        Code(
            "PG102", E, "ini-syntax", "INI syntax error (text outside a section, not key = value)"
        ),
        Code("PG103", E, "duplicate-section", "a [section] is defined twice"),
        Code("PG104", E, "bad-regex", "a section name is not a valid regular expression"),
        Code("PG105", E, "missing-operation", "a section lacks create, read, update or delete"),
        Code("PG106", E, "unknown-operation", "an operation key is misspelt or unknown"),
        Code("PG107", E, "everyone-and-nobody", "'@' and '!' in one value"),
        Code("PG108", E, "empty-role-entry", "an empty role entry (stray comma)"),
        Code("PG109", E, "interpolation", "'%' in a value (configparser interpolation)"),
        Code("PG110", E, "multiple-policies", "more than one policy for one operation"),
        Code(
            "PG111", E, "undefined-policy", "a policy name or rule: reference that nothing defines"
        ),
        Code("PG112", E, "default-section", "[DEFAULT] silently fills operations"),
        Code("PG113", E, "duplicate-option", "an operation given twice in one section"),
        Code("PG114", E, "special-mixed-with-roles", "'@' or '!' mixed with role names"),
        Code("PG115", E, "malformed-value", "a malformed role entry or a multi-line value"),
        Code("PG116", W, "os-glance-section", "a section in the reserved os_glance namespace"),
        Code("PG117", E, "unknown-namespace", "a policy namespace that is not installed"),
        Code("PG118", E, "bad-policy-file", "a policy file that cannot be loaded"),
        Code(
            "PG119",
            E,
            "never-matches-folded-name",
            "a section or alternative that matches no name as a folding collation stores it",
        ),
        Code("PG201", W, "empty-value", "an empty operation value (nobody allowed)"),
        Code(
            "PG202",
            E,
            "unreachable-section",
            "earlier sections take every name a section matches (a warning when they give "
            "the same rights)",
        ),
        Code("PG203", W, "overlapping-sections", "two sections with different rules overlap"),
        Code("PG204", W, "unanchored-pattern", "an unanchored pattern matches more than it says"),
        Code("PG205", W, "glob-pattern", "a pattern that reads like a shell glob"),
        Code("PG206", W, "blind-write", "a role may write a property it cannot read"),
        Code("PG207", W, "role-case", "a role written in different letter cases"),
        Code(
            "PG208",
            E,
            "unknown-role",
            "a role no known source defines (Keystone's default roles, the policy files, the "
            "deployment's options, --known-roles)",
        ),
        Code(
            "PG209",
            W,
            "service-role-in-union-mode",
            "a service-like role as a user role in union mode",
        ),
        Code("PG210", W, "no-catch-all", "some names match no section (denied to everyone)"),
        Code(
            "PG211", W, "catastrophic-backtracking", "a pattern prone to catastrophic backtracking"
        ),
        Code("PG212", INFO, "regex-not-analysed", "a pattern the regex analysis cannot model"),
        Code("PG213", W, "always-true-policy", "an operation uses a policy that is always true"),
        Code(
            "PG214",
            W,
            "injected-changeable",
            "an injected property that callers it is injected for may update or delete",
        ),
        Code("PG215", W, "injected-unmatched", "an injected property no section matches"),
        Code("PG301", W, "duplicate-yaml-key", "a policy name given twice in a YAML file"),
        Code("PG302", W, "always-true-check", "a policy check string that is always true"),
        Code("PG303", E, "bad-check-string", "a check string that oslo.policy cannot parse"),
        Code("PG304", E, "undefined-rule-reference", "rule:X where X is defined nowhere"),
        Code("PG305", E, "cyclic-rule-reference", "rules that reference each other in a cycle"),
        Code(
            "PG306",
            W,
            "never-matching-check",
            "a check that can never match propguard's credentials",
        ),
        # propguard check: the deployment (paste file and config files)
        Code("PG401", E, "propguard-missing", "an authenticating pipeline without propguard"),
        Code("PG402", E, "propguard-before-auth", "propguard before the auth layer"),
        Code("PG403", E, "no-auth-layer", "propguard in a pipeline with no auth layer"),
        Code("PG404", E, "glance-property-protection", "Glance's property_protection_file is set"),
        Code(
            "PG405",
            E,
            "glance-property-quota",
            "image_property_quota is not -1 while propguard counts",
        ),
        Code(
            "PG406",
            E,
            "collation-mismatch",
            "name_collation disagrees with [database] connection",
        ),
        Code(
            "PG407",
            E,
            "page-size-mismatch",
            "limit_param_default/api_limit_max differ from Glance's",
        ),
        Code("PG408", E, "unknown-option", "an option propguard does not have (a typo)"),
        Code("PG409", E, "filter-does-not-start", "an option value the filter refuses at start"),
        Code(
            "PG410", E, "dangling-option", "a relations/notifications option that points at nothing"
        ),
    )
}


def severity_of(code: str) -> Severity:
    return CODES[code].severity


def code_docs() -> dict[str, tuple[str, str, str]]:
    """``code -> (meaning, example, fix)`` from the packaged guide's table."""
    import re

    from propguard.lint.guide import TEXT

    rows = {}
    for line in TEXT.splitlines():
        m = re.match(r"\| (PG\d+) \| \w+ \| (.*) \| (.*) \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3), m.group(4))
    return rows


def render_codes() -> str:
    """Every code, its severity, meaning, an example and the fix (``--list-codes``)."""
    docs = code_docs()
    out = []
    for code, info in CODES.items():
        meaning, example, fix = docs.get(code, (info.summary, "", ""))
        out.append(f"{code} {info.severity:<7} {info.name}: {meaning}")
        if example:
            out.append(f"    e.g. {example}; fix: {fix}")
    out.append("")
    out.append("Suppress one with '# propguard: disable=PGxxx' on the line above it.")
    return "\n".join(out) + "\n"
