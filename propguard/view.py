"""The reader's view: what one caller may see of an image, asked by every adapter.

API responses (images, list pages, tasks), notification payloads and the
relations API all show image data to someone. They must agree, name for
name, on what that someone may see, or the adapter that re-derives it is
where the next leak opens. So there is one answer, here:

* the rules are asked about each name *as the image database stores it*
  (:class:`~propguard.glance.collation.NameFolding`: on MySQL/MariaDB
  ``SECRET_Key`` and ``secret_key`` are one key, and get one decision);
* core attributes (``name``, ``status``...) are not under the rules, except
  those the operator put there (``protect_core_attributes``: ``locations``,
  ``direct_url``);
* :data:`ALWAYS_HIDDEN` names, which Glance's v2 API never shows, are hidden
  from everyone whatever the rules say.

:class:`ImageView` holds the operator's side (folding, protected core
attributes) and compiles, per rules engine, the engine that decides folded
names; :meth:`ImageView.reader` gives one caller's :class:`Reader`, whose
methods remove in place what that caller cannot read from each kind of
document, or copy what it can. Adapters never ask the rules engine about a
name themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from propguard.credentials import Credentials
from propguard.glance.attributes import CORE_ATTRIBUTES, PROTECTABLE_CORE_ATTRIBUTES
from propguard.glance.collation import BINARY, NameFolding
from propguard.rules import RuleEngine

#: Properties Glance's v2 API hides from every response
#: (``ResponseSerializer._hidden_properties``); notifications and task
#: documents may carry them.
ALWAYS_HIDDEN = frozenset({"os_glance_stage_host", "os_glance_hash_op_host"})

#: Bound of a reader's memo of decisions (names are caller-chosen; a reader
#: of the notification service lives as long as the rules).
MEMO_SIZE = 65536


class Rules(Protocol):
    """What the view and the write checks ask: a :class:`RuleEngine` or :class:`FoldedRules`."""

    def allowed(self, name: str, op: str, creds: Credentials) -> bool: ...


class UnexpectedDocument(ValueError):
    """A document that is not of the shape the view reads: never shown unchecked."""


@dataclass(frozen=True)
class ViewConfig:
    """The operator's side of the view."""

    protected_core: frozenset[str] = frozenset()
    folding: NameFolding = BINARY

    def __post_init__(self) -> None:
        unknown = self.protected_core - PROTECTABLE_CORE_ATTRIBUTES
        if unknown:
            raise ValueError(
                "propguard: protect_core_attributes accepts only "
                f"{sorted(PROTECTABLE_CORE_ATTRIBUTES)}, not {sorted(unknown)}"
            )

    @property
    def free_keys(self) -> frozenset[str]:
        """Keys of an image document never subject to the rules."""
        return CORE_ATTRIBUTES - self.protected_core


class FoldedRules:
    """A rules engine asked about the canonical spelling of each name.

    On a database that equates names (MySQL/MariaDB: ``SECRET_Key``,
    ``sécret_key`` and ``secret_key`` are one key), every spelling gets the
    decision of its canonical spelling (``folding.fold``), so no spelling
    reaches a hidden value through a section written for another.
    """

    __slots__ = ("engine", "fold")

    def __init__(self, engine: RuleEngine, fold: Callable[[str], str]) -> None:
        self.engine = engine
        self.fold = fold

    def allowed(self, name: str, op: str, creds: Credentials) -> bool:
        return self.engine.allowed(self.fold(name), op, creds)


@dataclass
class ImageView:
    """The view of the rules every adapter asks; one per filter, notification filter, API."""

    config: ViewConfig = field(default_factory=ViewConfig)
    _compiled: tuple[RuleEngine, Rules] | None = field(default=None, repr=False)

    @property
    def folding(self) -> NameFolding:
        return self.config.folding

    def rules(self, engine: RuleEngine) -> Rules:
        """``engine`` deciding for each name as the database stores it (compiled once per engine)."""
        if self.config.folding.is_identity:
            return engine
        compiled = self._compiled
        if compiled is None or compiled[0] is not engine:
            compiled = self._compiled = (engine, FoldedRules(engine, self.config.folding.fold))
        return compiled[1]

    def reader(self, engine: RuleEngine, creds: Credentials) -> Reader:
        """One caller's view under ``engine`` (the rules current for this request)."""
        return Reader(self.rules(engine), creds, self.config)


class Reader:
    """What one caller may see; decisions memoised for the reader's life (bounded)."""

    __slots__ = ("config", "creds", "rules", "_memo", "_seed")

    def __init__(self, rules: Rules, creds: Credentials, config: ViewConfig) -> None:
        self.rules = rules
        self.creds = creds
        self.config = config
        seed = dict.fromkeys(config.free_keys, True)
        seed.update(dict.fromkeys(ALWAYS_HIDDEN, False))
        self._seed = seed
        self._memo = dict(seed)

    @property
    def protected_core(self) -> frozenset[str]:
        return self.config.protected_core

    def can_read(self, name: str) -> bool:
        """May this caller see the key ``name`` of an image document?"""
        result = self._memo.get(name)
        if result is None:
            result = self.rules.allowed(name, "read", self.creds)
            if len(self._memo) >= MEMO_SIZE:
                self._memo = dict(self._seed)
            self._memo[name] = result
        return result

    def may(self, name: str, op: str) -> bool:
        """A write decision (``create``/``update``/``delete``) on ``name``, folded alike."""
        return self.rules.allowed(name, op, self.creds)

    # -- documents: each removes, in place, what the caller cannot read ----

    def image(self, image: Any) -> bool:
        """An image document (API JSON, or a task's ``image_properties``); True if changed."""
        if not isinstance(image, dict):
            raise UnexpectedDocument("an image document is not a JSON object")
        hidden = [key for key in image if not self.can_read(key)]
        for key in hidden:
            del image[key]
        return bool(hidden)

    def images(self, images: Iterable[Any]) -> bool:
        """The images of a list page; True if anything was removed.

        Images of one page mostly share their key sets: decided once per set.
        """
        can_read = self.can_read
        hidden_for: dict[tuple[str, ...], list[str]] = {}
        changed = False
        for image in images:
            if not isinstance(image, dict):
                raise UnexpectedDocument("an image of the page is not a JSON object")
            keys = tuple(image)
            hidden = hidden_for.get(keys)
            if hidden is None:
                hidden = hidden_for[keys] = [k for k in keys if not can_read(k)]
            for key in hidden:
                del image[key]
            changed = changed or bool(hidden)
        return changed

    def task(self, task: Any) -> None:
        """A task document: its ``input.image_properties`` and (``locations``) ``input.loc_url``.

        Glance shows a task to whoever may read it, not only to the
        properties' owner.
        """
        if not isinstance(task, dict):
            raise UnexpectedDocument("a task document is not a JSON object")
        task_input = task.get("input")
        if task_input is None:
            return
        if not isinstance(task_input, dict):
            raise UnexpectedDocument("a task's input is not a JSON object")
        props = task_input.get("image_properties")
        if props is not None:
            self.image(props)
        if "loc_url" in task_input and not self.can_read("locations"):
            del task_input["loc_url"]

    def properties(self, properties: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``properties`` (a notification's, a relation's) with what the caller may read."""
        can_read = self.can_read
        return {name: value for name, value in properties.items() if can_read(name)}


def view_from_options(values: Mapping[str, Any]) -> ImageView:
    """The view the operator's ``[propguard]`` options describe (``protect_core_attributes``,
    ``name_collation``, resolved as the rules' own check of it resolves it): the filter,
    the notification driver and service build theirs alike."""
    from propguard.rules.loading import RulesOptions

    return ImageView(
        ViewConfig(
            frozenset(values.get("protect_core_attributes") or ()),
            RulesOptions.from_options(values).name_folding(),
        )
    )
