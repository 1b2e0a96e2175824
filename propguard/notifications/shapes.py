"""The notifications Glance 33 sends, event type by event type, and the shape of each payload.

The allow-list of the filter core: a notification whose event type is not
here, or whose payload is not of its type's shape, cannot be filtered with
certainty and is refused (dead-lettered by the service, reported by
``--stdin``, dropped and logged by the driver), never passed on. Derived from
``glance/notifier.py`` (``format_*_notification``, ``NotificationProxy``
subclasses and their ``extra_payload``) and ``glance/api/common.py``
(``image_send_notification``); ``tests/unit/notifications/test_shapes.py``
compares every table with Glance's own code, so a new event or key in Glance
fails a test instead of passing unchecked.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Shape(enum.Enum):
    """The kinds of payload Glance sends."""

    IMAGE = "image"  # format_image_notification: image properties in it
    MEMBER = "member"
    SEND = "send"
    TASK = "task"  # format_task_notification: never the task's input
    METADEF_NAMESPACE = "metadef_namespace"
    METADEF_OBJECT = "metadef_object"
    METADEF_PROPERTY = "metadef_property"
    METADEF_RESOURCE_TYPE = "metadef_resource_type"
    METADEF_TAG = "metadef_tag"

    #: Members are singletons, equal only to themselves: hashed as objects are (Enum's
    #: ``__hash__`` is Python code, and every notification's shape is looked up).
    __hash__ = object.__hash__


@dataclass(frozen=True)
class PayloadShape:
    """The keys a payload of one shape must have (``required``) and may have."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()
    #: Key tuples (in the payload's order) already found of this shape: a cloud's payloads
    #: share a few, so most notifications are checked with one lookup. Bounded (the sender
    #: chooses the keys).
    accepted: set[tuple[str, ...]] = field(
        default_factory=set, compare=False, hash=False, repr=False
    )

    @functools.cached_property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional


_DELETED = frozenset({"deleted", "deleted_at"})

#: ``format_image_notification``'s keys.
IMAGE_KEYS = frozenset(
    {
        "id",
        "name",
        "status",
        "created_at",
        "updated_at",
        "min_disk",
        "min_ram",
        "protected",
        "checksum",
        "owner",
        "disk_format",
        "container_format",
        "size",
        "virtual_size",
        "is_public",
        "visibility",
        "properties",
        "tags",
    }
    | _DELETED
)
#: ``image.prepare``/``image.upload`` add ``_format_import_properties()`` (two
#: image properties, as lists) and ``image.prepare`` the ``backend``.
IMAGE_IMPORT_KEYS = frozenset({"os_glance_importing_to_stores", "os_glance_failed_import"})
#: Keys of an image payload that are its structure, not image attributes or
#: properties: never asked of the view, always kept.
IMAGE_STRUCTURE = frozenset({"is_public", "properties", "backend"}) | _DELETED

_TIMES = frozenset({"created_at", "updated_at"}) | _DELETED
_SCHEMA_KEYS = frozenset(
    {
        "type",
        "title",
        "description",
        "default",
        "minimum",
        "maximum",
        "enum",
        "pattern",
        "minLength",
        "maxLength",
        "confidential",
        "items",
        "uniqueItems",
        "minItems",
        "maxItems",
        "additionalItems",
    }
)

PAYLOADS: dict[Shape, PayloadShape] = {
    Shape.IMAGE: PayloadShape(IMAGE_KEYS, IMAGE_IMPORT_KEYS | {"backend"}),
    Shape.MEMBER: PayloadShape(frozenset({"image_id", "member_id", "status"}) | _TIMES),
    Shape.SEND: PayloadShape(
        frozenset(
            {"bytes_sent", "image_id", "owner_id", "receiver_tenant_id", "receiver_user_id"}
        ),
        frozenset({"destination_ip"}),
    ),
    Shape.TASK: PayloadShape(
        frozenset({"id", "type", "status", "result", "owner", "message", "expires_at"}) | _TIMES
    ),
    Shape.METADEF_NAMESPACE: PayloadShape(
        frozenset(
            {
                "namespace",
                "namespace_old",
                "display_name",
                "protected",
                "visibility",
                "owner",
                "description",
            }
        )
        | _TIMES
    ),
    Shape.METADEF_OBJECT: PayloadShape(
        frozenset({"namespace", "name", "name_old", "properties", "required", "description"})
        | _TIMES
    ),
    Shape.METADEF_PROPERTY: PayloadShape(
        frozenset({"namespace", "name", "name_old"}) | _SCHEMA_KEYS | _DELETED
    ),
    Shape.METADEF_RESOURCE_TYPE: PayloadShape(
        frozenset({"namespace", "name", "name_old", "prefix", "properties_target"}) | _TIMES
    ),
    Shape.METADEF_TAG: PayloadShape(frozenset({"namespace", "name", "name_old"}) | _TIMES),
}

_METADEF = {
    "metadef_namespace": (
        Shape.METADEF_NAMESPACE,
        ("create", "update", "delete", "delete_objects", "delete_properties", "delete_tags"),
    ),
    "metadef_object": (Shape.METADEF_OBJECT, ("create", "update", "delete")),
    "metadef_property": (Shape.METADEF_PROPERTY, ("create", "update", "delete")),
    "metadef_resource_type": (Shape.METADEF_RESOURCE_TYPE, ("create", "delete")),
    "metadef_tag": (Shape.METADEF_TAG, ("create", "update", "delete")),
}

#: Every event type Glance 33 sends, and the shape of its payload.
EVENTS: dict[str, Shape] = {
    **{
        f"image.{e}": Shape.IMAGE
        for e in ("create", "update", "delete", "prepare", "upload", "activate")
    },
    **{f"image.member.{e}": Shape.MEMBER for e in ("create", "update", "delete")},
    "image.send": Shape.SEND,
    **{
        f"task.{e}": Shape.TASK
        for e in ("create", "delete", "run", "processing", "success", "failure")
    },
    **{f"{kind}.{e}": shape for kind, (shape, events) in _METADEF.items() for e in events},
}
#: Events Glance also sends with a text payload (the failure message, ``ERROR``
#: priority): ``image.upload`` when storing the data failed.
TEXT_EVENTS = frozenset({"image.upload"})


#: Bound of :attr:`PayloadShape.accepted`.
ACCEPTED_SIZE = 1024


class ShapeError(ValueError):
    """A payload not of its event type's shape. The message names no key or value."""


def check_payload(event_type: str, shape: Shape, payload: Any) -> None:
    """Refuse a payload that is not exactly of ``shape``; :class:`ShapeError` says why.

    The message never repeats a key or value of the payload (either may be a
    property the reader of the message must not learn).
    """
    if isinstance(payload, str) and event_type in TEXT_EVENTS:
        return
    if not isinstance(payload, dict):
        raise ShapeError(f"{event_type} payload is not an object")
    expected = PAYLOADS[shape]
    names = tuple(payload)
    if names not in expected.accepted:
        keys = payload.keys()
        if not expected.required <= keys:
            raise ShapeError(f"{event_type} payload lacks a key Glance sends")
        if not keys <= expected.allowed:
            raise ShapeError(f"{event_type} payload has a key Glance never sends")
        if len(expected.accepted) >= ACCEPTED_SIZE:
            expected.accepted.clear()
        expected.accepted.add(names)
    if shape is Shape.IMAGE:
        _check_image(event_type, payload)


def _check_image(event_type: str, payload: Mapping[str, Any]) -> None:
    properties = payload["properties"]
    if not isinstance(properties, dict):
        raise ShapeError(f"{event_type} payload: its properties are not an object")
    try:
        # Glance's extra properties are strings: a nested value is no image of Glance's.
        # (``join`` refuses anything but strings, in C: the cheapest check of them all.)
        "".join(properties.values())
    except TypeError:
        raise ShapeError(f"{event_type} payload: a property value is not a string") from None
