"""``propguard serve``: the property filter as a streaming reverse proxy in front of Glance.

Wiring (in ``propguard/cli.py``): ``add_parser(subparsers)`` adds the
sub-command, ``run(args)`` runs it.

Exit status: 0 after a clean shutdown; 2 usage or configuration error (a
bad ``--upstream``, a pipeline that does not build: missing rules file,
unknown option); gunicorn's own status otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "run the property filter as a reverse proxy in front of a Glance endpoint"


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return number


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to the ``propguard`` command's sub-parsers."""
    p = subparsers.add_parser(
        "serve",
        help=HELP,
        description="Serve the paste pipeline of --paste-ini (default: propguard's shipped "
        "serve.ini: healthcheck, request_id, keystonemiddleware auth_token, propguard, the "
        "proxy) on gunicorn gthread workers, forwarding to --upstream. Options of the "
        "filters come from --config-file ([keystone_authtoken], [propguard]), as in "
        "glance-api.",
    )
    p.add_argument(
        "--upstream",
        required=True,
        metavar="URL",
        help="the Glance endpoint, e.g. http://10.0.0.5:9292 (reachable only from this proxy)",
    )
    p.add_argument(
        "--bind",
        default="127.0.0.1:9293",
        metavar="HOST:PORT",
        help="address to listen on (default: 127.0.0.1:9293)",
    )
    p.add_argument(
        "--paste-ini",
        default="",
        metavar="PATH",
        help="paste.deploy file with the pipeline (default: the shipped serve.ini)",
    )
    p.add_argument(
        "--pipeline",
        default="main",
        metavar="NAME",
        help="the pipeline (or app) of --paste-ini to serve (default: main)",
    )
    p.add_argument(
        "--config-file",
        action="append",
        default=[],
        metavar="PATH",
        help="oslo.config file(s) with [keystone_authtoken], [propguard], ... (repeatable)",
    )
    p.add_argument(
        "--workers",
        type=_positive,
        default=2,
        metavar="N",
        help="gunicorn worker processes (default: 2)",
    )
    p.add_argument(
        "--threads",
        type=_positive,
        default=16,
        metavar="N",
        help="threads per worker: concurrent requests per process (default: 16)",
    )
    p.add_argument(
        "--head-timeout",
        type=_seconds,
        default=20.0,
        metavar="SECONDS",
        help="time for a request's head, and its body when small (else its first 256 KiB), "
        "to arrive; 408 after it (default: 20)",
    )
    p.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="longest wait of one read or write on a client connection: a stalled upload or "
        "a client that stops reading is cut after it (not a total; default: 60)",
    )
    p.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        dest="trusted_proxies",
        help="address of a proxy in front of propguard whose Forwarded/X-Forwarded-* "
        "headers are kept (repeatable; default: none, they are replaced)",
    )
    p.add_argument(
        "--log-file",
        default=None,
        metavar="PATH",
        help="oslo.log's log file (overrides [DEFAULT] log_file; default: standard output)",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        default=None,
        help="log at DEBUG (overrides [DEFAULT] debug)",
    )
    p.add_argument(
        "--access-log",
        default=None,
        metavar="PATH",
        help="gunicorn access log ('-' for stderr; default: none)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from propguard.proxy.server import ServeOptions, serve

    if not args.upstream.startswith(("http://", "https://")):
        print(
            "propguard serve: error: --upstream must be an http:// or https:// URL", file=sys.stderr
        )
        return 2
    options = ServeOptions(
        upstream=args.upstream,
        bind=args.bind,
        paste_ini=args.paste_ini,
        pipeline=args.pipeline,
        config_files=tuple(args.config_file),
        workers=args.workers,
        threads=args.threads,
        trusted_proxies=tuple(args.trusted_proxies),
        access_log=args.access_log,
        head_timeout=args.head_timeout,
        idle_timeout=args.idle_timeout,
        log_file=args.log_file,
        debug=args.debug,
    )
    from propguard.rules.model import RulesError

    try:
        serve(options)
    except (ValueError, LookupError, OSError, RulesError) as exc:
        print(f"propguard serve: error: {exc}", file=sys.stderr)
        return 2
    return 0
