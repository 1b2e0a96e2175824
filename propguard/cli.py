"""The ``propguard`` command: ``lint``, ``explain``, ``matrix``, ``demo``.

Exit codes: 0 success (lint: nothing at or above ``--fail-on``); 1 lint
findings at or above ``--fail-on``, or (explain, matrix) a rules file that
does not load; 2 usage error, an argument with nothing to lint, or (explain,
matrix) a policy file, ``policy.d`` or namespace that cannot be used.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from propguard import __version__
from propguard.glance.collation import COLLATIONS
from propguard.rules.loading import RulesOptions
from propguard.rules.model import OPERATIONS, Position, Problem, RulesError, Severity

FAIL_LEVELS = {"error": 2, "warning": 1, "info": 0, "never": 99}

DOCS_HINT = "every code, with an example and its fix: propguard lint --list-codes"

LINT_EXIT = """\
exit codes:
  0  nothing at or above --fail-on (a one-line summary goes to stderr)
  1  findings at or above --fail-on (default: error)
  2  usage error, or an argument that gives nothing to lint

A FILE named *.yaml, *.yml or *.json is an oslo.policy file, read with the
files of its policy_dirs (default: policy.d beside it) as the filter reads
them; any other FILE is a rules file. A directory: its rules files, its
policy files and their policy_dirs; a directory named like one of
--policy-dirs (policy.d): every file in it not starting with a dot.
"""

EXPLAIN_MATRIX_EXIT = """\
exit codes:
  0  answered
  1  the rules file does not load (its errors are printed: file:line:col: CODE ...)
  2  usage error, or the policy file, a file of its policy_dirs or a
     policy namespace cannot be used (printed the same way)
"""

TOP_EXIT = """\
exit codes:
  0  success
  1  lint: findings at or above --fail-on; explain/matrix: the rules do not load
  2  usage error; an argument with nothing to lint; a policy set that cannot be used
(each command's --help has the details)
"""


def _csv(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


def _list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _add_deployed_options(p: argparse.ArgumentParser) -> None:
    """--config-file/--paste-ini/--paste-filter: read the options as the deployed filter does."""
    deployed = p.add_argument_group(
        "the deployed filter's configuration (its options replace the flags below; "
        "without FILE (lint) or --rules (explain, matrix), its rules file is read)"
    )
    deployed.add_argument(
        "--config-file",
        action="append",
        default=[],
        metavar="FILE",
        help="an oslo.config file with the filter's [propguard] options (repeatable)",
    )
    deployed.add_argument(
        "--paste-ini", metavar="FILE", help="the paste.ini holding the filter's section"
    )
    deployed.add_argument(
        "--paste-filter",
        metavar="NAME",
        help="its [filter:NAME] section (default: the one using egg:propguard#propguard)",
    )


def _add_rules_options(p: argparse.ArgumentParser) -> None:
    """The filter's own options that change what is loaded, under the same names."""
    group = p.add_argument_group("the filter's options (as in [propguard] / the paste section)")
    group.add_argument(
        "--rules-format",
        choices=("auto", "roles", "policies"),
        default="roles",
        help="rule_format: how values are read (default: roles, the filter's default). auto: "
        "guess (roles unless the values are single policy names that the policy set defines, "
        "or the file name says 'polic'); the summary then says which format was assumed",
    )
    group.add_argument(
        "--policy-file",
        metavar="FILE",
        help="policy_file: the oslo.policy YAML in which policies-format names resolve "
        "(read with its policy_dirs, as the filter reads it)",
    )
    group.add_argument(
        "--policy-dirs",
        type=_list,
        metavar="DIR[,DIR...]",
        help="policy_dirs: directories (relative: next to the policy file) whose files "
        "override it; '' for none (default: policy.d)",
    )
    group.add_argument(
        "--policy-namespaces",
        type=_list,
        metavar="NS[,NS...]",
        help="policy_namespaces: oslo.policy.policies namespaces whose registered defaults "
        "define names (default: glance)",
    )
    group.add_argument(
        "--policy-namespace",
        action="append",
        dest="policy_namespace",
        metavar="NS",
        help="one more namespace (repeatable; adds to --policy-namespaces)",
    )
    group.add_argument(
        "--service-role-mode",
        choices=("strict", "union"),
        default="strict",
        help="service_role_mode: strict counts service-token roles only where a rule names "
        "them (service:<role>), union also as user roles, as Glance does (default: strict)",
    )
    group.add_argument(
        "--name-collation",
        choices=("auto", *COLLATIONS),
        default="auto",
        help="name_collation: how Glance's database compares property names; under a folding "
        "collation (MySQL/MariaDB) each name is decided as its folded spelling and a section "
        "that matches no folded name is an error (PG119). auto: from the [database] "
        "connection of --config-file, else binary (said on stderr) (default: auto)",
    )
    group.add_argument(
        "--no-os-glance-section",
        dest="os_glance_section",
        action="store_false",
        help="os_glance_section = false: do not put the built-in first section ^os_glance",
    )


def _rules_options(args: argparse.Namespace) -> RulesOptions:
    namespaces = list(args.policy_namespaces if args.policy_namespaces is not None else ())
    namespaces += args.policy_namespace or []
    if args.policy_namespaces is None and not args.policy_namespace:
        namespaces = ["glance"]
    options = RulesOptions(
        rule_format=args.rules_format,
        policy_file=args.policy_file,
        policy_namespaces=tuple(dict.fromkeys(namespaces)),
        service_role_mode=args.service_role_mode,
        os_glance_section=args.os_glance_section,
        name_collation=args.name_collation,
    )
    if args.policy_dirs is not None:
        options = dataclasses.replace(options, policy_dirs=args.policy_dirs)
    return options


def _lint_options(args: argparse.Namespace, deployed: dict[str, Any] | None = None):
    """Options from the flags, or from the deployed filter's resolved options.

    Either way ``--option NAME=VALUE`` and the lint-only spellings of filter
    options (``--rules-file``, ``--inject-properties``, ...) are applied on
    top, each converted by the option's own oslo.config type, and every
    value is checked as the filter checks it at start (a bad one: exit 2).
    """
    from propguard.injection import Injection
    from propguard.lint import is_policy_path
    from propguard.lint.roles import known_roles
    from propguard.lint.rules import SERVICE_LIKE_ROLES, LintOptions

    values = _lint_values(args, deployed)
    rules = _tool_rules_options(args, values)
    injection = None
    if deployed is not None or values["inject_properties"]:
        injection = Injection.from_options(
            values["inject_properties"],
            values["inject_ignore_roles"],
            values["inject_service_roles"],
        )
    from propguard.view import ViewConfig

    ViewConfig(frozenset(values["protect_core_attributes"]))  # the filter's own check at start
    return LintOptions(
        rules=rules,
        known_roles=known_roles(
            args.known_roles, values, [f for f in args.files if is_policy_path(f)]
        ),
        service_like_roles=SERVICE_LIKE_ROLES | (args.service_like_roles or frozenset()),
        injection=injection,
    ), values


#: The rules options' flags (shared with explain and matrix): (flag, [propguard] option).
RULES_FLAGS = (
    ("--rules-format", "rule_format"),
    ("--policy-file", "policy_file"),
    ("--policy-dirs", "policy_dirs"),
    ("--policy-namespaces", "policy_namespaces"),
    ("--service-role-mode", "service_role_mode"),
    ("--name-collation", "name_collation"),
    ("--no-os-glance-section", "os_glance_section"),
)

#: Options that change nothing lint reads (request handling, caches, relations):
#: lint checks their values as the filter does at start, given with -O or found
#: in --config-file/--paste-ini. A new option must be put here or get a flag.
RUNTIME_OPTIONS = frozenset(
    {
        "trust_identity_headers",
        "reload_interval",
        "reload_on_sighup",
        "max_request_body_size",
        "max_response_body_size",
        "allow_glance_download",
        "list_scan_limit",
        "property_quota",
        "limit_param_default",
        "api_limit_max",
        "name_cache_size",
        "decision_cache_size",
        "relations_connection",
        "relations_origins",
        "relations_service_roles",
        "relations_synchronous",
        "relations_outbox",
        "relations_rotation",
        "relations_timeout",
        "relations_retry_interval",
        # what the filter does with its decisions (dry run, decision log)
        "decision_log",
        "decision_notifications",
        "decision_notifications_driver",
        "decision_notifications_topics",
        "decision_notifications_transport_url",
        "enforce",
        "log_property_names",
    }
)

#: Filter options spelt as lint flags of their own (beyond the rules options):
#: (flag, [propguard] option). ``--option NAME=VALUE`` sets any of them too.
LINT_ONLY_FLAGS = (
    ("--rules-file", "rules_file"),
    ("--service-token-roles", "service_token_roles"),
    ("--protect-core-attributes", "protect_core_attributes"),
    ("--inject-properties", "inject_properties"),
    ("--inject-ignore-roles", "inject_ignore_roles"),
    ("--inject-service-roles", "inject_service_roles"),
    ("--shadow-rules-file", "shadow_rules_file"),
    ("--shadow-rule-format", "shadow_rule_format"),
)


def _lint_values(args: argparse.Namespace, deployed: dict[str, Any] | None) -> dict[str, Any]:
    """Every ``[propguard]`` option's value for this lint run (see :func:`_lint_options`)."""
    from propguard import opts

    if deployed is not None:
        values = dict(deployed)
    else:
        rules = _rules_options(args)
        values = {opt.dest: opt.default for opt in opts.OPTS}
        values.update(
            rule_format=rules.rule_format,
            policy_file=rules.policy_file,
            policy_dirs=list(rules.policy_dirs),
            policy_namespaces=list(rules.policy_namespaces),
            service_role_mode=rules.service_role_mode,
            os_glance_section=rules.os_glance_section,
            name_collation=rules.name_collation,
        )
    given = {name: getattr(args, name) for _, name in LINT_ONLY_FLAGS if getattr(args, name)}
    for pair in args.option or []:
        name, eq, raw = pair.partition("=")
        if not eq:
            raise ValueError(f"--option {pair!r}: expected NAME=VALUE")
        given[name.strip()] = raw.strip()
    values.update(opts.paste_values(given, opts.OPTS, "--option/flag: propguard"))
    return values


def _tool_rules_options(args: argparse.Namespace, deployed: dict[str, Any] | None) -> RulesOptions:
    """The rules options of the flags or of the deployed filter, ``auto`` collation resolved.

    ``name_collation = auto`` is resolved from the ``[database] connection``
    of ``--config-file`` as the filter inside glance-api resolves it; with no
    connection known it is ``binary``. Either way stderr says which was assumed.
    """
    from propguard.lint.filter_config import tool_collation

    if deployed is not None:
        rules = RulesOptions.from_options({**deployed, "rules_file": None})
    else:
        rules = _rules_options(args)
    collation, note = tool_collation(rules.name_collation, getattr(args, "config_file", []))
    if note:
        print(f"propguard {args.command}: note: {note}", file=sys.stderr)
    return dataclasses.replace(rules, name_collation=collation)


def _deployed_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The filter's options from --config-file/--paste-ini; None without them."""
    if not (args.config_file or args.paste_ini):
        return None
    from propguard.lint.filter_config import filter_options

    return filter_options(args.config_file, args.paste_ini, args.paste_filter)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the epilog's layout (exit codes), wrap the rest."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="propguard",
        description="Property protection for the OpenStack Glance v2 image API: tools for "
        "its rules files and oslo.policy files.",
        epilog=TOP_EXIT,
        formatter_class=_Formatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"propguard {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help="one of:")
    sub.required = True

    lint = sub.add_parser(
        "lint",
        help="check rules files and oslo.policy files",
        description="Lint property-protection rules files (roles or policies format) and "
        "oslo.policy YAML files or policy.d directories, reading them as the filter reads "
        "them: whatever the filter refuses is an error here. Findings: "
        "file:line:col: CODE severity message. " + DOCS_HINT + ".",
        epilog=LINT_EXIT,
        formatter_class=_Formatter,
    )
    lint.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="rules file, policy file (.yaml/.yml/.json) or directory",
    )
    lint.add_argument(
        "--format",
        choices=("text", "json", "sarif"),
        default="text",
        help="report format: text (file:line:col: CODE severity message), json (a list of "
        "findings), sarif (SARIF 2.1.0, for code-scanning UIs) (default: text)",
    )
    lint.add_argument(
        "--fail-on",
        choices=tuple(FAIL_LEVELS),
        default="error",
        help="exit 1 when a finding is at or above this severity (default: error)",
    )
    lint.add_argument(
        "--known-roles",
        type=_csv,
        metavar="ROLE[,ROLE...]",
        help="the role names that exist in Keystone: others are reported (PG208, PG207)",
    )
    lint.add_argument(
        "--service-like-roles",
        type=_csv,
        metavar="ROLE[,ROLE...]",
        help="more role names to treat as service roles (PG209)",
    )
    lint.add_argument(
        "--ignore",
        type=_csv,
        default=frozenset(),
        metavar="CODE[,CODE...]",
        help="codes to leave out of the report",
    )
    lint.add_argument("-o", "--output", metavar="FILE", help="write the report here, not stdout")
    lint.add_argument("-q", "--quiet", action="store_true", help="no summary line on stderr")
    lint.add_argument(
        "--list-codes", action="store_true", help="print every finding code with an example"
    )
    _add_deployed_options(lint)
    _add_rules_options(lint)
    more = lint.add_argument_group("the filter's other options")
    more.add_argument(
        "--rules-file",
        metavar="FILE",
        help="rules_file: read exactly as the filter reads it (a directory is an error, "
        "PG101), as rules_file of --config-file/--paste-ini is",
    )
    more.add_argument(
        "--service-token-roles",
        metavar="ROLE[,ROLE...]",
        help="service_token_roles (known roles, PG208)",
    )
    more.add_argument(
        "--protect-core-attributes",
        metavar="ATTR[,ATTR...]",
        help="protect_core_attributes (locations, direct_url)",
    )
    more.add_argument(
        "--inject-properties", metavar="NAME:VALUE[,...]", help="inject_properties (PG214, PG215)"
    )
    more.add_argument("--inject-ignore-roles", metavar="ROLE[,ROLE...]", help="inject_ignore_roles")
    more.add_argument(
        "--inject-service-roles", metavar="ROLE[,ROLE...]", help="inject_service_roles"
    )
    more.add_argument(
        "--shadow-rules-file",
        metavar="FILE",
        help="shadow_rules_file: linted too, with the same options and its own format",
    )
    more.add_argument(
        "--shadow-rule-format",
        choices=("roles", "policies"),
        help="shadow_rule_format (default: the rules' format)",
    )
    more.add_argument(
        "-O",
        "--option",
        action="append",
        metavar="NAME=VALUE",
        help="any [propguard] option, as in the paste section (repeatable): checked as the "
        "filter checks it at start (e.g. -O property_quota=-1)",
    )

    explain = sub.add_parser(
        "explain",
        help="show the decision for one property and why",
        description="The decision for each operation on PROPERTY for a caller with the "
        "given roles: the section and line that decided it, and why. The rules are loaded "
        "as the filter loads them.",
        epilog=EXPLAIN_MATRIX_EXIT,
        formatter_class=_Formatter,
    )
    explain.add_argument(
        "--rules", metavar="FILE", help="the rules file (default: rules_file of --config-file)"
    )
    explain.add_argument(
        "--roles",
        type=_csv,
        default=frozenset(),
        metavar="ROLE[,ROLE...]",
        help="the caller's user roles (default: none)",
    )
    explain.add_argument(
        "--service-roles",
        type=_csv,
        default=frozenset(),
        metavar="ROLE[,ROLE...]",
        help="roles of a confirmed service token (as if it carried a service_token_roles role)",
    )
    explain.add_argument(
        "--format", choices=("text", "json"), default="text", help="output (default: text)"
    )
    explain.add_argument(
        "--shadow-rules",
        metavar="FILE",
        help="also decide with these rules (the filter's shadow_rules_file, default: that "
        "of --config-file) and show where they would decide otherwise",
    )
    explain.add_argument(
        "--shadow-rule-format",
        choices=("roles", "policies"),
        help="format of --shadow-rules (default: the rules' format)",
    )
    explain.add_argument("property", metavar="PROPERTY", help="the property name")
    explain.add_argument(
        "op", nargs="?", choices=OPERATIONS, metavar="OP", help="one of " + ", ".join(OPERATIONS)
    )
    _add_deployed_options(explain)
    _add_rules_options(explain)

    matrix = sub.add_parser(
        "matrix",
        help="table of sections x role sets x create/read/update/delete",
        description="For every section of the rules file (in the order the filter tries "
        "them) and every role set, which of create/read/update/delete are allowed, decided "
        "by the filter's engine for a name that really reaches the section.",
        epilog=EXPLAIN_MATRIX_EXIT,
        formatter_class=_Formatter,
    )
    matrix.add_argument(
        "--rules", metavar="FILE", help="the rules file (default: rules_file of --config-file)"
    )
    matrix.add_argument(
        "--roles-sets",
        required=True,
        metavar="SETS",
        help="role sets separated by ';', roles joined by '+' or ',', service-token roles as "
        "service:<role>, '-' for a caller with no role, e.g. 'member;admin;member+service:nova'",
    )
    matrix.add_argument(
        "--format",
        choices=("text", "markdown", "md", "html", "json"),
        default="text",
        help="output: text, markdown (md), html (a self-contained page) or json (default: text)",
    )
    matrix.add_argument("-o", "--output", metavar="FILE", help="write the table here, not stdout")
    matrix.add_argument(
        "--shadow-rules",
        metavar="FILE",
        help="list every cell these rules (the filter's shadow_rules_file, default: that of "
        "--config-file) decide otherwise: what switching would change, per section and role set",
    )
    matrix.add_argument(
        "--shadow-rule-format",
        choices=("roles", "policies"),
        help="format of --shadow-rules (default: the rules' format)",
    )
    _add_deployed_options(matrix)
    _add_rules_options(matrix)

    sub.add_parser(
        "metrics-exporter",
        help="serve the Prometheus metrics of a multiprocess directory (glance-api's "
        "workers): propguard metrics-exporter --help",
        add_help=False,
    )
    sub.add_parser(
        "demo",
        help="start a real Keystone, Glance and propguard serve and walk a tour with real "
        "tokens (propguard demo --help; --in-process: the tour on an in-process Glance)",
        add_help=False,
    )
    # The adapters' own commands (their modules import nothing heavy at this point).
    from propguard.notifications import cli as notify_cli
    from propguard.proxy import cli as proxy_cli
    from propguard.relations import cli as relations_cli

    notify_cli.add_parser(sub)
    proxy_cli.add_parser(sub)
    relations_cli.add_parsers(sub)
    from propguard.jwt import token_cli

    token_cli.add_parser(sub)

    check = sub.add_parser(
        "check",
        help="check a deployment: pipelines, Glance's options, propguard's options, rules",
        description="Check glance-api's (or propguard serve's) deployment: propguard in every "
        "authenticating pipeline after the auth layer, Glance options that undo it "
        "(property_protection_file, image_property_quota, page sizes, the database's "
        "collation), unknown or dangling options, then lint the rules and policy files "
        "exactly as the deployment configures them. Findings and exit codes as lint's. "
        + DOCS_HINT
        + ".",
        epilog=LINT_EXIT,
        formatter_class=_Formatter,
    )
    check.add_argument(
        "--paste-ini", required=True, metavar="FILE", help="glance-api-paste.ini or serve.ini"
    )
    check.add_argument(
        "--config-file",
        action="append",
        default=[],
        metavar="FILE",
        help="glance-api.conf (or propguard serve's --config-file) (repeatable, in order)",
    )
    check.add_argument(
        "--glance-config-file",
        action="append",
        metavar="FILE",
        help="Glance's own config when it is not --config-file (propguard serve): "
        "property_protection_file, image_property_quota, page sizes, [database] connection "
        "are checked only with it (default: --config-file, unless the paste file is serve's)",
    )
    check.add_argument("--paste-filter", metavar="NAME", help="propguard's [filter:NAME]")
    check.add_argument(
        "--format", choices=("text", "json", "sarif"), default="text", help="as lint's"
    )
    check.add_argument("--fail-on", choices=tuple(FAIL_LEVELS), default="error", help="as lint's")
    check.add_argument(
        "--known-roles",
        type=_csv,
        metavar="ROLE[,ROLE...]",
        help="more roles that exist in Keystone (PG208)",
    )
    check.add_argument(
        "--ignore", type=_csv, default=frozenset(), metavar="CODE[,CODE...]", help="as lint's"
    )
    check.add_argument("-o", "--output", metavar="FILE", help="write the report here")
    check.add_argument("-q", "--quiet", action="store_true", help="no summary line on stderr")
    return parser


def _write(text: str, output: str | None) -> None:
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)


def _lint(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from propguard.lint import SEVERITY_RANK, LintUsageError, lint_run
    from propguard.lint.codes import render_codes
    from propguard.lint.report import RENDERERS

    if args.list_codes:
        sys.stdout.write(render_codes())
        return 0
    from propguard.lint.filter_config import FilterConfigError

    try:
        deployed = _deployed_options(args)
        options, values = _lint_options(args, deployed)
    except (FilterConfigError, ValueError) as exc:
        print(f"propguard lint: error: {exc}", file=sys.stderr)
        return 2
    files = list(args.files)
    # rules_file (--rules-file, --config-file/--paste-ini) is read as the filter
    # reads it: a directory there is the loader's error, not a directory to search.
    rules_files = []
    if values.get("rules_file") and (args.rules_file or not files):
        rules_files = [values["rules_file"]]
    if not files and not rules_files:
        print(
            "propguard lint: error: give at least one FILE, --rules-file, --config-file/"
            "--paste-ini setting rules_file, or --list-codes",
            file=sys.stderr,
        )
        return 2
    try:
        run = lint_run(
            files,
            options,
            ignore=frozenset(c.upper() for c in args.ignore),
            rules_files=rules_files,
        )
        if values.get("shadow_rules_file"):
            # The filter loads the shadow file as it loads its rules: lint it alike.
            shadow_format = values.get("shadow_rule_format") or options.rules.rule_format
            shadow_options = dataclasses.replace(
                options, rules=dataclasses.replace(options.rules, rule_format=shadow_format)
            )
            shadow = lint_run(
                [],
                shadow_options,
                ignore=frozenset(c.upper() for c in args.ignore),
                rules_files=[values["shadow_rules_file"]],
            )
            run.problems.extend(shadow.problems)
            run.rules_files.update(shadow.rules_files)
    except LintUsageError as exc:
        print(f"propguard lint: error: {exc}", file=sys.stderr)
        return 2
    _write(RENDERERS[args.format](run.problems), args.output)
    if not args.quiet:
        print(run.summary(), file=sys.stderr)
    threshold = FAIL_LEVELS[args.fail_on]
    return 1 if any(SEVERITY_RANK[Severity(p.severity)] >= threshold for p in run.problems) else 0


def _check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``propguard check``: the deployment's findings, then lint of its rules as configured."""
    from propguard.lint import SEVERITY_RANK, LintUsageError, lint_run
    from propguard.lint.deployment import Deployment, check_deployment
    from propguard.lint.filter_config import FilterConfigError
    from propguard.lint.report import RENDERERS

    deployment = Deployment(
        args.paste_ini, tuple(args.config_file), args.glance_config_file, args.paste_filter
    )
    try:
        problems, values = check_deployment(deployment)
    except (OSError, ValueError) as exc:
        print(f"propguard check: error: {exc}", file=sys.stderr)
        return 2
    files = 0
    if values is not None:
        args.files, args.option = [], None
        for _, name in LINT_ONLY_FLAGS:
            setattr(args, name, None)
        args.service_like_roles = None
        try:
            options, values = _lint_options(args, values)
        except (FilterConfigError, ValueError) as exc:
            problems.append(Problem("PG409", Severity.ERROR, Position(args.paste_ini, 1), str(exc)))
            options = None
        if options is not None and not values.get("rules_file"):
            problems.append(
                Problem(
                    "PG409",
                    Severity.ERROR,
                    Position((args.config_file or [args.paste_ini])[0], 1),
                    "rules_file is not set: the filter refuses to start without rules",
                )
            )
        elif options is not None:
            try:
                run = lint_run([], options, rules_files=[values["rules_file"]])
            except LintUsageError as exc:
                print(f"propguard check: error: {exc}", file=sys.stderr)
                return 2
            problems.extend(run.problems)
            files = run.files
    ignore = frozenset(c.upper() for c in args.ignore)
    problems = sorted(
        (p for p in dict.fromkeys(problems) if p.code not in ignore),
        key=lambda p: (p.position.file, p.position.line, p.position.column, p.code),
    )
    _write(RENDERERS[args.format](problems), args.output)
    counts = {s: sum(1 for p in problems if Severity(p.severity) is s) for s in Severity}
    if not args.quiet:
        print(
            f"propguard check: {args.paste_ini} and {len(args.config_file)} config file(s), "
            f"{files} rules/policy file(s) linted: {counts[Severity.ERROR]} errors, "
            f"{counts[Severity.WARNING]} warnings, {counts[Severity.INFO]} infos",
            file=sys.stderr,
        )
    threshold = FAIL_LEVELS[args.fail_on]
    return 1 if any(SEVERITY_RANK[Severity(p.severity)] >= threshold for p in problems) else 0


def _print_problems(problems: list[Problem]) -> None:
    for p in problems:
        print(f"  {p}", file=sys.stderr)
        if p.hint:
            print(f"      hint: {p.hint}", file=sys.stderr)


def _load(args: argparse.Namespace):
    """``(doc, engine, options)``, or the exit code after printing why the rules do not load."""
    from propguard.explain import load, policy_set_notes
    from propguard.lint.filter_config import FilterConfigError

    try:
        deployed = _deployed_options(args)
        options = _tool_rules_options(args, deployed)
    except (FilterConfigError, ValueError) as exc:
        print(f"propguard {args.command}: error: {exc}", file=sys.stderr)
        return 2
    if args.rules is None:
        args.rules = (deployed or {}).get("rules_file")
        if args.rules is None:
            print(
                f"propguard {args.command}: error: give --rules, or --config-file/--paste-ini "
                "setting rules_file",
                file=sys.stderr,
            )
            return 2
    try:
        doc, engine = load(args.rules, options)
    except RulesError as exc:
        in_rules = [p for p in exc.problems if p.position.file == args.rules]
        policy_side = len(in_rules) < len(exc.problems)
        what = "the policy set does" if policy_side else "the rules do"
        print(f"propguard {args.command}: {what} not load ({args.rules}):", file=sys.stderr)
        _print_problems(exc.problems)
        return 2 if policy_side else 1
    notes = policy_set_notes(engine, options)
    if notes:
        print(
            f"propguard {args.command}: note: the policy set has errors in rules these "
            "rules do not use:",
            file=sys.stderr,
        )
        _print_problems(notes)
    return doc, engine, options


def _explain(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from propguard.explain import credentials, explain, render_explain_text

    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    doc, engine, options = loaded
    ops = [args.op] if args.op else list(OPERATIONS)
    creds = credentials(args.roles, args.service_roles)
    result = explain(doc, engine, args.property, ops, creds, options.name_folding())
    shadow = _shadow(args, options)
    if isinstance(shadow, int):
        return shadow
    if shadow is not None:
        from propguard.explain import with_shadow

        shadow_doc, shadow_engine = shadow
        said = explain(shadow_doc, shadow_engine, args.property, ops, creds, options.name_folding())
        result = with_shadow(result, said)
    if args.format == "json":
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        sys.stdout.write(render_explain_text(result))
    return 0


def _shadow(args: argparse.Namespace, options: RulesOptions):
    """``(doc, engine)`` of the shadow rules (``--shadow-rules``, or ``shadow_rules_file`` of
    --config-file) loaded as the filter loads them, None without any, or the exit code (1)."""
    path = args.shadow_rules or (_deployed_options(args) or {}).get("shadow_rules_file")
    if not path:
        return None
    from propguard.explain import load

    shadow_options = dataclasses.replace(
        options, rule_format=args.shadow_rule_format or options.rule_format
    )
    try:
        return load(path, shadow_options)
    except RulesError as exc:
        print(f"propguard {args.command}: the shadow rules do not load ({path}):", file=sys.stderr)
        _print_problems(exc.problems)
        return 1


def _matrix(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from propguard.matrix import MATRIX_RENDERERS, matrix, parse_role_sets

    try:
        role_sets = parse_role_sets(args.roles_sets)
    except ValueError as exc:
        print(f"propguard matrix: --roles-sets: {exc}", file=sys.stderr)
        return 2
    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    doc, engine, options = loaded
    result = matrix(doc, engine, role_sets, options.os_glance_section, options.name_folding())
    shadow = _shadow(args, options)
    if isinstance(shadow, int):
        return shadow
    if shadow is not None:
        from propguard.matrix import with_shadow

        result = with_shadow(result, shadow[1], role_sets, options.name_folding())
    _write(MATRIX_RENDERERS[args.format](result), args.output)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "metrics-exporter":
        from propguard import metrics

        return metrics.main(argv[1:], prog="propguard metrics-exporter")
    if argv and argv[0] == "demo":
        # Live (real Keystone, Glance, propguard serve) unless --in-process: the
        # in-process tour of propguard.demo, kept under that name.
        if "--in-process" in argv[1:]:
            from propguard.demo import main as demo_main

            return int(demo_main([a for a in argv[1:] if a != "--in-process"]) or 0)
        from propguard.demo_live.main import main as live_main

        return int(live_main(argv[1:]) or 0)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on usage errors, 0 for --help/--version
        return int(exc.code or 0)
    if getattr(args, "relations_handler", None):
        from propguard.relations import cli as relations_cli

        return relations_cli.run(args)
    if args.command == "serve":
        from propguard.proxy import cli as proxy_cli

        return proxy_cli.run(args)
    if args.command == "token":
        from propguard.jwt import token_cli

        return token_cli.run(args)
    if args.command == "notify-filter":
        from propguard.notifications import cli as notify_cli

        return notify_cli.run(args)
    handlers = {"lint": _lint, "explain": _explain, "matrix": _matrix, "check": _check}
    return handlers[args.command](args, parser)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
