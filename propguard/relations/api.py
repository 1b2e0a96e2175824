"""``GET /v2/instances/{instance_uuid}/images``: the relations of one instance, newest first.

Who sees what:

* a confirmed service token with a relations service role: every relation;
* anyone else authenticated: the relations of the images Glance shows them
  now, asked of Glance with their own request
  (:mod:`propguard.relations.visibility`: its policy, the image's current
  owner, visibility and membership); deleted images (which Glance shows to
  nobody) only to admins (``admin`` role);
* unauthenticated: 401, for every instance alike.

Every input is checked before it reaches the database (a NUL, a surrogate,
a length over the column's: 400), and no database error becomes a 500: a
value the database still refuses is a 400, anything else a 503.

A relation repeats image properties (``instance_uuid``, ``backup_type``,
``base_image_ref``...): each is shown as the image API would show it, through
the caller's :class:`~propguard.view.Reader`. A caller who may not read
``instance_uuid`` sees no relation at all (the route itself names the
instance), and a filter on a property the caller cannot read matches nothing,
as the image list's does.

An instance with no relation the caller may see (deleted ones included) is
a 404 for every caller, so the route tells nothing about instances the
caller has no image of. Query: ``kind``, ``backup_type``, ``origin``,
``include_deleted=true``, ``limit``, ``marker`` (the last ``image_id`` of the
previous page); anything else, or a value out of range, is a 400.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import orjson
import webob

from propguard.credentials import Credentials
from propguard.errors import ApiError
from propguard.relations import models
from propguard.relations.events import DOES_NOT_PROVE, canonical_uuid
from propguard.relations.store import RelationStore, StoreRefused, StoreUnavailable
from propguard.relations.visibility import GlanceUnavailable
from propguard.view import Reader

#: Fields of a relation that repeat an image property, and that property's name.
PROPERTY_FIELDS = {
    "instance_uuid": "instance_uuid",
    "kind": "image_type",
    "backup_type": "backup_type",
    "base_image_ref": "base_image_ref",
    "requester_user_id": "user_id",
    "instance_project_id": "owner_id",
}
#: Query filters on a relation field that repeats an image property.
PROPERTY_FILTERS = {"kind": "image_type", "backup_type": "backup_type"}
#: Notes of the asserted provenance, and the image property each tells of.
ASSERTED_NOTES = {
    "kind_basis": "image_type",
    "backup_type_note": "backup_type",
    "cinder_snapshot_ids": "block_device_mapping",
    "visibility_note": "visibility",
}

INSTANCE_IMAGES = re.compile(r"^/v2(?:\.\d+)?/instances/(?P<instance>[^/]+)/images/?$")
PARAMS = frozenset({"kind", "backup_type", "origin", "include_deleted", "limit", "marker"})


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="microseconds") + "Z"


def _single(query: webob.multidict.MultiDict, name: str) -> str | None:
    values = query.getall(name)
    if not values:
        return None
    if len(values) > 1:
        raise ApiError(400, f"Query parameter {name!r} given more than once.")
    return values[0]


#: Characters no supported database stores in a text column (PostgreSQL refuses NUL
#: with a DataError) or that cannot be encoded (lone surrogates).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(name: str, value: str, *, most: int = 255) -> str:
    """``value`` if every supported database can compare it, else a 400 naming ``name``."""
    if not 0 < len(value) <= most:
        raise ApiError(400, f"{name} must be 1 to {most} characters.")
    if _UNSTORABLE.search(value):
        raise ApiError(400, f"{name} holds a character that is not allowed (NUL or a surrogate).")
    return value


#: ``visible(environ, image ids) -> {image id: the image as Glance shows the caller}``.
Visible = Callable[[Mapping[str, Any], list[str]], dict[str, dict]]


class InstanceImagesApi:
    """The route; what a caller sees of live images is what Glance shows it (``visible``)."""

    def __init__(
        self,
        store: RelationStore,
        relations_service_roles: frozenset[str],
        *,
        reader_for: Callable[[Credentials], Reader],
        visible: Visible,
        limit_default: int = 25,
        limit_max: int = 1000,
    ) -> None:
        self.store = store
        #: The caller's view of images (the property filter's own).
        self.reader_for = reader_for
        #: Glance's answer to "which of these images does this caller see".
        self.visible = visible
        self.relations_service_roles = relations_service_roles
        self.limit_default = limit_default
        self.limit_max = limit_max

    def __call__(self, request: webob.Request, instance: str, creds: Credentials) -> webob.Response:
        if request.method not in ("GET", "HEAD"):
            raise ApiError(405, "Only GET is allowed here.", {"Allow": "GET, HEAD"})
        if not creds.authenticated:
            raise ApiError(401, "Authentication required.")
        instance_uuid = canonical_uuid(instance)
        if instance_uuid is None:
            raise ApiError(400, f"Invalid instance UUID: {instance[:64]!r}.")
        try:
            query = request.GET
        except UnicodeDecodeError:
            raise ApiError(400, "The request is not valid UTF-8.") from None
        unknown = sorted(set(query) - PARAMS)
        if unknown:
            raise ApiError(
                400,
                f"Unknown query parameter(s): {', '.join(unknown)[:256]} (allowed: "
                f"{', '.join(sorted(PARAMS))}).",
            )
        filters = self._filters(query)
        limit = self._limit(_single(query, "limit"))
        marker = _single(query, "marker")
        reader = self.reader_for(creds)
        if not reader.can_read("instance_uuid"):
            # Every relation would tell this caller an image's instance_uuid.
            raise ApiError(404, f"No image relations found for instance {instance_uuid}.")
        # A filter on a property the caller cannot read matches nothing.
        blind = any(
            filters[key] is not None and not reader.can_read(name)
            for key, name in PROPERTY_FILTERS.items()
        )
        scope = _Scope(self, request.environ, creds)
        if not scope.sees_deleted:
            filters["include_deleted"] = False
        try:
            after = None
            if marker is not None and not blind:
                after = self._marker_row(instance_uuid, marker, filters, scope)
            shown = [] if blind else scope.rows(instance_uuid, filters, limit + 1, after)
            if not shown and after is None and not scope.any(instance_uuid):
                raise ApiError(404, f"No image relations found for instance {instance_uuid}.")
        except StoreUnavailable:
            raise ApiError(503, "The relations store is unavailable; try again later.") from None
        except StoreRefused:
            raise ApiError(400, "The relations store refused a query parameter.") from None
        except GlanceUnavailable:
            raise ApiError(
                503, "Glance cannot tell which images you see; try again later."
            ) from None
        more = len(shown) > limit
        shown = shown[:limit]
        base = f"/v2/instances/{instance_uuid}/images"
        echo = self._echo(query)
        body: dict[str, Any] = {
            "images": [present(row, reader, image) for row, image in shown],
            "first": base + (f"?{urlencode(echo)}" if echo else ""),
        }
        if more and shown:
            body["next"] = f"{base}?{urlencode({**echo, 'marker': shown[-1][0]['image_id']})}"
        response = webob.Response(
            body=orjson.dumps(body), content_type="application/json", charset=None
        )
        return response

    # -- parameters ------------------------------------------------------

    def _filters(self, query) -> dict[str, Any]:
        kind = _single(query, "kind")
        if kind is not None and kind not in models.KINDS:
            raise ApiError(400, f"Invalid kind {kind[:64]!r}: one of {', '.join(models.KINDS)}.")
        backup_type = _single(query, "backup_type")
        if backup_type is not None:
            storable("backup_type", backup_type)
        origin = _single(query, "origin")
        if origin is not None:
            storable("origin", origin)
        include = _single(query, "include_deleted")
        if include is not None and include.lower() not in ("true", "false"):
            raise ApiError(400, "include_deleted must be true or false.")
        return {
            "kind": kind,
            "backup_type": backup_type,
            "origin": origin,
            "include_deleted": include is not None and include.lower() == "true",
        }

    def _echo(self, query) -> dict[str, str]:
        """The caller's filters and limit, in the caller's order, for the links."""
        return {k: v for k, v in query.items() if k != "marker"}

    def _limit(self, text: str | None) -> int:
        if text is None:
            return self.limit_default
        try:
            limit = int(text, 10)
        except ValueError:
            raise ApiError(400, f"limit must be an integer, not {text[:32]!r}.") from None
        if limit < 1:
            raise ApiError(400, "limit must be at least 1.")
        return min(limit, self.limit_max)

    def sees_all(self, creds: Credentials) -> bool:
        """A relations service token: every relation, without asking Glance."""
        return bool(creds.service_roles & self.relations_service_roles)

    def _marker_row(self, instance_uuid, marker, filters, scope) -> Mapping[str, Any]:
        image_id = canonical_uuid(marker)
        row = self.store.get(image_id) if image_id else None
        if (
            row is None
            or row["instance_uuid"] != instance_uuid
            or (row["deleted_at"] is not None and not filters["include_deleted"])
            or any(
                filters[k] is not None and row[k] != filters[k]
                for k in ("kind", "backup_type", "origin")
            )
            or not scope.shown([row])
        ):
            raise ApiError(400, f"marker {marker[:64]!r} is not a relation in this list.")
        return row


class _Scope:
    """What one caller sees: every relation (relations service token), or the live
    relations of images Glance shows it, plus deleted ones for an admin."""

    def __init__(self, api: InstanceImagesApi, environ: Mapping[str, Any], creds: Credentials):
        self.api = api
        self.environ = environ
        self.all = api.sees_all(creds)
        #: Deleted images are shown by Glance to nobody: their relations are for
        #: relations service tokens and admins (operators) only.
        self.sees_deleted = self.all or "admin" in creds.roles

    def shown(self, rows: list[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], dict | None]]:
        """``rows`` this caller may see, each with Glance's document of its image (None:
        not asked: a relations service token, or a deleted image shown to an admin)."""
        if self.all:
            return [(row, None) for row in rows]
        live = [row["image_id"] for row in rows if row["deleted_at"] is None]
        images = self.api.visible(self.environ, live) if live else {}
        result: list[tuple[Mapping[str, Any], dict | None]] = []
        for row in rows:
            if row["deleted_at"] is not None:
                if self.sees_deleted:
                    result.append((row, None))
            elif row["image_id"] in images:
                result.append((row, images[row["image_id"]]))
        return result

    def rows(self, instance_uuid, filters, wanted: int, after) -> list[tuple]:
        """Up to ``wanted`` visible relations, newest first, after ``after``.

        Reads the store in chunks and keeps what Glance shows; the relations of
        one instance are few (Nova's snapshots and backups of it), so this ends
        quickly even for a caller who sees none of them.
        """
        chunk = wanted if self.all else max(wanted, CHUNK)
        shown: list[tuple] = []
        while len(shown) < wanted:
            rows = self.api.store.list_for_instance(
                instance_uuid, limit=chunk, after=after, **filters
            )
            shown += self.shown(rows)
            if len(rows) < chunk:
                break
            after = rows[-1]
        return shown[:wanted]

    def any(self, instance_uuid: str) -> bool:
        """Whether the caller sees any relation of the instance (deleted ones included)."""
        filters = {
            "kind": None,
            "backup_type": None,
            "origin": None,
            "include_deleted": self.sees_deleted,
        }
        return bool(self.rows(instance_uuid, filters, 1, None))


#: Relations read from the store per question asked of Glance.
CHUNK = 100


def present(
    row: Mapping[str, Any], reader: Reader | None = None, image: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One relation as the API (``reader``: what the caller may see) and ``propguard
    relations show --json`` (an operator's tool: everything) give it.

    ``image``: the image as Glance showed it to the caller just now; its owner
    and name are today's, not the ones recorded at create.
    """
    proves = [
        f"a confirmed service token of service user {row['service_user_id']} "
        f"(project {row['service_project_id']}) relayed the image create"
    ]
    if row["compute_patched_at"] is not None:
        proves.append(
            "nova-compute then set the image's instance data (owner_id "
            f"{row['instance_project_id']!r}) under the same request id"
        )
    if row["upload_completed_at"] is not None:
        proves.append(
            f"the image data was uploaded ({row['upload_method']}) under the same request id"
        )
    document = {
        "image_id": row["image_id"],
        "instance_uuid": row["instance_uuid"],
        "kind": row["kind"],
        "backup_type": row["backup_type"],
        "origin": row["origin"],
        "image_owner": row["image_owner"],
        "image_name": row["image_name"],
        "requester_user_id": row["requester_user_id"],
        "requester_project_id": row["requester_project_id"],
        "instance_project_id": row["instance_project_id"],
        "base_image_ref": row["base_image_ref"],
        "request_id": row["request_id"],
        "global_request_id": row["global_request_id"],
        "created_at": _iso(row["recorded_at"]),
        "image_created_at": _iso(row["image_created_at"]),
        "upload_completed_at": _iso(row["upload_completed_at"]),
        "deleted": row["deleted_at"] is not None,
        "deleted_at": _iso(row["deleted_at"]),
        "deleted_reason": row["deleted_reason"],
        "deleted_request_id": row["deleted_request_id"],
        "provenance": {
            "basis": row["provenance"],
            "service_user_id": row["service_user_id"],
            "service_project_id": row["service_project_id"],
            "proves": proves,
            "does_not_prove": DOES_NOT_PROVE,
            "asserted": row["asserted"],
            "mismatches": row["mismatches"],
        },
    }
    if image is not None:
        document["image_owner"] = image.get("owner")
        document["image_name"] = image.get("name")
    return document if reader is None else _as_seen_by(document, reader)


def _as_seen_by(document: dict[str, Any], reader: Reader) -> dict[str, Any]:
    """``document`` without what repeats an image property ``reader``'s caller cannot read.

    A hidden field is ``null`` (the layout stays the same for every caller);
    the asserted values go through the view like any image properties, their
    notes with the property they tell of; the mismatches, which quote
    asserted values, only to a caller who may read all of them.
    """
    for field, name in PROPERTY_FIELDS.items():
        if not reader.can_read(name):
            document[field] = None
    provenance = document["provenance"]
    asserted = provenance["asserted"] or {}
    shown = reader.properties({k: v for k, v in asserted.items() if k not in ASSERTED_NOTES})
    for note, name in ASSERTED_NOTES.items():
        if note in asserted and reader.can_read(name):
            shown[note] = asserted[note]
    provenance["asserted"] = shown
    told = set(PROPERTY_FIELDS.values()) | set(ASSERTED_NOTES.values())
    if not all(reader.can_read(name) for name in told):
        provenance["mismatches"] = []
    return document
