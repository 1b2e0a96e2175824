"""What one observed request means for the relations: plain, JSON-serialisable *events*.

Pure functions, no WSGI and no database: the filter (:mod:`.filter`) extracts
the request and Glance's answer, these turn them into events, the store
applies them idempotently, and the outbox keeps them verbatim during an
outage. Event types:

``created``       ``POST /v2/images`` 201 relayed by a qualifying service token
                  with Nova's instance metadata (or a volume-backed snapshot body)
``patched``       nova-compute's ``PATCH`` (``owner_id``, ``image_location``) 200
``uploaded``      ``PUT /file`` 204, ``POST /locations`` 202, or a PATCH adding a location
``member_added``  ``POST /members`` 200: the instance's project, for an admin's
                  snapshot of another project's server
``deleted``       ``DELETE /v2/images/{id}`` 204 (any caller), or reconcile

The later events apply only to the relation created under the *same*
``X-OpenStack-Request-ID`` and also need the qualifying service token; a
DELETE applies whatever its request id.

What a service token proves (reference §0.3 item 1): Nova relayed the
request. It does not prove that Nova computed ``instance_uuid``,
``image_type``, ``backup_type`` or ``user_id``: Nova merges the user's
createImage/createBackup metadata over them. So the values are kept as
*asserted*, with the inconsistencies one can see listed as *mismatches*.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from propguard.credentials import Credentials
from propguard.relations import models

#: Nova's relation properties, kept as sent (``asserted``).
ASSERTED_KEYS = (
    "instance_uuid",
    "image_type",
    "backup_type",
    "user_id",
    "base_image_ref",
    "name",
    "visibility",
)
#: The name suffix ``API.shelve`` gives its image: the only trace of a shelve.
SHELVED_SUFFIX = "-shelved"
MAX_TEXT = 255

DOES_NOT_PROVE = (
    "that Nova computed instance_uuid, image_type, backup_type or user_id: Nova merges the "
    "user's createImage/createBackup metadata over its own values"
)


def now() -> str:
    """The recording time: UTC, microseconds (ISO 8601)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def canonical_uuid(value: Any) -> str | None:
    """``value`` as a lower-case dashed UUID, or None if it is not one."""
    if not isinstance(value, str) or len(value) > 45:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:MAX_TEXT]


def origin_of(creds: Credentials, origins: Mapping[str, str]) -> str:
    """The installation/region that asserted the relation.

    ``relations_origins`` maps a service user id (or, failing that, a service
    project id) to a name; a service user missing from it is its own origin.
    """
    user = creds.service_user_id or ""
    if user in origins:
        return origins[user]
    project = creds.service_project_id or ""
    if project in origins:
        return origins[project]
    return user or project or "unknown"


def _cinder_snapshot_ids(bdm: Any) -> list[str]:
    try:
        mappings = orjson.loads(bdm) if isinstance(bdm, str) else bdm
    except orjson.JSONDecodeError:
        return []
    if not isinstance(mappings, list):
        return []
    return [str(m["snapshot_id"]) for m in mappings if isinstance(m, dict) and m.get("snapshot_id")]


def created_event(
    document: Mapping[str, Any],
    image: Mapping[str, Any],
    creds: Credentials,
    *,
    origin: str,
    request_id: str | None,
    global_request_id: str | None,
    at: str | None = None,
) -> dict[str, Any] | None:
    """The relation a qualifying ``POST /v2/images`` 201 creates, or None if it is not Nova's.

    ``document``: the request body; ``image``: Glance's answer. Recognised:

    * a body with ``block_device_mapping``: a volume-backed snapshot
      (``volume_snapshot``). Its request does not name the instance; an
      ``instance_uuid`` in it is inherited from the volume's image metadata
      (an older instance), so it is kept as asserted only.
    * ``image_type`` ``backup`` -> ``backup``; ``snapshot`` -> ``shelve`` when
      the name ends in ``-shelved`` (the only trace of a shelve), else
      ``snapshot``. ``instance_uuid`` must be a UUID.

    Anything else (no Nova metadata) records nothing.
    """
    image_id = canonical_uuid(image.get("id"))
    if image_id is None:
        return None
    asserted = {k: _text(document[k]) for k in ASSERTED_KEYS if k in document}
    mismatches: list[str] = []
    image_type = document.get("image_type")
    name = document.get("name") if isinstance(document.get("name"), str) else None
    if "block_device_mapping" in document:
        kind = models.VOLUME_SNAPSHOT
        instance = None
        asserted["cinder_snapshot_ids"] = _cinder_snapshot_ids(document["block_device_mapping"])
        asserted["kind_basis"] = "block_device_mapping in the body (volume-backed createImage)"
        if "instance_uuid" in document:
            mismatches.append(
                "instance_uuid is inherited from the boot volume's image metadata (a "
                "volume-backed snapshot request does not name its instance): not recorded "
                "as the instance"
            )
    elif image_type in (models.SNAPSHOT, models.BACKUP):
        instance = canonical_uuid(document.get("instance_uuid"))
        if instance is None:
            return None
        if image_type == models.BACKUP:
            kind = models.BACKUP
            asserted["kind_basis"] = "image_type=backup"
            if not document.get("backup_type"):
                mismatches.append("image_type=backup without a backup_type")
        elif name is not None and name.endswith(SHELVED_SUFFIX):
            kind = models.SHELVE
            asserted["kind_basis"] = (
                f"image_type=snapshot and a name ending in {SHELVED_SUFFIX!r} (the only trace "
                "of a shelve in the request)"
            )
        else:
            kind = models.SNAPSHOT
            asserted["kind_basis"] = "image_type=snapshot"
            if document.get("backup_type"):
                asserted["backup_type_note"] = (
                    "backup_type on a snapshot is inherited (instance booted from a backup) "
                    "or user metadata"
                )
        if "user_id" not in document:
            mismatches.append("no user_id: Nova always sends the requester's")
    else:
        return None
    sent_user = document.get("user_id")
    if sent_user is not None and sent_user != creds.user_id:
        mismatches.append(
            f"user_id {_text(sent_user)!r} differs from the requester {creds.user_id!r} "
            "(user metadata overrode it)"
        )
    if document.get("visibility") == "shared":
        asserted["visibility_note"] = (
            "shared: an admin's snapshot of another project's server (the instance's "
            "project follows as an image member)"
        )
    return {
        "event": "created",
        "at": at or now(),
        "image_id": image_id,
        "instance_uuid": instance,
        "kind": kind,
        "backup_type": _text(document.get("backup_type"))
        if kind in (models.BACKUP, models.SNAPSHOT, models.SHELVE)
        else None,
        "origin": _text(origin),
        "service_user_id": creds.service_user_id,
        "service_project_id": creds.service_project_id,
        "requester_user_id": creds.user_id,
        "requester_project_id": creds.project_id,
        "image_owner": _text(image.get("owner")),
        "image_name": _text(name),
        "base_image_ref": _text(document.get("base_image_ref")),
        "request_id": request_id,
        "global_request_id": global_request_id,
        "image_created_at": image.get("created_at"),
        "provenance": models.SERVICE_TOKEN_CONFIRMED,
        "asserted": asserted,
        "mismatches": mismatches,
    }


def patched_event(image_id: str, ops: Any, request_id: str) -> list[dict[str, Any]]:
    """nova-compute's PATCH: ``owner_id`` (the instance's project), and an added location.

    Only a PATCH that looks like Nova's upload step counts (it sets
    ``image_location`` or ``owner_id``); an rbd fallback adding
    ``/locations/-`` is the upload itself.
    """
    if not isinstance(ops, list):
        return []
    values: dict[str, Any] = {}
    located = False
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace"):
            continue
        path = op.get("path")
        if path == "/owner_id" and isinstance(op.get("value"), str):
            values["owner_id"] = _text(op["value"])
        elif path == "/image_location":
            values["image_location"] = _text(op.get("value"))
        elif isinstance(path, str) and path.startswith("/locations"):
            located = True
    at = now()
    events: list[dict[str, Any]] = []
    if values:
        events.append(
            {"event": "patched", "at": at, "image_id": image_id, "request_id": request_id, **values}
        )
    if located:
        events.append(uploaded_event(image_id, request_id, "location", at))
    return events


def uploaded_event(
    image_id: str, request_id: str, method: str, at: str | None = None
) -> dict[str, Any]:
    return {
        "event": "uploaded",
        "at": at or now(),
        "image_id": image_id,
        "request_id": request_id,
        "method": method,
    }


def member_event(image_id: str, document: Any, request_id: str) -> dict[str, Any] | None:
    member = document.get("member") if isinstance(document, dict) else None
    if not isinstance(member, str) or not member:
        return None
    return {
        "event": "member_added",
        "at": now(),
        "image_id": image_id,
        "request_id": request_id,
        "member": _text(member),
    }


def deleted_event(
    image_id: str, creds: Credentials, *, via: str, request_id: str | None
) -> dict[str, Any]:
    return {
        "event": "deleted",
        "at": now(),
        "image_id": image_id,
        "via": via,
        "request_id": request_id,
        "user_id": creds.user_id,
        "project_id": creds.project_id,
    }


def reconciled_event(image_id: str) -> dict[str, Any]:
    return {
        "event": "deleted",
        "at": now(),
        "image_id": image_id,
        "via": models.VIA_RECONCILE,
        "request_id": None,
        "user_id": None,
        "project_id": None,
    }
