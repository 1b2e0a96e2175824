"""Which database Glance's property names live in: ``name_collation = auto``.

Why a module of its own: ``auto`` must find the ``[database] connection``
glance-api itself will use, and when the paste filter is built that option
is often not registered yet (under uWSGI ``glance.wsgi.api`` parses the
config files, then builds the pipeline; oslo.db registers ``[database]``
only when Glance first opens the database). Reading ``cfg.CONF.database``
then fails, and any fallback is a guess: a folding collation in front of
SQLite makes a section written with capitals match nothing (fail open); exact
comparison in front of MariaDB reopens the collation oracles.

So the connection is read from where glance-api reads it, without depending
on who registered what first:

* ``[database]`` already registered on Glance's ``cfg.CONF`` (oslo.db has
  run, or a test harness set an override): its value, overrides included;
* otherwise a private ``ConfigOpts`` holding only ``[database] connection``,
  parsed from the same config files and directories (command-line
  ``--config-file``/``--config-dir`` included), the same ``config_source``
  and the same environment (``OS_DATABASE__CONNECTION``) as ``cfg.CONF``.
  Under uWSGI those are Glance's ``default_config_files``:
  ``$OS_GLANCE_CONFIG_DIR`` (default ``/etc/glance``) ``/glance-api.conf``
  after an optional ``glance-image-import.conf``, and the default config
  dirs oslo.config derives from project ``glance``, prog ``glance-api``.

Where it cannot be known (not inside glance-api: ``propguard serve``, a
filter built in another program; ``cfg.CONF`` not parsed yet; no connection
set; a dialect propguard has no collation for) the filter refuses to start
with a message naming the option to set. Nothing is registered on the
global ``cfg.CONF``.
"""

from __future__ import annotations

from dataclasses import dataclass

from oslo_config import cfg
from oslo_log import log

from propguard.glance.collation import NameFolding, folding, folding_for_connection

LOG = log.getLogger(__name__)

#: What to set instead of ``auto`` (the end of every refusal).
SET_IT = (
    "Set name_collation (in [propguard] or the filter's paste section) to how Glance's "
    "database compares property names: binary for SQLite or PostgreSQL, "
    "utf8mb3_general_ci for Glance's MySQL/MariaDB schema (or the collation of its "
    "image_properties.name column)."
)

#: oslo.config's command-line options that name config files and directories.
_CONFIG_ARGS = ("--config-file", "--config-dir")


class CollationUnknown(ValueError):
    """``name_collation = auto`` cannot find Glance's database: propguard does not start."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"propguard: name_collation = auto, but {reason}. {SET_IT}")


@dataclass(frozen=True)
class GlanceDatabase:
    """Glance's ``[database] connection`` and where it was read (for the start log)."""

    connection: str
    source: str

    @property
    def dialect(self) -> str:
        return self.connection.split(":", 1)[0].split("+", 1)[0].strip().lower()


def name_folding(collation: str, conf: cfg.ConfigOpts | None = None) -> NameFolding:
    """How Glance's database compares property names (option ``name_collation``).

    A named collation is that collation. ``auto``: from glance-api's
    ``[database] connection`` (:func:`glance_database`): SQLite and
    PostgreSQL exact (``binary``), MySQL/MariaDB the ``utf8mb3_general_ci``
    of Glance's schema. :class:`CollationUnknown` where it cannot be known.
    """
    if collation != "auto":
        return folding(collation)
    database = glance_database(cfg.CONF if conf is None else conf)
    try:
        found = folding_for_connection(database.connection)
    except ValueError as exc:
        raise CollationUnknown(f"{exc} (glance-api's [database] connection)") from None
    LOG.info(
        "propguard: name_collation = auto: Glance's database is %s (%s), property names "
        "compared as %s",
        database.dialect,
        database.source,
        found.name,
    )
    return found


def glance_database(conf: cfg.ConfigOpts) -> GlanceDatabase:
    """The ``[database] connection`` glance-api uses, read as glance-api reads it."""
    files, dirs = _parsed_sources(conf)
    registered = _registered_connection(conf)
    if registered is not None:
        connection, source = registered, "[database] connection as glance-api has it"
    else:
        connection = _parse_connection(conf)
        source = "[database] connection from " + (", ".join([*files, *dirs]) or "no file")
    if not connection or not connection.strip():
        where = ", ".join([*files, *dirs]) or "no config file or directory"
        raise CollationUnknown(
            f"glance-api's [database] connection is not set (read from: {where}; "
            "environment OS_DATABASE__CONNECTION)"
        )
    return GlanceDatabase(connection.strip(), source)


def _parsed_sources(conf: cfg.ConfigOpts) -> tuple[list[str], list[str]]:
    """The config files and dirs of Glance's parsed ``CONF``; refusal outside glance-api."""
    try:
        files = list(conf.config_file or ())
        dirs = list(conf.config_dir or ())
    except cfg.Error:
        raise CollationUnknown(
            "propguard is not running inside glance-api (its configuration has not been "
            "parsed: propguard serve, or the filter built in another program), so "
            "Glance's [database] connection cannot be read"
        ) from None
    project = getattr(conf, "project", None)
    if project != "glance":
        raise CollationUnknown(
            f"propguard is not running inside glance-api (the configuration is project "
            f"{project!r}'s, e.g. propguard serve), so Glance's [database] connection "
            "cannot be read"
        )
    return files, dirs


def _registered_connection(conf: cfg.ConfigOpts) -> str | None:
    """``conf.database.connection`` when oslo.db (or a test) registered it already."""
    try:
        value = conf.database.connection
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError, AttributeError):
        return None
    return "" if value is None else str(value)


def _parse_connection(conf: cfg.ConfigOpts) -> str | None:
    """``[database] connection`` parsed from ``conf``'s own files, dirs, sources and env.

    Same arguments as ``conf`` was called with, but only the config-file and
    config-dir ones of its command line (the private parser knows no other
    option), in their order: oslo.config gives later ones precedence.
    """
    private = cfg.ConfigOpts()
    private.register_opt(cfg.StrOpt("connection", secret=True), group="database")
    try:
        private(
            args=_config_args(getattr(conf, "_args", None) or ()),
            project=getattr(conf, "project", None),
            prog=getattr(conf, "prog", None),
            default_config_files=list(getattr(conf, "default_config_files", None) or ()),
            default_config_dirs=list(getattr(conf, "default_config_dirs", None) or ()),
            use_env=bool(getattr(conf, "_use_env", True)),
        )
        return private.database.connection
    except (cfg.Error, SystemExit) as exc:
        raise CollationUnknown(
            f"glance-api's [database] connection cannot be read from its config files ({exc})"
        ) from None


def _config_args(args: tuple[str, ...] | list[str]) -> list[str]:
    """The ``--config-file``/``--config-dir`` arguments of a command line, in order."""
    kept: list[str] = []
    items = list(args)
    for i, arg in enumerate(items):
        if arg in _CONFIG_ARGS and i + 1 < len(items):
            kept += [arg, items[i + 1]]
        elif arg.startswith(tuple(f"{name}=" for name in _CONFIG_ARGS)):
            kept.append(arg)
    return kept
