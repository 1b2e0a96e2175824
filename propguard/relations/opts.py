"""oslo.config options of instance-image relations (group ``[propguard]``), and ``list_opts()``.

Read like the filter's other options: the paste section first, then
``[propguard]`` in glance-api.conf. :func:`resolve` does that for these
options alone; once they are part of :data:`propguard.opts.OPTS` it gives
the same values as :func:`propguard.opts.resolve`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from oslo_config import cfg

GROUP = "propguard"

OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "relations_connection",
        default="",
        secret=True,
        help="Where instance-image relations are stored; empty turns relations off (no "
        "recording, no /v2/instances/{uuid}/images route). A file path is an SQLite "
        "database (created and migrated at start); postgresql://user@host/db (psycopg) and "
        "mysql://user@host/db (PyMySQL) must be migrated first with `propguard db upgrade`.",
    ),
    cfg.ListOpt(
        "relations_service_roles",
        default=["service"],
        help="A relation is recorded, and the relations API shows every relation, only for "
        "a confirmed service token with one of these roles, checked on top of "
        "service_token_roles (a service token must pass both).",
    ),
    cfg.DictOpt(
        "relations_origins",
        default={},
        help="Service user id (or service project id) -> origin name (installation or "
        "region), so several Novas can share one Glance: id:region-one,id2:region-two. A "
        "service user missing here records with its own id as origin.",
    ),
    cfg.BoolOpt(
        "relations_rotation",
        default=False,
        help="Answer Nova's backup-rotation query (GET /v2/images?image_type=backup&"
        "backup_type=T&instance_uuid=U&... with a relations service token) from the "
        "relations, rewritten to id=in:..., instead of from user-editable image properties.",
    ),
    cfg.BoolOpt(
        "relations_synchronous",
        default=False,
        help="Write each relation (to the database, or the outbox when it is away) before "
        "Glance's answer goes back: nothing acknowledged is ever lost, and each recorded "
        "request waits for one database round trip. Default: a writer thread per worker "
        "writes it right after the answer (a killed process loses what it had not written "
        "yet, milliseconds' worth; a clean stop writes it).",
    ),
    cfg.StrOpt(
        "relations_outbox",
        default="",
        help="File that keeps relation events while the database is unreachable (fsynced, "
        "shared by the workers, drained in order). Default: relations.outbox next to the "
        "paste configuration (glance-api-paste.ini). Must be writable at start.",
    ),
    cfg.FloatOpt(
        "relations_timeout",
        default=2.0,
        min=0.1,
        help="Seconds the filter waits for the relations database (connect, read, a pooled "
        "connection) before queuing the event in the outbox.",
    ),
    cfg.FloatOpt(
        "relations_retry_interval",
        default=5.0,
        min=0.1,
        help="Seconds between attempts to drain the outbox while it holds events.",
    ),
]

NAMES = frozenset(opt.dest for opt in OPTS)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Entry point for ``oslo-config-generator`` (to be listed with propguard's own)."""
    return [(GROUP, list(OPTS))]


def resolve(local_conf: Mapping[str, Any], conf: cfg.ConfigOpts | None = None) -> dict[str, Any]:
    """These options' values, resolved as the filter resolves all of its options
    (:func:`propguard.opts.resolve`, whose ``OPTS`` include these)."""
    from propguard import opts as main_opts

    return {k: v for k, v in main_opts.resolve(local_conf, conf).items() if k in NAMES}


def defaults() -> dict[str, Any]:
    return {opt.dest: opt.default for opt in OPTS}


def outbox_path(options: Mapping[str, Any], here: str | None) -> str:
    """``relations_outbox``, or ``relations.outbox`` next to the paste config (else the cwd)."""
    if options.get("relations_outbox"):
        return os.path.abspath(options["relations_outbox"])
    return os.path.abspath(os.path.join(here or os.getcwd(), "relations.outbox"))
