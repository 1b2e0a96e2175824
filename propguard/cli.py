"""The ``propguard`` command: ``lint``, ``explain``, ``matrix``, ``demo``.

Exit codes: 0 success (lint: nothing at or above ``--fail-on``), 1 findings
or rules that do not load, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from propguard.rules.loading import RulesOptions
from propguard.rules.model import OPERATIONS, RulesError, Severity

FAIL_LEVELS = {"error": 2, "warning": 1, "info": 0, "never": 99}


def _csv(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def _add_rules_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rules-format",
        choices=("auto", "roles", "policies"),
        default="auto",
        help="how values are read (default: detect; roles unless the values are policy names)",
    )
    p.add_argument("--policy-file", help="oslo.policy YAML file for policies-format rule names")
    p.add_argument(
        "--policy-namespace",
        action="append",
        dest="policy_namespaces",
        metavar="NS",
        help="oslo.policy.policies namespace whose defaults define names (repeatable; "
        "default: glance)",
    )
    p.add_argument("--service-role-mode", choices=("strict", "union"), default="strict")
    p.add_argument(
        "--no-os-glance-section",
        dest="os_glance_section",
        action="store_false",
        help="do not model the built-in first section ^os_glance",
    )


def _rules_options(args: argparse.Namespace) -> RulesOptions:
    return RulesOptions(
        rule_format=args.rules_format,
        policy_file=args.policy_file,
        policy_namespaces=tuple(args.policy_namespaces or ("glance",)),
        service_role_mode=args.service_role_mode,
        os_glance_section=args.os_glance_section,
    )


def _lint_options(args: argparse.Namespace):
    from propguard.lint.rules import SERVICE_LIKE_ROLES, LintOptions

    return LintOptions(
        rules=_rules_options(args),
        known_roles=args.known_roles,
        service_like_roles=SERVICE_LIKE_ROLES | (args.service_like_roles or frozenset()),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="propguard", description="Property protection for OpenStack Glance v2."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    lint = sub.add_parser(
        "lint",
        help="check rules files and oslo.policy files",
        description="Lint property-protection rules files (roles or policies format) and "
        "oslo.policy YAML files or policy.d directories. Findings: file:line:col: CODE severity "
        "message. See docs/lint.md for the codes.",
    )
    lint.add_argument("files", nargs="+", metavar="FILE")
    lint.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    lint.add_argument(
        "--fail-on",
        choices=tuple(FAIL_LEVELS),
        default="error",
        help="exit 1 when a finding is at or above this severity (default: error)",
    )
    lint.add_argument("--known-roles", type=_csv, help="comma-separated role names that exist")
    lint.add_argument(
        "--service-like-roles",
        type=_csv,
        help="extra role names to treat as service roles (PG209)",
    )
    lint.add_argument("--ignore", type=_csv, default=frozenset(), help="codes to leave out")
    lint.add_argument("-o", "--output", help="write the report here instead of stdout")
    _add_rules_options(lint)

    explain = sub.add_parser(
        "explain",
        help="show the decision for one property and why",
        description="The decision for each operation on PROPERTY, the section and line "
        "that decided it, and why.",
    )
    explain.add_argument("--rules", required=True, metavar="FILE")
    explain.add_argument("--roles", type=_csv, default=frozenset(), help="user roles, a,b")
    explain.add_argument(
        "--service-roles",
        type=_csv,
        default=frozenset(),
        help="roles of a confirmed service token (as if it carried a service_token_roles role)",
    )
    explain.add_argument("--format", choices=("text", "json"), default="text")
    explain.add_argument("property")
    explain.add_argument("op", nargs="?", choices=OPERATIONS)
    _add_rules_options(explain)

    matrix = sub.add_parser(
        "matrix",
        help="table of sections x role sets x create/read/update/delete",
    )
    matrix.add_argument("--rules", required=True, metavar="FILE")
    matrix.add_argument(
        "--roles-sets",
        required=True,
        help="role sets separated by ';', roles joined by '+' or ',', service-token roles as "
        "service:<role>, e.g. 'member;admin;member+service:nova'",
    )
    matrix.add_argument(
        "--format", choices=("text", "markdown", "md", "html", "json"), default="text"
    )
    matrix.add_argument("-o", "--output", help="write the table here instead of stdout")
    _add_rules_options(matrix)

    sub.add_parser("demo", help="run the demo (see propguard demo --help)", add_help=False)
    return parser


def _write(text: str, output: str | None) -> None:
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)


def _lint(args: argparse.Namespace) -> int:
    from propguard.lint import SEVERITY_RANK, lint_paths
    from propguard.lint.report import RENDERERS

    problems = lint_paths(
        args.files, _lint_options(args), ignore=frozenset(c.upper() for c in args.ignore)
    )
    _write(RENDERERS[args.format](problems), args.output)
    threshold = FAIL_LEVELS[args.fail_on]
    return 1 if any(SEVERITY_RANK[Severity(p.severity)] >= threshold for p in problems) else 0


def _load(args: argparse.Namespace):
    from propguard.explain import load

    options = _rules_options(args)
    try:
        doc, engine = load(args.rules, options)
    except RulesError as exc:
        print(f"propguard: the rules do not load ({args.rules}):", file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        return None
    return doc, engine, options


def _explain(args: argparse.Namespace) -> int:
    from propguard.explain import credentials, explain, render_explain_text

    loaded = _load(args)
    if loaded is None:
        return 1
    doc, engine, _ = loaded
    ops = [args.op] if args.op else list(OPERATIONS)
    result = explain(doc, engine, args.property, ops, credentials(args.roles, args.service_roles))
    if args.format == "json":
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        sys.stdout.write(render_explain_text(result))
    return 0


def _matrix(args: argparse.Namespace) -> int:
    from propguard.matrix import MATRIX_RENDERERS, matrix, parse_role_sets

    try:
        role_sets = parse_role_sets(args.roles_sets)
    except ValueError as exc:
        print(f"propguard: --roles-sets: {exc}", file=sys.stderr)
        return 2
    loaded = _load(args)
    if loaded is None:
        return 1
    doc, engine, options = loaded
    result = matrix(doc, engine, role_sets, options.os_glance_section)
    _write(MATRIX_RENDERERS[args.format](result), args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "demo":
        from propguard.demo import main as demo_main

        return int(demo_main(argv[1:]) or 0)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on usage errors, 0 for --help
        return int(exc.code or 0)
    handlers = {"lint": _lint, "explain": _explain, "matrix": _matrix}
    return handlers[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
