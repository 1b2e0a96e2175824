"""Glance-shaped notifications (glance 33 ``glance/notifier.py``), for tests, benchmarks and trials.

The shapes follow ``format_image_notification``, ``format_image_member_notification``,
``format_task_notification``, ``format_metadef_*_notification`` and the
``image.send`` payload; :func:`every_event` yields one notification of every
event type Glance emits, with the priority Glance gives it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

IMAGE_ID = "2cd9dcf6-a995-4edd-b7a4-6f28ae84a0f1"
OWNER = "6d7a6bd1b0ad4d9b8d0e0a3b1f9a6f3e"
STAMP = "2025-03-04T10:15:09Z"

#: Image events carrying an image payload (``format_image_notification``).
IMAGE_EVENTS = (
    "image.create",
    "image.update",
    "image.delete",
    "image.prepare",
    "image.upload",
    "image.activate",
)
MEMBER_EVENTS = ("image.member.create", "image.member.update", "image.member.delete")
TASK_EVENTS = (
    "task.create",
    "task.delete",
    "task.run",
    "task.processing",
    "task.success",
    "task.failure",
)
METADEF_EVENTS = (
    "metadef_namespace.create",
    "metadef_namespace.update",
    "metadef_namespace.delete",
    "metadef_namespace.delete_objects",
    "metadef_namespace.delete_properties",
    "metadef_namespace.delete_tags",
    "metadef_object.create",
    "metadef_object.update",
    "metadef_object.delete",
    "metadef_property.create",
    "metadef_property.update",
    "metadef_property.delete",
    "metadef_resource_type.create",
    "metadef_resource_type.delete",
    "metadef_tag.create",
    "metadef_tag.update",
    "metadef_tag.delete",
)


def image_payload(
    properties: Mapping[str, Any] | None = None, *, image_id: str = IMAGE_ID, **extra: Any
) -> dict[str, Any]:
    """``format_image_notification(image)``: core attributes top level, extras in ``properties``."""
    payload: dict[str, Any] = {
        "id": image_id,
        "name": "cirros-0.6.2",
        "status": "active",
        "created_at": "2025-03-04T10:15:02Z",
        "updated_at": STAMP,
        "min_disk": 0,
        "min_ram": 0,
        "protected": False,
        "checksum": "c8fc807773e5354afe61636071771906",
        "owner": OWNER,
        "disk_format": "qcow2",
        "container_format": "bare",
        "size": 21430272,
        "virtual_size": 117440512,
        "is_public": False,
        "visibility": "private",
        "properties": dict(properties or {}),
        "tags": ["ci"],
        "deleted": False,
        "deleted_at": None,
    }
    payload.update(extra)
    return payload


def image_event_payload(event_type: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """The payload Glance sends for ``event_type`` (one of :data:`IMAGE_EVENTS`)."""
    if event_type == "image.delete":
        return image_payload(properties, deleted=True, deleted_at=STAMP, status="deleted")
    if event_type in ("image.prepare", "image.upload"):
        extra: dict[str, Any] = {"os_glance_importing_to_stores": [], "os_glance_failed_import": []}
        if event_type == "image.prepare":
            extra["backend"] = "file1"
        return image_payload(properties, **extra)
    return image_payload(properties)


def member_payload(event_type: str = "image.member.create") -> dict[str, Any]:
    return {
        "image_id": IMAGE_ID,
        "member_id": "f00dfeedf00dfeedf00dfeedf00dfeed",
        "status": "pending",
        "created_at": STAMP,
        "updated_at": STAMP,
        "deleted": event_type.endswith(".delete"),
        "deleted_at": STAMP if event_type.endswith(".delete") else None,
    }


def send_payload(*, cache: bool = False) -> dict[str, Any]:
    payload = {
        "bytes_sent": 21430272,
        "image_id": IMAGE_ID,
        "owner_id": OWNER,
        "receiver_tenant_id": "a" * 32,
        "receiver_user_id": "b" * 32,
    }
    if cache:
        payload["destination_ip"] = "192.0.2.10"
    return payload


def task_payload(event_type: str = "task.create") -> dict[str, Any]:
    return {
        "id": "c3bd4f8a-1f0e-4d7b-9a4a-2b9f0b8f0c11",
        "type": "import",
        "status": event_type.split(".", 1)[1],
        "result": None,
        "owner": OWNER,
        "message": None,
        "expires_at": None,
        "created_at": STAMP,
        "updated_at": STAMP,
        "deleted": False,
        "deleted_at": None,
    }


def metadef_payload(event_type: str) -> dict[str, Any]:
    """``format_metadef_*_notification`` of the event's kind, with its ``extra_payload``."""
    kind = event_type.split(".", 1)[0]
    deleted = event_type.endswith(".delete")
    times = {"created_at": STAMP, "updated_at": STAMP}
    end = {"deleted": deleted, "deleted_at": STAMP if deleted else None}
    if kind == "metadef_namespace":
        return {
            "namespace": "OS::Compute::Libvirt",
            "namespace_old": "OS::Compute::Libvirt",
            "display_name": "libvirt",
            "protected": True,
            "visibility": "public",
            "owner": OWNER,
            "description": "libvirt driver options",
            **times,
            **end,
        }
    if kind == "metadef_property":
        schema = dict.fromkeys(
            ("minimum", "maximum", "enum", "pattern", "minLength", "maxLength", "confidential")
            + ("items", "uniqueItems", "minItems", "maxItems", "additionalItems", "default")
        )
        return {
            "namespace": "OS::Compute::Libvirt",
            "name": "hw_disk_bus",
            "name_old": "hw_disk_bus",
            "type": "string",
            "title": "Disk bus",
            "description": "the disk bus",
            **schema,
            **end,
        }
    names = {"namespace": "OS::Compute::Libvirt", "name": "hw_rng", "name_old": "hw_rng"}
    if kind == "metadef_object":
        names.update(properties=[], required=[], description="random number generator")
    elif kind == "metadef_resource_type":
        names.update(prefix="hw_", properties_target="image")
    return {**names, **times, **end}


def notification(
    event_type: str,
    payload: Any,
    *,
    priority: str = "INFO",
    publisher_id: str = "image.localhost",
    message_id: str | None = None,
    timestamp: str | None = None,
    unique_id: bool = True,
) -> dict[str, Any]:
    """A notification as oslo.messaging's ``Notifier`` builds it (and the rabbit driver sends it)."""
    note: dict[str, Any] = {
        "message_id": message_id or str(uuid.uuid4()),
        "publisher_id": publisher_id,
        "event_type": event_type,
        "priority": priority,
        "payload": payload,
        "timestamp": timestamp or str(datetime.now(UTC).replace(tzinfo=None)),
    }
    if unique_id:
        note["_unique_id"] = uuid.uuid4().hex
    return note


def every_event(properties: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """One notification of every event type of Glance 33, image events with ``properties``.

    Includes the error notifications: ``image.upload`` with a string payload
    (priority ERROR) and ``image.send`` at ERROR (bytes sent != size).
    """
    for event_type in IMAGE_EVENTS:
        yield notification(event_type, image_event_payload(event_type, properties))
    yield notification("image.upload", "Image storage media is full: ...", priority="ERROR")
    yield notification("image.send", send_payload())
    yield notification("image.send", send_payload(cache=True), priority="ERROR")
    for event_type in MEMBER_EVENTS:
        yield notification(event_type, member_payload(event_type))
    for event_type in TASK_EVENTS:
        yield notification(event_type, task_payload(event_type))
    for event_type in METADEF_EVENTS:
        yield notification(event_type, metadef_payload(event_type))


def bench_properties(count: int = 20, hidden: int = 10) -> dict[str, str]:
    """``count`` properties, ``hidden`` of them named ``x_secret_*`` (the rest ``hw_*``/``os_*``)."""
    props = {f"x_secret_{i:02d}": f"secret-value-{i:02d}" for i in range(hidden)}
    props.update({f"hw_prop_{i:02d}": f"value-{i:02d}" for i in range(count - hidden)})
    return props
