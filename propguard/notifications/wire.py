"""oslo.messaging's notification wire format, without oslo.messaging.

A message on the bus is either an oslo.messaging **v2 envelope** (what the
``messagingv2`` driver sends; ``oslo_messaging/_drivers/common.py``
``serialize_msg``)::

    {"oslo.version": "2.0", "oslo.message": "<the notification as a JSON string>"}

or a **bare** notification (the legacy ``messaging`` driver, or a JSON line
written by hand): an object with at least ``event_type`` and ``payload``. The
notification itself has ``message_id``, ``publisher_id``, ``event_type``,
``priority``, ``payload``, ``timestamp`` and, on the wire, ``_unique_id``.

Errors (:class:`DecodeError`) say what is wrong, never what the message holds.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

import orjson

VERSION_KEY = "oslo.version"
MESSAGE_KEY = "oslo.message"
ENVELOPE_VERSION = "2.0"

#: Priorities an oslo.messaging notification listener dispatches (lower case).
PRIORITIES = frozenset({"audit", "debug", "info", "warn", "error", "critical", "sample"})


class DecodeError(ValueError):
    """A message that is not a notification. ``str()`` never contains message content."""


class EncodeError(ValueError):
    """An output JSON cannot hold (orjson writes at most 254 levels of nesting, though it
    reads 1024). ``str()`` never contains content."""


class Decoded(NamedTuple):
    notification: dict[str, Any]
    enveloped: bool


def _invalid(what: str, exc: orjson.JSONDecodeError) -> DecodeError:
    # orjson's message names a position and a category; only the position is kept.
    return DecodeError(f"{what} is not valid JSON (line {exc.lineno} column {exc.colno})")


#: Keys of an envelope or a notification.
_TOP_KEYS = (
    "oslo.version",
    "oslo.message",
    "event_type",
    "payload",
    "priority",
    "publisher_id",
    "message_id",
    "timestamp",
)


class _Needles(NamedTuple):
    """What the scan looks for, in the text's own type (``str`` or ``bytes``)."""

    quoted: tuple[tuple[str, Any], ...]  # (name, the name as it stands in the text: '"name"')
    oslo: Any  # both envelope keys start so: one count for the two
    escape: Any  # a \\u escape of an ASCII character: a key name spelled another way
    escaped_ascii: re.Pattern


_NEEDLES = {
    str: _Needles(
        tuple((name, f'"{name}"') for name in _TOP_KEYS),
        '"oslo.',
        "\\u00",
        re.compile(r"\\u00[2-7]"),
    ),
    bytes: _Needles(
        tuple((name, f'"{name}"'.encode()) for name in _TOP_KEYS),
        b'"oslo.',
        b"\\u00",
        re.compile(rb"\\u00[2-7]"),
    ),
}


def _escapes(text: bytes | str) -> bool:
    """May ``text`` hold a ``\\u`` escape? If an envelope holds none, its message holds none
    either (the message's backslashes are escaped in the envelope: ``\\\\`` or ``\\u005c``)."""
    return _NEEDLES[str if isinstance(text, str) else bytes].escape in text  # type: ignore[operator]


def _duplicate_top_keys(text: bytes | str, decoded: dict[str, Any], escapes: bool = True) -> bool:
    """Does the JSON object ``text`` (decoded: ``decoded``) repeat one of its own top-level keys?

    orjson (and Python's json) keep the last copy of a repeated key; a reader
    that keeps the first (some indexers' parsers) would see another event type
    or payload than the one filtered. Glance never sends one (its JSON comes
    from a dict). A cheap scan first: only a key the decoded object has can be
    repeated, and only if its quoted name occurs twice in the text (C string
    counts, no regular expression: this runs twice per message); the exact
    check only then, or when a key may be spelled with escapes
    (``"event\\u005ftype"`` is ``event_type`` too). ``escapes=False``: the caller
    knows ``text`` holds no ``\\u`` (see :func:`_escapes`).
    """
    needles = _NEEDLES[str if isinstance(text, str) else bytes]
    haystack: Any = text
    if not (escapes and needles.escape in haystack and needles.escaped_ascii.search(haystack)):
        quoted = needles.quoted
        if (
            _TOP_KEYS[1] in decoded
            and _TOP_KEYS[0] in decoded
            and haystack.count(needles.oslo) == 2
        ):
            quoted = quoted[2:]  # each of the two (both present) stands there once
        for name, needle in quoted:
            if name in decoded and haystack.count(needle) > 1:
                break
        else:
            return False
    raw = text.encode() if isinstance(text, str) else text
    top: list[list[str]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        top.append([k for k, _ in items])
        return dict(items)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return True
    keys = top[-1] if top else []  # the outermost object is built last
    return len(keys) != len(set(keys))


def decode(data: bytes | str) -> Decoded:
    """A v2 envelope or a bare notification; raises :class:`DecodeError`."""
    try:
        outer = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _invalid("message", exc) from None
    if type(outer) is not dict:
        raise DecodeError("message is not a JSON object")
    escapes = _escapes(data)
    if _duplicate_top_keys(data, outer, escapes):
        raise DecodeError("message repeats a key of the envelope or notification")
    inner = outer.get(MESSAGE_KEY)
    if inner is not None or VERSION_KEY in outer:
        version = outer.get(VERSION_KEY)
        if type(version) is not str or version.split(".", 1)[0] != "2":
            raise DecodeError("envelope has no supported 'oslo.version' (2.x)")
        if type(inner) is not str:
            raise DecodeError("envelope has no 'oslo.message' string")
        try:
            notification = orjson.loads(inner)
        except orjson.JSONDecodeError as exc:
            raise _invalid("'oslo.message'", exc) from None
        if type(notification) is dict and _duplicate_top_keys(inner, notification, escapes):
            raise DecodeError("'oslo.message' repeats a key of the notification")
        enveloped = True
    else:
        notification = outer
        enveloped = False
    check_notification(notification)
    return tuple.__new__(Decoded, (notification, enveloped))


_STRING_KEYS = ("message_id", "priority", "publisher_id", "timestamp")
_STRING_OR_NONE = frozenset({str, type(None)})


def check_notification(notification: Any) -> None:
    """A notification must be an object with a string ``event_type`` and a ``payload``;
    ``message_id``, ``priority``, ``publisher_id``, ``timestamp`` are strings when given."""
    if type(notification) is not dict:
        raise DecodeError("notification is not a JSON object")
    get = notification.get
    if type(get("event_type")) is not str:
        raise DecodeError("notification has no string 'event_type'")
    if "payload" not in notification:
        raise DecodeError("notification has no 'payload'")
    for key in _STRING_KEYS:
        if type(get(key)) not in _STRING_OR_NONE:
            raise DecodeError(f"notification '{key}' is not a string")


def encode(notification: dict[str, Any], enveloped: bool = True) -> bytes:
    """The notification as one JSON document (a v2 envelope when ``enveloped``); raises
    :class:`EncodeError` for one JSON cannot hold."""
    try:
        data = orjson.dumps(notification)
    except orjson.JSONEncodeError:
        raise EncodeError(
            "the output cannot be encoded as JSON (nested deeper than 254 levels, or a "
            "value JSON cannot hold)"
        ) from None
    if not enveloped:
        return data
    return orjson.dumps({VERSION_KEY: ENVELOPE_VERSION, MESSAGE_KEY: data.decode()})
