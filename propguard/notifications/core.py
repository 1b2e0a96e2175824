"""The filter core: Glance notifications in, filtered notifications out.

Pure: no messaging, no I/O, no logging of payloads. Every adapter (the
``--stdin`` command, the glance-api driver, the listener service) decodes a
notification into a ``dict`` (:mod:`propguard.notifications.wire`), asks
:meth:`NotificationFilter.outputs` for the outputs and sends them its own way.
What an audience may see is the reader's view's (:mod:`propguard.view`: the
same folding of names and core attributes as the API filter); nothing here
knows what a section or a role means, except :func:`read_rule`, which
*reports* a section's ``read`` value for ``annotate``.

The three modes (each output is a whole notification, see :class:`Output`):

``strip``
    every property the *audience* (a :class:`~propguard.credentials.Credentials`)
    may not read is removed.
``views``
    one copy per :class:`ReaderClass`, stripped to what that class may read and
    tagged with the class name in the top-level key :data:`VIEW_KEY`.
``annotate``
    the whole payload plus, under ``payload[ANNOTATION_KEY]``, per property the
    reader classes that may read it (``property_read_classes``) and the rule's
    own ``read`` value (``property_read_roles`` in the roles format, ``@`` and
    ``!`` kept; ``property_read_policies`` in the policies format).

Only what is known is passed on (:mod:`propguard.notifications.shapes`): the
event types Glance 33 sends, each with the payload shape Glance gives it, and
the types an operator adds (``extra_events``). Anything else (an unknown type,
a payload of another shape, a key Glance never sends) raises
:class:`FilterError`: the adapters dead-letter, report or drop it, never pass
it on. An image payload goes through the reader's view whole: its
``properties``, and its top-level keys that are image attributes or
properties (``os_glance_*``). Whatever the rules say, :data:`ALWAYS_HIDDEN`
properties are removed in every output, and an annotation or view tag found
in an input is removed before anything else (it names hidden properties).

Shadow rules (``shadow``): decided beside the rules for each output's
audience, never applied; what they would change goes to ``on_divergence``
as :class:`Divergence` tuples (:mod:`propguard.notifications.shadow` turns
them into decision records and counters).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from propguard.credentials import Credentials
from propguard.notifications.shapes import EVENTS, IMAGE_STRUCTURE, Shape, ShapeError, check_payload
from propguard.rules.engine import RuleEngine
from propguard.rules.model import Conjunction, RuleFormat
from propguard.view import ALWAYS_HIDDEN, ImageView, Reader

#: Top-level key of a ``views`` output: the reader class's name.
VIEW_KEY = "propguard_view"
#: Payload key of the ``annotate`` output.
ANNOTATION_KEY = "propguard"
#: Version of the annotation's layout.
ANNOTATION_VERSION = 1

#: Keys of the notification ``dict`` an oslo.messaging v2 message carries.
NOTIFICATION_KEYS = ("message_id", "publisher_id", "event_type", "priority", "payload", "timestamp")
#: oslo.messaging's per-send de-duplication id (``amqp._add_unique_id``).
UNIQUE_ID_KEY = "_unique_id"

#: Bound of the memo of ``annotate``'s per-name reports (names are caller-chosen).
MEMO_SIZE = 65536
#: Bound of the shadow rules' memo of payload key sets.
SHADOW_SETS = 4096
#: Bound of a reader's memo of whole key sets (:class:`_Seer`; key sets are caller-chosen).
KEY_SETS_SIZE = 4096


class Mode(enum.StrEnum):
    STRIP = "strip"
    VIEWS = "views"
    ANNOTATE = "annotate"


class FilterError(ValueError):
    """A notification the filter cannot handle. The message never holds payload data."""


@dataclass(frozen=True, slots=True)
class ReaderClass:
    """A named set of roles that reads the same properties (``member``, ``billing``, ``admin``)."""

    name: str
    credentials: Credentials

    @classmethod
    def parse(cls, name: str, spec: str) -> ReaderClass:
        """``('billing', 'member+billing')``; ``service:<role>`` names a service-token role.

        The roles are read with the rules' own role syntax
        (:meth:`Conjunction.parse`); ``ValueError`` on a bad entry.
        """
        name = name.strip()
        if not name or any(ch.isspace() or ch in ",:" for ch in name):
            raise ValueError(f"malformed reader class name {name!r}")
        conj = Conjunction.parse(spec) if spec.strip() else Conjunction(frozenset(), frozenset())
        return cls(name, Credentials.for_roles(conj.user_roles, conj.service_roles))

    @property
    def spec(self) -> str:
        """The roles as written in the configuration (``member+service:nova``)."""
        return str(Conjunction(self.credentials.roles, self.credentials.service_roles))


def audience(roles: Iterable[str] = (), service_roles: Iterable[str] = ()) -> Credentials:
    """The credentials ``strip`` filters for: these user roles and service-token roles."""
    return Credentials.for_roles(roles, service_roles)


class Output(NamedTuple):
    """One filtered notification: its mode, its view (``views`` only) and the notification."""

    mode: Mode
    view: str | None
    notification: dict[str, Any]


def is_image_event(event_type: str) -> bool:
    """The events whose payload is an image (``format_image_notification``)."""
    return EVENTS.get(event_type) is Shape.IMAGE


def read_rule(engine: RuleEngine, name: str) -> list[str] | str:
    """The ``read`` value of the section deciding ``name``, as ``annotate`` reports it.

    Roles format: the role entries (``admin``, ``member+service:nova``), or
    ``['@']`` / ``['!']``; no section matches: ``['!']`` (Glance denies).
    Policies format: the policy name, or ``'@'``/``'!'``.
    """
    section = engine.section_for(name)
    value = section.values["read"] if section is not None else None
    if value is None or value.nobody or value.empty:
        word = "!"
    elif value.everyone:
        word = "@"
    elif value.policy is not None:
        return value.policy
    else:
        return [str(entry) for entry in value.entries]
    return word if engine.rule_format is RuleFormat.POLICIES else [word]


def derived_unique_id(unique_id: Any, mode: Mode, view: str | None) -> str:
    """A ``_unique_id`` for one output of a message: stable across redeliveries,
    different per output (an oslo.messaging listener de-duplicates by it, so
    one listening on two view topics must not drop one view as a duplicate of
    the other)."""
    return f"{unique_id}{_suffix(mode, view)}"


@functools.lru_cache(maxsize=1024)
def _suffix(mode: Mode, view: str | None) -> str:
    return f".{mode.value}" if view is None else f".{mode.value}.{view}"


EngineSource = RuleEngine | Callable[[], RuleEngine]


class Divergence(NamedTuple):
    """Names of one notification that the shadow rules decide otherwise for one output.

    ``shown``: the enforced rules show these names to ``audience`` (the shadow
    rules would hide them); false: the reverse. The output itself is always the
    enforced rules' (shadow rules are never applied).
    """

    mode: Mode
    #: The reader class (``views``, ``annotate``) or the ``strip`` audience's roles.
    audience: str
    credentials: Credentials
    shown: bool
    enforced_section: str
    shadow_section: str
    names: tuple[str, ...]


#: Receives a notification and its divergences (the decision log and the counters).
DivergenceSink = Callable[[Mapping[str, Any], list[Divergence]], None]


class NotificationFilter:
    """Turns one notification into its outputs, for the configured modes.

    ``rules``: a :class:`RuleEngine`, or a callable returning the current one
    (``RulesHolder.current``: reloads are picked up per notification).
    ``modes``: which outputs to produce, in this order: strip, views, annotate.
    ``audience``: the caller ``strip`` filters for. ``reader_classes``: the
    ``views`` copies and the classes ``annotate`` names. ``view``: the
    operator's view of images (name folding, protected core attributes), the
    same as the API filter's. ``extra_events``: event types the operator
    allows beyond Glance's, each with the payload shape to check and filter.
    ``shadow``: rules (an engine or a callable) decided beside ``rules`` for
    every audience of every image payload and never applied; each difference
    goes to ``on_divergence`` as :class:`Divergence` records.
    """

    def __init__(
        self,
        rules: EngineSource,
        *,
        modes: Iterable[Mode | str] = (Mode.STRIP,),
        audience: Credentials | None = None,
        reader_classes: Sequence[ReaderClass] = (),
        view: ImageView | None = None,
        extra_events: Mapping[str, Shape] | None = None,
        shadow: EngineSource | None = None,
        on_divergence: DivergenceSink | None = None,
    ) -> None:
        self.view = view if view is not None else ImageView()
        self.events: dict[str, Shape] = {**EVENTS, **(extra_events or {})}
        self._current = rules if callable(rules) and not isinstance(rules, RuleEngine) else None
        self._engine = rules if isinstance(rules, RuleEngine) else None
        wanted = {Mode(m) for m in modes}
        if not wanted:
            raise ValueError("no output mode configured")
        self.modes = tuple(m for m in Mode if m in wanted)
        self.audience = audience if audience is not None else Credentials.for_roles()
        names = [c.name for c in reader_classes]
        if len(set(names)) != len(names):
            raise ValueError("reader class names must be unique")
        if Mode.VIEWS in wanted and not reader_classes:
            raise ValueError("mode 'views' needs at least one reader class")
        self.reader_classes = tuple(reader_classes)
        #: Outcome counters: ``filtered`` (image payloads), ``passed`` (others, checked).
        self.counts: dict[str, int] = {"filtered": 0, "passed": 0}
        self._memo_engine: RuleEngine | None = None
        self._memos: dict[Credentials, Reader] = {}
        self._seers: dict[Credentials, _Seer] = {}
        self._annotations: dict[str, tuple[list[str], Any]] = {}
        self.shadow = shadow
        self.on_divergence = on_divergence
        self._shadow_of: tuple[RuleEngine, RuleEngine] | None = None
        self._shadow_readers: dict[Credentials, Reader] = {}
        #: The strip audience's roles as a reader class spells them (its name in records).
        self._audience_spec = str(Conjunction(self.audience.roles, self.audience.service_roles))
        #: Per audience, per name: None (both rules agree) or (shown, sections).
        self._diverged: dict[Credentials, dict[str, tuple[bool, str, str] | None]] = {}
        #: Per key set of a payload: its divergences (see :meth:`_compare_shadow`).
        self._shadow_sets: dict[tuple[tuple[str, ...], tuple[str, ...]], list[Divergence]] = {}

    def engine(self) -> RuleEngine:
        if self._engine is not None:
            return self._engine
        assert self._current is not None
        return self._current()

    def _memo(self, engine: RuleEngine, creds: Credentials) -> Reader:
        """The audience's reader, kept (with its decisions) until the rules change."""
        if engine is not self._memo_engine:  # rules reloaded: forget every decision
            self._memo_engine = engine
            self._memos = {}
            self._annotations = {}
        reader = self._memos.get(creds)
        if reader is None:
            reader = self._memos[creds] = self.view.reader(engine, creds)
        return reader

    def _seer(self, engine: RuleEngine, creds: Credentials) -> _Seer:
        """The audience's :class:`_Seer`, new with its reader (when the rules change)."""
        reader = self._memo(engine, creds)
        seer = self._seers.get(creds)
        if seer is None or seer.reader is not reader:
            seer = self._seers[creds] = _Seer(reader)
        return seer

    # -- the modes -----------------------------------------------------------

    def outputs(self, notification: Mapping[str, Any]) -> list[Output]:
        """The outputs for ``notification`` (a decoded oslo.messaging notification).

        ``notification`` is never modified; outputs share the values they do
        not change with it. Raises :class:`FilterError` for a notification
        that cannot be filtered safely (no string ``event_type``, a
        ``properties`` that is not an object): never passes it on unfiltered.
        """
        event_type = notification.get("event_type")
        if not isinstance(event_type, str):
            raise FilterError("notification has no string 'event_type'")
        shape = self.events.get(event_type)
        if shape is None:
            raise FilterError("event type not on the allow-list (Glance's and extra_events)")
        notification = _without_tags(notification)
        payload = notification.get("payload")
        try:
            check_payload(event_type, shape, payload)
        except ShapeError as exc:
            raise FilterError(str(exc)) from None
        if shape is not Shape.IMAGE or not isinstance(payload, dict):
            self.counts["passed"] += 1
            return self._unchanged(notification)
        self.counts["filtered"] += 1
        engine = self.engine()
        results: list[Output] = []
        for mode in self.modes:
            if mode is Mode.STRIP:
                seen = self._seer(engine, self.audience).seen(payload)
                results.append(_stripped(notification, seen, mode, None))
            elif mode is Mode.VIEWS:
                for rc in self.reader_classes:
                    seen = self._seer(engine, rc.credentials).seen(payload)
                    results.append(_stripped(notification, seen, mode, rc.name))
            else:
                results.append(self._annotated(engine, notification, payload, payload["properties"]))
        if self.shadow is not None:
            self._compare_shadow(engine, notification, payload)
        return results

    def _unchanged(self, notification: Mapping[str, Any]) -> list[Output]:
        results: list[Output] = []
        for mode in self.modes:
            views = [rc.name for rc in self.reader_classes] if mode is Mode.VIEWS else [None]
            for view in views:
                results.append(Output(mode, view, _copy(notification, mode, view)))
        return results

    def _annotated(
        self,
        engine: RuleEngine,
        notification: Mapping[str, Any],
        payload: dict[str, Any],
        properties: dict[str, Any],
    ) -> Output:
        memos = [(rc.name, self._memo(engine, rc.credentials)) for rc in self.reader_classes]
        annotations = self._annotations
        classes: dict[str, list[str]] = {}
        rules: dict[str, Any] = {}
        kept: dict[str, Any] = {}
        for name, value in properties.items():
            if name in ALWAYS_HIDDEN:
                continue
            kept[name] = value
            known = annotations.get(name)
            if known is None:
                readers = [c for c, memo in memos if memo.can_read(name)]
                known = (readers, read_rule(engine, self.view.folding.fold(name)))
                if len(annotations) >= MEMO_SIZE:
                    annotations.clear()
                annotations[name] = known
            classes[name], rules[name] = known
        rules_key = (
            "property_read_policies"
            if engine.rule_format is RuleFormat.POLICIES
            else "property_read_roles"
        )
        new_payload = dict(payload)
        new_payload["properties"] = kept
        new_payload[ANNOTATION_KEY] = {
            "version": ANNOTATION_VERSION,
            "reader_classes": {rc.name: rc.spec for rc in self.reader_classes},
            "property_read_classes": classes,
            rules_key: rules,
        }
        out = _copy(notification, Mode.ANNOTATE, None)
        out["payload"] = new_payload
        return Output(Mode.ANNOTATE, None, out)

    # -- shadow rules: decided beside, never applied ------------------------------

    def _compare_shadow(
        self, engine: RuleEngine, notification: Mapping[str, Any], payload: dict[str, Any]
    ) -> None:
        """Decide ``payload``'s names with the shadow rules for every output's audience;
        report those decided otherwise (the outputs were made with ``engine`` alone)."""
        shadow = self.shadow if isinstance(self.shadow, RuleEngine) else self.shadow()  # type: ignore[misc]
        if self._shadow_of != (engine, shadow):  # either rules reloaded: decide again
            self._shadow_of = (engine, shadow)
            self._shadow_readers = {}
            self._diverged = {}
            self._shadow_sets = {}
        properties = payload["properties"]
        # Payloads mostly share their key sets (one image's events, one cloud's images):
        # their divergences are worked out once per key set.
        signature = (tuple(payload), tuple(properties))
        found = self._shadow_sets.get(signature)
        if found is None:
            if len(self._shadow_sets) >= SHADOW_SETS:
                self._shadow_sets.clear()
            found = self._shadow_sets[signature] = self._divergences(
                engine, shadow, payload, properties
            )
        if found and self.on_divergence is not None:
            self.on_divergence(notification, found)

    def _divergences(
        self,
        engine: RuleEngine,
        shadow: RuleEngine,
        payload: dict[str, Any],
        properties: dict[str, Any],
    ) -> list[Divergence]:
        top = [k for k in payload if k not in IMAGE_STRUCTURE]
        names = list(dict.fromkeys([*top, *properties]))
        found: list[Divergence] = []
        if Mode.STRIP in self.modes:
            spec = self._audience_spec
            found += self._diverging(engine, shadow, Mode.STRIP, spec, self.audience, names)
        for mode, considered in ((Mode.VIEWS, names), (Mode.ANNOTATE, list(properties))):
            # annotate passes the top-level keys whole: only its classes per property change.
            if mode in self.modes:
                for rc in self.reader_classes:
                    found += self._diverging(
                        engine, shadow, mode, rc.name, rc.credentials, considered
                    )
        return found

    def _diverging(
        self,
        engine: RuleEngine,
        shadow: RuleEngine,
        mode: Mode,
        name: str,
        creds: Credentials,
        names: Iterable[str],
    ) -> list[Divergence]:
        memo = self._diverged.get(creds)
        if memo is None or len(memo) >= MEMO_SIZE:
            memo = self._diverged[creds] = {}
        groups: dict[tuple[bool, str, str], list[str]] = {}
        for key in names:
            found = memo.get(key, _UNDECIDED)
            if found is _UNDECIDED:
                found = memo[key] = self._shadow_decision(engine, shadow, creds, key)
            if found is not None:
                groups.setdefault(found, []).append(key)
        return [
            Divergence(mode, name, creds, shown, enforced, shadowed, tuple(keys))
            for (shown, enforced, shadowed), keys in groups.items()
        ]

    def _shadow_decision(
        self, engine: RuleEngine, shadow: RuleEngine, creds: Credentials, name: str
    ) -> tuple[bool, str, str] | None:
        """None if both rules decide ``name`` alike for ``creds``; else (shown, both sections)."""
        shown = self._memo(engine, creds).can_read(name)
        shadow_reader = self._shadow_readers.get(creds)
        if shadow_reader is None:
            shadow_reader = self._shadow_readers[creds] = self.view.reader(shadow, creds)
        if shown == shadow_reader.can_read(name):
            return None
        return shown, self.view.section_of(engine, name), self.view.section_of(shadow, name)


#: A name not decided yet by :meth:`NotificationFilter._shadow_decision`.
_UNDECIDED: Any = object()


def _as_seen_by(reader: Reader, payload: dict[str, Any]) -> dict[str, Any]:
    """An image payload as ``reader``'s caller may see it: its top-level image attributes
    and properties (``os_glance_*``) and its ``properties``, all through the view."""
    can_read = reader.can_read
    seen = {k: v for k, v in payload.items() if k in IMAGE_STRUCTURE or can_read(k)}
    seen["properties"] = reader.properties(payload["properties"])
    return seen


class _Seer:
    """:func:`_as_seen_by` for one reader, decided once per key set rather than per key.

    Glance's image payloads share a few sets of top-level and property names,
    so the names to remove are memoised by the payload's key sets: a copy and
    a few deletions per message instead of a decision per key. Only for an
    enforcing reader without a trail (one that records or does not apply its
    decisions sees every key each time).
    """

    __slots__ = ("reader", "_fast", "_hidden")

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self._fast = reader.trail is None and reader.enforce
        #: (top-level names, property names) -> (top-level names hidden, properties hidden)
        self._hidden: dict[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]] = {}

    def seen(self, payload: dict[str, Any]) -> dict[str, Any]:
        if not self._fast:
            return _as_seen_by(self.reader, payload)
        properties = payload["properties"]
        key = (tuple(payload), tuple(properties))
        hidden = self._hidden.get(key)
        if hidden is None:
            reader = self.reader
            kept = reader.properties(properties)
            hidden = (
                tuple(k for k in payload if k not in IMAGE_STRUCTURE and not reader.can_read(k)),
                tuple(name for name in properties if name not in kept),
            )
            if len(self._hidden) >= KEY_SETS_SIZE:
                self._hidden.clear()
            self._hidden[key] = hidden
        seen = dict(payload)
        for name in hidden[0]:
            del seen[name]
        kept = dict(properties)
        for name in hidden[1]:
            del kept[name]
        seen["properties"] = kept
        return seen


def _without_tags(notification: Mapping[str, Any]) -> Mapping[str, Any]:
    """``notification`` without an annotation or view tag of an earlier pass.

    An annotated stream fed back in would name hidden properties (and their
    readers) in every output: removed from every input, on every path.
    """
    payload = notification.get("payload")
    tagged = isinstance(payload, dict) and ANNOTATION_KEY in payload
    if not tagged and VIEW_KEY not in notification:
        return notification
    clean = dict(notification)
    clean.pop(VIEW_KEY, None)
    if tagged:
        clean["payload"] = {k: v for k, v in payload.items() if k != ANNOTATION_KEY}
    return clean


def _stripped(
    notification: Mapping[str, Any], payload: dict[str, Any], mode: Mode, view: str | None
) -> Output:
    out = _copy(notification, mode, view)
    out["payload"] = payload
    return _output(mode, view, out)


def _output(mode: Mode, view: str | None, notification: dict[str, Any]) -> Output:
    """``Output(mode, view, notification)`` without NamedTuple's Python-level ``__new__``."""
    return tuple.__new__(Output, (mode, view, notification))


def _copy(notification: Mapping[str, Any], mode: Mode, view: str | None) -> dict[str, Any]:
    """The notification's top-level keys (``message_id``, ``timestamp``... kept), a
    derived ``_unique_id`` and, for a view, :data:`VIEW_KEY`."""
    out = dict(notification)
    unique_id = out.get(UNIQUE_ID_KEY)
    if unique_id is not None:
        out[UNIQUE_ID_KEY] = f"{unique_id}{_suffix(mode, view)}"
    if view is not None:
        out[VIEW_KEY] = view
    return out
