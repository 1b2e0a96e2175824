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

import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from propguard.credentials import Credentials
from propguard.decisions import Trail
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

#: Callers (distinct :meth:`RuleEngine.caller_key`: role sets under role
#: rules, callers under policies) whose decisions a view shares across
#: requests, and names shared per caller (caller-chosen: bounded), so at most
#: half of one reader's MEMO_SIZE in all. Past them, readers decide alone.
SHARED_CALLERS = 32
SHARED_NAMES = 1024


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


class _Known:
    """One caller's read decisions under one pair of rules (enforced, shadow), shared by
    that caller's readers across requests and threads.

    A decision is a function of the rules (immutable: a reload makes new
    engines, and a new :class:`_Known`), the name and what the rules read of
    the caller (:meth:`RuleEngine.caller_key`), so a list page asks the rules
    only about names it has never shown this role set, and the shadow rules'
    second opinion costs nothing once given. Names the two rules decide
    differently are kept apart: every reader records them in its own trail.
    """

    __slots__ = ("agreed", "diverging")

    def __init__(self, seed: Mapping[str, bool]) -> None:
        #: name -> decision, where the shadow rules (if any) decide alike; seeded with
        #: the free and the always-hidden names, which never reach the rules.
        self.agreed: dict[str, bool] = dict(seed)
        #: name -> (enforced, shadow) where they differ.
        self.diverging: dict[str, tuple[bool, bool]] = {}


def _seed(config: ViewConfig) -> dict[str, bool]:
    seed = dict.fromkeys(config.free_keys, True)
    seed.update(dict.fromkeys(ALWAYS_HIDDEN, False))
    return seed


@dataclass
class ImageView:
    """The view of the rules every adapter asks; one per filter, notification filter, API.

    ``enforce = False`` (the filter's dry run): every decision is taken and
    recorded in the reader's :class:`~propguard.decisions.Trail`, none applied.
    """

    config: ViewConfig = field(default_factory=ViewConfig)
    enforce: bool = True
    _compiled: tuple[RuleEngine, Rules] | None = field(default=None, repr=False)
    _shadow: tuple[RuleEngine, Rules] | None = field(default=None, repr=False)
    _known: tuple[RuleEngine, RuleEngine | None, dict[Hashable, _Known]] | None = field(
        default=None, repr=False, compare=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

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

    def reader(
        self,
        engine: RuleEngine,
        creds: Credentials,
        *,
        shadow: RuleEngine | None = None,
        trail: Trail | None = None,
    ) -> Reader:
        """One caller's view under ``engine`` (the rules current for this request).

        ``shadow``: rules decided beside ``engine`` and never applied; ``trail``:
        where the reader records what it decided (the decision log's input).
        """
        shadow_rules = None
        if shadow is not None:
            if self.config.folding.is_identity:
                shadow_rules = shadow
            else:
                compiled = self._shadow
                if compiled is None or compiled[0] is not shadow:
                    compiled = self._shadow = (shadow, FoldedRules(shadow, self.config.folding.fold))
                shadow_rules = compiled[1]
        return Reader(
            self.rules(engine),
            creds,
            self.config,
            shadow=shadow_rules,
            enforce=self.enforce,
            trail=trail,
            known=self._known_for(engine, shadow, creds),
        )

    def _known_for(
        self, engine: RuleEngine, shadow: RuleEngine | None, creds: Credentials
    ) -> _Known:
        """The shared decisions of ``creds``'s role set (caller key) under these rules."""
        slot = self._known
        if slot is None or slot[0] is not engine or slot[1] is not shadow:
            slot = self._known = (engine, shadow, {})  # new rules: forget every decision
        callers = slot[2]
        key = (engine.caller_key(creds), shadow.caller_key(creds) if shadow is not None else None)
        known = callers.get(key)
        if known is None:
            with self._lock:
                known = callers.get(key)
                if known is None:
                    if len(callers) >= SHARED_CALLERS:
                        del callers[next(iter(callers))]  # the oldest
                    known = callers[key] = _Known(_seed(self.config))
        return known

    def section_of(self, engine: RuleEngine, name: str) -> str:
        """``file:line`` of the section of ``engine`` deciding ``name`` as the database folds it."""
        section = engine.section_for(self.config.folding.fold(name))
        if section is None:
            return "no section"
        if section.builtin:
            return f"built-in [{section.pattern}]"
        return f"{section.position.file}:{section.position.line}"


class Reader:
    """What one caller may see; decisions memoised (bounded): those its caller's role set
    shares (:class:`_Known`), and its own (divergences, and names past the shared bound)."""

    __slots__ = (
        "config", "creds", "enforce", "rules", "shadow", "trail", "_known", "_memo", "_own"
    )  # fmt: skip

    def __init__(
        self,
        rules: Rules,
        creds: Credentials,
        config: ViewConfig,
        *,
        shadow: Rules | None = None,
        enforce: bool = True,
        trail: Trail | None = None,
        known: _Known | None = None,
    ) -> None:
        self.rules = rules
        self.creds = creds
        self.config = config
        self.shadow = shadow
        self.enforce = enforce
        self.trail = trail
        if known is None:  # decisions of this reader alone
            known = _Known(_seed(config))
        self._known = known
        self._memo = known.agreed
        self._own: dict[str, bool] = {}

    @property
    def protected_core(self) -> frozenset[str]:
        return self.config.protected_core

    def _decide(self, name: str) -> bool:
        """The rules' read decision on ``name`` (applied or not), memoised."""
        result = self._memo.get(name)
        if result is None:
            result = self._first(name)
        return result

    def _first(self, name: str) -> bool:
        """A name the caller's shared decisions lack: decided (by both rules in shadow
        mode), shared if the two agree, else recorded as a divergence once per reader."""
        result = self._own.get(name)
        if result is not None:
            return result
        known = self._known
        pair = known.diverging.get(name)
        if pair is None:
            creds = self.creds
            result = self.rules.allowed(name, "read", creds)
            shadow = self.shadow
            room = len(known.agreed) + len(known.diverging) < min(SHARED_NAMES, MEMO_SIZE)
            if shadow is None or shadow.allowed(name, "read", creds) == result:
                if room:
                    known.agreed[name] = result
                    return result
            else:
                pair = (result, not result)
                if room:
                    known.diverging[name] = pair
        if pair is not None:
            result = pair[0]
            if self.trail is not None:
                self.trail.divergences.append(("read", name, result, pair[1]))
        if len(self._own) >= MEMO_SIZE:
            self._own = {}
        self._own[name] = result
        return result

    def _compare(self, name: str, op: str, enforced: bool) -> None:
        assert self.shadow is not None
        shadow = self.shadow.allowed(name, op, self.creds)
        if shadow != enforced and self.trail is not None:
            self.trail.divergences.append((op, name, enforced, shadow))

    def can_read(self, name: str) -> bool:
        """May this caller see the key ``name`` of an image document?"""
        if self._decide(name):
            return True
        if name in ALWAYS_HIDDEN:
            return False
        if self.trail is not None:
            self.trail.denied.append(("read", name))
        return not self.enforce

    def may(self, name: str, op: str) -> bool:
        """A write decision (``create``/``update``/``delete``) on ``name``, folded alike."""
        result = self.rules.allowed(name, op, self.creds)
        if self.shadow is not None:
            self._compare(name, op, result)
        if result:
            return True
        if self.trail is not None:
            self.trail.denied.append((op, name))
        return not self.enforce

    # -- documents: each removes, in place, what the caller cannot read ----

    def _hide(self, document: dict[str, Any], hidden: list[str], times: int = 1) -> None:
        """Remove ``hidden`` from ``document`` (only the always-hidden when not enforcing)."""
        trail = self.trail
        for key in hidden:
            if key in ALWAYS_HIDDEN:
                del document[key]
                continue
            if self.enforce:
                del document[key]
            if trail is not None:
                trail.hidden[key] += times

    def image(self, image: Any) -> bool:
        """An image document (API JSON, or a task's ``image_properties``); True if changed."""
        if not isinstance(image, dict):
            raise UnexpectedDocument("an image document is not a JSON object")
        hidden = [key for key in image if not self._decide(key)]
        self._hide(image, hidden)
        return bool(hidden)

    def images(self, images: Iterable[Any]) -> bool:
        """The images of a list page; True if anything was removed.

        Images of one page mostly share their key sets: decided once per set.
        """
        decide = self._decide
        hidden_for: dict[tuple[str, ...], list[str]] = {}
        changed = False
        for image in images:
            if not isinstance(image, dict):
                raise UnexpectedDocument("an image of the page is not a JSON object")
            keys = tuple(image)
            hidden = hidden_for.get(keys)
            if hidden is None:
                hidden = hidden_for[keys] = [k for k in keys if not decide(k)]
            if hidden:
                self._hide(image, hidden)
                changed = True
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
        if "loc_url" in task_input and not self._decide("locations"):
            # A location_import task's location: under the rules of ``locations``.
            if self.enforce:
                del task_input["loc_url"]
            if self.trail is not None:
                self.trail.hidden["locations"] += 1

    def properties(self, properties: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``properties`` (a notification's, a relation's) with what the caller may read."""
        decide = self._decide
        kept = {name: value for name, value in properties.items() if decide(name)}
        if len(kept) < len(properties) and (self.trail is not None or not self.enforce):
            hidden = [name for name in properties if name not in kept]
            copy = dict(properties)
            self._hide(copy, hidden)
            return copy
        return kept


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
