"""``propguard db upgrade|current`` and ``propguard relations list|show|reconcile``.

Wiring into :mod:`propguard.cli`: call :func:`add_parsers` with the main
parser's subparsers; a parsed namespace with ``relations_handler`` is run
with ``args.relations_handler(args)`` (an int exit code). Until then, the
same commands run as ``python -m propguard.relations.cli ...``.

The store is named by ``--connection URL`` (or SQLite file path), or by
``--config-file FILE`` (repeatable), read as glance-api reads its files:
``[propguard] relations_connection``.

Exit codes: 0 success, 1 failure (unreachable store, schema not current for
``db current``, nothing found for ``show``, reconcile refused), 2 usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from propguard.relations import kinds

# -- parsers -------------------------------------------------------------------


def _store_args(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--connection",
        metavar="URL",
        help="the relations store: an SQLite file path, postgresql://... or mysql://...",
    )
    where.add_argument(
        "--config-file",
        action="append",
        metavar="FILE",
        help="read [propguard] relations_connection from this file (repeatable, "
        "later files win, as oslo.config reads them)",
    )


def add_parsers(subparsers: Any) -> None:
    """Add ``db`` and ``relations`` to ``propguard``'s subcommands."""
    db = subparsers.add_parser(
        "db",
        help="create or check the relations store's schema",
        description="Alembic migrations of the instance-image relations store.",
    )
    db_sub = db.add_subparsers(dest="db_command", metavar="COMMAND")
    db_sub.required = True
    upgrade = db_sub.add_parser("upgrade", help="migrate the store to the newest schema")
    _store_args(upgrade)
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    upgrade.set_defaults(relations_handler=_db_upgrade)
    current = db_sub.add_parser(
        "current", help="print the store's revision; exit 1 unless it is the newest"
    )
    _store_args(current)
    current.set_defaults(relations_handler=_db_current)

    relations = subparsers.add_parser(
        "relations",
        help="instance-image relations recorded by the filter",
        description="Read the relations the filter recorded, and reconcile them with Glance.",
    )
    rel_sub = relations.add_subparsers(dest="relations_command", metavar="COMMAND")
    rel_sub.required = True
    listing = rel_sub.add_parser("list", help="the images of an instance, newest first")
    _store_args(listing)
    listing.add_argument("--instance", required=True, metavar="UUID")
    listing.add_argument("--kind", choices=kinds.KINDS)
    listing.add_argument("--backup-type", metavar="TYPE")
    listing.add_argument("--include-deleted", action="store_true")
    listing.add_argument("--limit", type=int, default=1000)
    listing.add_argument("--json", action="store_true", help="the API's JSON document")
    listing.set_defaults(relations_handler=_list)
    show = rel_sub.add_parser("show", help="one image's relation, with its provenance")
    _store_args(show)
    show.add_argument("image_id", metavar="IMAGE_ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(relations_handler=_show)
    reconcile = rel_sub.add_parser(
        "reconcile",
        help="mark relations of images gone from Glance as deleted",
        description="Ask Glance (GET /v2/images?id=in:...) which images of live relations "
        "still exist and mark the others deleted (reason 'reconciled'): images deleted "
        "through another API node or purged with glance-manage. Hidden images and other "
        "projects' images are asked for too. Use an admin token: Glance shows an admin every "
        "image. Refuses (exit 1) when the token is not shown to see every project's images "
        "(private images of two projects or more), or when more than --max-missing of the "
        "relations look gone (a wrong Glance), unless --force.",
    )
    _store_args(reconcile)
    reconcile.add_argument("--glance-url", required=True, metavar="URL")
    reconcile.add_argument(
        "--token",
        help="an admin token for Glance (default: the OS_AUTH_TOKEN environment variable)",
    )
    reconcile.add_argument("--batch", type=int, default=100, help="ids per Glance request")
    reconcile.add_argument("--dry-run", action="store_true", help="report, change nothing")
    reconcile.add_argument("--max-missing", type=float, default=0.5, metavar="FRACTION")
    reconcile.add_argument("--force", action="store_true")
    reconcile.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr (auto: when stderr is a terminal)",
    )
    reconcile.set_defaults(relations_handler=_reconcile)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="propguard", description="propguard's relations store commands."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``db``/``relations`` command (``args.relations_handler``)."""
    from propguard.relations.store import StoreError

    try:
        return int(args.relations_handler(args))
    except StoreError as exc:
        print(f"propguard: {exc}", file=sys.stderr)
        return 1
    except _Usage as exc:
        print(f"propguard: {exc}", file=sys.stderr)
        return 2


class _Usage(Exception):
    pass


# -- the store -------------------------------------------------------------------


def connection_of(args: argparse.Namespace) -> str:
    if args.connection:
        return args.connection
    if args.config_file:
        from oslo_config import cfg

        from propguard.relations.opts import GROUP, OPTS

        conf = cfg.ConfigOpts()
        conf.register_opts(OPTS, group=GROUP)
        conf(args=[], default_config_files=list(args.config_file), default_config_dirs=[])
        value = conf[GROUP].relations_connection
        if not value:
            raise _Usage(f"no [{GROUP}] relations_connection in {', '.join(args.config_file)}")
        return value
    raise _Usage("give --connection URL or --config-file FILE")


def _engine(args, statement_timeout: bool = True):
    from propguard.relations.store import create_engine

    return create_engine(connection_of(args), statement_timeout=statement_timeout)


def _store(args):
    from propguard.relations.store import RelationStore, check_current

    store = RelationStore(_engine(args))
    check_current(store.engine)
    return store


def _db_upgrade(args) -> int:
    from propguard.relations.store import current_revision, upgrade

    engine = _engine(args, statement_timeout=False)  # a migration rewrites the table
    try:
        before = current_revision(engine)
        after = upgrade(engine, args.revision)
    finally:
        engine.dispose()
    name = engine.url.render_as_string(hide_password=True)
    if before == after:
        print(f"{name}: already at {after}")
    else:
        print(f"{name}: upgraded from {before or 'empty'} to {after}")
    return 0


def _db_current(args) -> int:
    from propguard.relations.store import UPGRADE_COMMAND, current_revision, head_revision

    engine = _engine(args)
    try:
        have = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    if have == head:
        print(f"{have} (head)")
        return 0
    print(
        f"{have or 'empty (no relations schema)'}; this propguard needs {head}: "
        f"run `{UPGRADE_COMMAND}`"
    )
    return 1


# -- reading -----------------------------------------------------------------------


def _when(value: dt.datetime | None) -> str:
    return "-" if value is None else value.isoformat(sep=" ", timespec="seconds")


def _list(args) -> int:
    from propguard.relations.api import present
    from propguard.relations.events import canonical_uuid

    instance = canonical_uuid(args.instance)
    if instance is None:
        raise _Usage(f"--instance {args.instance!r} is not a UUID")
    store = _store(args)
    try:
        rows = store.list_for_instance(
            instance,
            kind=args.kind,
            backup_type=args.backup_type,
            include_deleted=args.include_deleted,
            limit=args.limit,
        )
    finally:
        store.dispose()
    if args.json:
        print(json.dumps({"images": [present(row) for row in rows]}, indent=2))
        return 0
    if not rows:
        print(f"no relations for instance {instance}")
        return 0
    table = [("created", "image", "kind", "backup_type", "origin", "owner", "deleted")]
    for row in rows:
        deleted = (
            "-"
            if row["deleted_at"] is None
            else f"{_when(row['deleted_at'])} ({row['deleted_reason']})"
        )
        table.append(
            (
                _when(row["recorded_at"]),
                row["image_id"],
                row["kind"],
                row["backup_type"] or "-",
                row["origin"],
                row["image_owner"] or "-",
                deleted,
            )
        )
    widths = [max(len(str(r[i])) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _show(args) -> int:
    from propguard.relations.api import present
    from propguard.relations.events import canonical_uuid

    image_id = canonical_uuid(args.image_id)
    store = _store(args)
    try:
        row = store.get(image_id) if image_id else None
    finally:
        store.dispose()
    if row is None:
        print(f"propguard: no relation for image {args.image_id}", file=sys.stderr)
        return 1
    document = present(row)
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    provenance = document.pop("provenance")
    for key, value in document.items():
        print(f"{key:22} {'-' if value is None else value}")
    print("provenance")
    print(f"  {'basis':20} {provenance['basis']}")
    for line in provenance["proves"]:
        print(f"  proves               {line}")
    print(f"  does not prove       {provenance['does_not_prove']}")
    for key, value in provenance["asserted"].items():
        print(f"  asserted {key:11} {value}")
    for line in provenance["mismatches"] or ["none"]:
        print(f"  mismatch             {line}")
    return 0


# -- reconcile -----------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal stream (nothing when disabled)."""

    def __init__(self, total: int, stream: TextIO, enabled: bool, label: str = "relations"):
        self.total, self.stream, self.enabled, self.label = total, stream, enabled, label
        self.done = 0

    def advance(self, count: int) -> None:
        self.done += count
        if self.enabled:
            width = 30
            filled = width * self.done // max(self.total, 1)
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {self.label}"
            )
            self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


class GlanceImages:
    """``fetch(ids) -> ids Glance still has``, asked as ``GET /v2/images?id=in:...``.

    Glance's list leaves out, unless asked, hidden images (``os_hidden=true``),
    community images of other projects and shared images whose membership is
    not accepted: it is asked with ``visibility=all&member_status=all``, then
    with ``os_hidden=true`` for the ids not found, so that an image which
    exists is never judged gone. The owners of the private images seen are
    kept: a token that is not an admin in Glance's eyes sees private images of
    its own project only, so private images of two projects prove it sees
    every project's images (:meth:`sees_every_project`).
    """

    def __init__(self, glance_url: str, token: str, timeout: float = 30.0) -> None:
        self.base = glance_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.private_owners: set[str] = set()

    def __call__(self, ids: list[str]) -> set[str]:
        found = self._list(ids, hidden=False)
        rest = [i for i in ids if i not in found]
        if rest:
            found |= self._list(rest, hidden=True)
        return found

    def _list(self, ids: list[str], *, hidden: bool) -> set[str]:
        found: set[str] = set()
        query = urllib.parse.urlencode(
            {
                "id": "in:" + ",".join(ids),
                "visibility": "all",
                "member_status": "all",
                "os_hidden": "true" if hidden else "false",
                "limit": str(len(ids)),
            },
            safe=":,",
        )
        url: str | None = f"{self.base}/v2/images?{query}"
        while url:
            request = urllib.request.Request(
                url, headers={"X-Auth-Token": self.token, "Accept": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                page = json.load(response)
            for image in page.get("images", []):
                found.add(image["id"])
                if image.get("visibility") == "private" and image.get("owner"):
                    self.private_owners.add(image["owner"])
            following = page.get("next")
            url = f"{self.base}{following}" if following else None
        return found

    def sees_every_project(self) -> str | None:
        """None when this token is shown to see every project's images, else why not."""
        if len(self.private_owners) >= 2:
            return None
        return (
            "this token was shown private images of "
            f"{len(self.private_owners) or 'no'} project(s) only, so images it did not see "
            "may exist in other projects: a token that is not an admin in Glance's eyes "
            "sees only its own project's private images. Use an admin token (--force to "
            "mark anyway, e.g. when every image belongs to one project)"
        )


def glance_fetcher(glance_url: str, token: str, timeout: float = 30.0) -> GlanceImages:
    """``fetch(ids) -> ids Glance still has`` (see :class:`GlanceImages`)."""
    return GlanceImages(glance_url, token, timeout)


def reconcile(
    store,
    fetch: Callable[[list[str]], set[str]],
    *,
    batch: int = 100,
    dry_run: bool = False,
    max_missing: float = 0.5,
    force: bool = False,
    progress: Progress | None = None,
    sees_everything: Callable[[], str | None] | None = None,
) -> dict[str, Any]:
    """Compare live relations with Glance; mark the missing ones deleted (unless refused).

    All relations are checked first (ids only are kept), then, if the share
    missing is within ``max_missing`` and ``sees_everything()`` (asked after
    the check; None: yes, else why not) does not object, or with ``force``,
    they are marked.
    """
    from propguard.relations.events import reconciled_event

    missing: list[str] = []
    checked = 0
    for rows in store.live_batches(batch):
        ids = [row["image_id"] for row in rows]
        present = fetch(ids)
        missing.extend(i for i in ids if i not in present)
        checked += len(ids)
        if progress:
            progress.advance(len(ids))
    if progress:
        progress.finish()
    share = len(missing) / checked if checked else 0.0
    result: dict[str, Any] = {
        "checked": checked,
        "missing": missing,
        "marked": 0,
        "refused": False,
        "why": None,
    }
    if missing and not force:
        why = sees_everything() if sees_everything is not None else None
        if why is None and share > max_missing:
            why = (
                f"more than {max_missing:.0%} of the relations look gone: is the token an "
                "admin's and the Glance the right one? --force to mark them anyway"
            )
        if why is not None:
            result["refused"], result["why"] = True, why
            return result
    if not dry_run:
        for start in range(0, len(missing), 500):
            store.apply([reconciled_event(i) for i in missing[start : start + 500]])
        result["marked"] = len(missing)
    return result


def _reconcile(args) -> int:
    import os

    token = args.token or os.environ.get("OS_AUTH_TOKEN")
    if not token:
        raise _Usage("give --token or set OS_AUTH_TOKEN (an admin token for Glance)")
    if args.batch < 1:
        raise _Usage("--batch must be at least 1")
    store = _store(args)
    try:
        total = store.count(include_deleted=False)
        enabled = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty())
        fetch = glance_fetcher(args.glance_url, token)
        try:
            result = reconcile(
                store,
                fetch,
                batch=args.batch,
                dry_run=args.dry_run,
                max_missing=args.max_missing,
                force=args.force,
                progress=Progress(total, sys.stderr, enabled),
                sees_everything=fetch.sees_every_project,
            )
        except (urllib.error.URLError, OSError, ValueError) as exc:
            print(f"propguard: Glance at {args.glance_url} answered badly: {exc}", file=sys.stderr)
            return 1
    finally:
        store.dispose()
    missing = result["missing"]
    print(f"checked {result['checked']} live relation(s); {len(missing)} image(s) gone from Glance")
    for image_id in missing:
        print(f"  {image_id}")
    if result["refused"]:
        print(
            f"propguard: refusing to mark {len(missing)} of {result['checked']} relations "
            f"deleted: {result['why']}",
            file=sys.stderr,
        )
        return 1
    print("dry run: nothing marked" if args.dry_run else f"marked {result['marked']} deleted")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
