"""``propguard notify-filter``: the notification filter as a command.

``--stdin``
    JSON lines in (oslo.messaging v2 envelopes, or bare notifications with
    ``event_type`` and ``payload``), filtered notifications out, one JSON
    object per line (an envelope in gives envelopes out). A line that cannot
    be parsed or filtered is reported on standard error by its number only,
    and the exit status is 1 at the end; no other line is lost.
without ``--stdin``
    the listener service (:mod:`propguard.notifications.service`), configured
    by ``--config-file``.

Quick use, without a configuration file: ``--rules-file FILE [--rule-format
roles|policies] [--policy-file FILE] --roles r1,r2 [--service-roles s1]``
gives ``strip`` for that audience. With ``--config-file``, ``[propguard]``
gives the rules and ``[propguard_notifications]`` the outputs; the quick
options override them.

Wiring (in ``propguard/cli.py``): ``add_parser(subparsers)`` adds the
sub-command, ``run(args)`` runs it. Also ``python -m propguard.notifications.cli``.

Exit status: 0 success; 1 a line was bad, the rules do not load, or the
service failed; 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any, BinaryIO, TextIO

from oslo_config import cfg

from propguard.notifications import opts as notify_opts
from propguard.notifications import wire
from propguard.notifications.core import FilterError, Mode, NotificationFilter
from propguard.rules.model import RulesError

PROG = "propguard notify-filter"
HELP = "filter Glance notifications for indexers (JSON lines with --stdin, or the listener service)"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--stdin",
        action="store_true",
        help="filter JSON lines from standard input to standard output instead of running "
        "the listener service",
    )
    p.add_argument(
        "--config-file",
        action="append",
        default=[],
        metavar="FILE",
        help="oslo.config file ([propguard], [propguard_notifications], "
        "[propguard_notify_filter]); repeatable",
    )
    p.add_argument(
        "--config-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="directory of further *.conf files; repeatable",
    )
    p.add_argument("--rules-file", metavar="FILE", help="property-protection rules file")
    p.add_argument(
        "--rule-format",
        "--rules-format",
        dest="rule_format",
        choices=("roles", "policies"),
        help="how the rules file's values are read (default: [propguard] rule_format, roles)",
    )
    p.add_argument("--policy-file", metavar="FILE", help="oslo.policy file for policies format")
    p.add_argument(
        "--shadow-rules-file",
        metavar="FILE",
        help="rules decided beside the rules file and never applied; each property an "
        "output's audience would stop (or start) receiving is a shadow_divergence record on "
        "the propguard.decisions log (standard error with --stdin) (default: [propguard] "
        "shadow_rules_file)",
    )
    p.add_argument(
        "--shadow-rule-format",
        choices=("roles", "policies"),
        help="format of the shadow rules (default: the rules' format)",
    )
    p.add_argument(
        "--name-collation",
        metavar="COLLATION",
        help="how Glance's database compares property names, as the API filter's "
        "name_collation (binary for SQLite/PostgreSQL, utf8mb3_general_ci for Glance's "
        "MySQL/MariaDB schema; default: [propguard] name_collation)",
    )
    p.add_argument(
        "--roles",
        type=_csv,
        metavar="R1,R2",
        help="user roles of the 'strip' audience (required with --rules-file alone)",
    )
    p.add_argument(
        "--service-roles",
        type=_csv,
        metavar="S1",
        help="service-token roles of the 'strip' audience",
    )
    p.add_argument(
        "--mode",
        action="append",
        choices=[m.value for m in Mode],
        help="outputs to write with --stdin (repeatable; default: the configured modes, or "
        "strip without a configuration file)",
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``notify-filter`` to the ``propguard`` command's sub-parsers."""
    p = subparsers.add_parser(
        "notify-filter",
        help=HELP,
        description=(__doc__ or "").split("\n\n", 1)[1].split("\n\nWiring", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    return p


class UsageError(Exception):
    """A wrong combination of options or a bad configuration value (exit status 2)."""


def load_conf(args: argparse.Namespace, *, service: bool = False) -> cfg.ConfigOpts:
    """A private ``ConfigOpts`` with propguard's options, parsed from ``--config-file``/``-dir``."""
    from propguard import opts as propguard_opts

    conf = cfg.ConfigOpts()
    propguard_opts.register_opts(conf)
    notify_opts.register_opts(conf, service=True)
    if service:
        from oslo_log import log as oslo_log
        from oslo_messaging import opts as om_opts

        for group, options in om_opts.list_opts():
            conf.register_opts(options, group=group)
        oslo_log.register_options(conf)
    try:
        conf(
            args=[],
            project="propguard",
            prog="propguard-notify-filter",
            default_config_files=list(args.config_file),
            default_config_dirs=list(args.config_dir),
            validate_default_values=True,
        )
    except (cfg.Error, OSError) as exc:
        raise UsageError(f"configuration: {exc}") from None
    return conf


def open_rules_for(args: argparse.Namespace, conf: cfg.ConfigOpts):
    """The rules holder for ``[propguard]`` (quick options first), the view of images
    its options describe, as the API filter's, and the shadow rules' holder and
    divergence recorder (both None without ``shadow_rules_file``); raises ``RulesError``."""
    from propguard import opts as propguard_opts
    from propguard.notifications.shadow import open_shadow, refuse_dry_run
    from propguard.rules.loading import RulesOptions, open_rules
    from propguard.view import view_from_options

    try:
        values = propguard_opts.resolve({}, conf)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.rules_file:
        values["rules_file"] = propguard_opts.locate(args.rules_file, conf)
    if args.rule_format:
        values["rule_format"] = args.rule_format
    if args.policy_file:
        values["policy_file"] = propguard_opts.locate(args.policy_file, conf)
    if args.name_collation:
        values["name_collation"] = args.name_collation
    if args.shadow_rules_file:
        values["shadow_rules_file"] = propguard_opts.locate(args.shadow_rules_file, conf)
    if args.shadow_rule_format:
        values["shadow_rule_format"] = args.shadow_rule_format
    if not values.get("rules_file"):
        raise UsageError("no rules: give --rules-file, or rules_file in [propguard]")
    try:
        refuse_dry_run(values)
        view = view_from_options(values)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    options = RulesOptions.from_options(values)
    holder = open_rules(
        options,
        reload_interval=values["reload_interval"],
        reload_on_sighup=values["reload_on_sighup"],
    )
    shadow, recorder = open_shadow(values, options)
    return holder, view, shadow, recorder


def output_config(args: argparse.Namespace, conf: cfg.ConfigOpts) -> notify_opts.OutputConfig:
    """``[propguard_notifications]`` with the quick options applied."""
    quick = not args.config_file and not args.config_dir
    if quick and args.roles is None:
        raise UsageError("--roles is required without --config-file (use --roles '' for none)")
    try:
        config = notify_opts.OutputConfig.from_conf(conf)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    changes: dict[str, Any] = {}
    if quick:
        changes["modes"] = (Mode.STRIP,)
    if args.mode:
        changes["modes"] = tuple(Mode(m) for m in dict.fromkeys(args.mode))
    if args.roles is not None:
        changes["audience_roles"] = tuple(args.roles)
    if args.service_roles is not None:
        changes["audience_service_roles"] = tuple(args.service_roles)
    if changes:
        from dataclasses import replace

        config = replace(config, **changes)
        try:
            config.check()
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return config


def filter_lines(
    nf: NotificationFilter, infile: BinaryIO, outfile: BinaryIO, errfile: TextIO
) -> int:
    """Filter JSON lines; returns the number of bad lines (each reported by number only)."""
    bad = 0
    for lineno, line in enumerate(infile, 1):
        if not line.strip():
            continue
        try:
            decoded = wire.decode(line)
            outputs = nf.outputs(decoded.notification)
            data = b"".join(wire.encode(o.notification, decoded.enveloped) + b"\n" for o in outputs)
        except (wire.DecodeError, FilterError) as exc:
            bad += 1
            errfile.write(f"{PROG}: line {lineno}: {exc}\n")
            continue
        except Exception as exc:  # never the content: only the kind of failure
            bad += 1
            errfile.write(f"{PROG}: line {lineno}: not filtered ({type(exc).__name__})\n")
            continue
        outfile.write(data)
        outfile.flush()
    return bad


def _run_stdin(args: argparse.Namespace) -> int:
    conf = load_conf(args)
    config = output_config(args, conf)
    holder, view, shadow, recorder = open_rules_for(args, conf)
    if shadow is not None:
        _decisions_to_stderr()
    nf = config.build(holder.current, view, shadow=_current(shadow), on_divergence=recorder)
    bad = filter_lines(nf, sys.stdin.buffer, sys.stdout.buffer, sys.stderr)
    if bad:
        print(f"{PROG}: {bad} line(s) could not be filtered", file=sys.stderr)
        return 1
    return 0


def _run_service(args: argparse.Namespace) -> int:
    if not args.config_file and not args.config_dir:
        raise UsageError("the listener service needs --config-file (or use --stdin)")
    # oslo.messaging imports oslo.service's eventlet backend, which warns on import;
    # the service never uses eventlet.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    from propguard.notifications import service

    conf = load_conf(args, service=True)
    config = output_config(args, conf)
    holder, view, shadow, recorder = open_rules_for(args, conf)
    return service.main(conf, config, holder, view, shadow=_current(shadow), on_divergence=recorder)


def _current(holder: Any) -> Any:
    """A rules holder's ``current`` (the engine in force after each reload), or None."""
    return holder.current if holder is not None else None


def _decisions_to_stderr() -> None:
    """``--stdin``: the shadow divergence records on standard error (standard output
    carries the filtered notifications only)."""
    import logging

    logger = logging.getLogger("propguard.decisions")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def run(args: argparse.Namespace) -> int:
    """Run ``notify-filter`` with parsed ``args``; returns the exit status."""
    try:
        return _run_stdin(args) if args.stdin else _run_service(args)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except RulesError as exc:
        print(f"{PROG}: the rules do not load:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=HELP)
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
