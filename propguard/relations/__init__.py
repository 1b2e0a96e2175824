"""Instance-image relations: what Nova snapshotted, backed up and shelved, recorded by the filter.

The filter records a relation when Glance answers 201 to a ``POST /v2/images``
relayed by Nova with a confirmed service token that carries a relations
service role, follows it through the compute-side requests of the same
request id and marks it deleted on a successful DELETE; it serves
``GET /v2/instances/{uuid}/images`` and, optionally, answers Nova's backup
rotation query from the relations. See ``docs/relations.md``.

Modules: :mod:`.models` (table), :mod:`.store` (engine, Alembic, queries),
:mod:`.events` (requests -> events, pure), :mod:`.outbox` and
:mod:`.recorder` (durability), :mod:`.filter` (WSGI), :mod:`.api` (the
route), :mod:`.opts` (options), :mod:`.cli` (``propguard db``,
``propguard relations``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

LOG = logging.getLogger(__name__)


def wrap(application: Any, options: Mapping[str, Any], here: str | None = None) -> Any:
    """``application`` (propguard's filter) inside the relations layer, or unchanged when off.

    Opens the store at start: an SQLite file is created and migrated; a
    PostgreSQL/MariaDB schema that is not current stops the filter with the
    command to run; a server that cannot be reached is not fatal (relations
    are queued in the outbox and the schema is checked when it answers). An
    outbox that cannot be written stops the filter.
    """
    connection = (options.get("relations_connection") or "").strip()
    if not connection:
        return application
    from propguard.relations.filter import RelationsFilter
    from propguard.relations.opts import defaults, outbox_path
    from propguard.relations.outbox import Outbox
    from propguard.relations.recorder import Recorder
    from propguard.relations.store import (
        RelationStore,
        StoreUnavailable,
        create_engine,
        open_store,
        redacted,
    )

    options = {**defaults(), **options}
    timeout = float(options["relations_timeout"])
    outbox = Outbox(outbox_path(options, here))
    outbox.ensure_writable()
    schema_checked = True
    try:
        store = open_store(connection, timeout=timeout)
    except StoreUnavailable as exc:
        LOG.error(
            "propguard: relations database %s unreachable at start (%s); relations are "
            "queued in %s until it answers",
            redacted(connection),
            exc,
            outbox.path,
        )
        store = RelationStore(create_engine(connection, timeout=timeout))
        schema_checked = False
    recorder = Recorder(
        store,
        outbox,
        retry_interval=float(options["relations_retry_interval"]),
        schema_checked=schema_checked,
        synchronous=bool(options["relations_synchronous"]),
    )
    recorder.start()
    LOG.info(
        "propguard: recording instance-image relations in %s (rotation from relations: %s)",
        redacted(connection),
        "on" if options["relations_rotation"] else "off",
    )
    return RelationsFilter(
        application,
        recorder,
        origins=options["relations_origins"] or {},
        relations_service_roles=options["relations_service_roles"],
        service_token_roles=options.get("service_token_roles") or ("service",),
        trust_identity_headers=bool(options.get("trust_identity_headers")),
        rotation=bool(options["relations_rotation"]),
        read_wait=timeout,
        max_request_body=int(options.get("max_request_body_size") or 114688),
        limit_default=int(options.get("limit_param_default") or 25),
        limit_max=int(options.get("api_limit_max") or 1000),
    )
