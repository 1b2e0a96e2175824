"""Glance's JSON-patch for images: media types, pointers, operations.

Mirrors ``glance/api/v2/images.py`` (Glance 33.0.0) closely on purpose: a JSON
pointer that propguard decoded differently from Glance would let a caller
check one name and change another. Paths are therefore decoded exactly as
Glance's ``_decode_json_pointer`` does (``~1``, ``~0`` and the ``strip()`` of
each part), and the patch propguard checked is the patch it re-serialises and
forwards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from propguard.glance.attributes import glance_refusal

PATCH_MEDIA_TYPES = {
    "application/openstack-images-v2.1-json-patch": 10,
    "application/openstack-images-v2.0-json-patch": 4,
}
DRAFT4_PATCH_MEDIA_TYPE = "application/openstack-images-v2.0-json-patch"
PATCH_OPERATIONS = ("add", "remove", "replace")
#: Only ``locations`` takes a two-part path (``/locations/N``); Glance 400s the rest.
_PATH_DEPTH = {"locations": {"add": 2, "remove": 2, "replace": 1}}

class PatchError(ValueError):
    """A JSON-patch document Glance's deserializer would reject (400, or 403 for its
    read-only and reserved names), before any change is applied."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class PatchOp:
    op: str
    path: tuple[str, ...]
    value: Any = None
    has_value: bool = False
    #: An ``add`` allowed only as a create (no update right): it must not land
    #: on a property that appeared since propguard read the image.
    absent_only: bool = False

    @property
    def root(self) -> str:
        return self.path[0]

    def to_json(self, draft: int) -> dict[str, Any]:
        pointer = "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in self.path)
        if draft == 4:
            doc: dict[str, Any] = {self.op: pointer}
        else:
            doc = {"op": self.op, "path": pointer}
        if self.has_value:
            doc["value"] = self.value
        return doc


def decode_pointer(pointer: Any) -> tuple[str, ...]:
    """Decode a JSON pointer exactly as Glance does (validation included)."""
    if not isinstance(pointer, str):
        raise PatchError("Pointer must be a string.")
    if not pointer.startswith("/"):
        raise PatchError('Pointer does not start with "/".')
    if re.search(r"/\s*?/", pointer[1:]):
        raise PatchError('Pointer contains adjacent "/".')
    if len(pointer) > 1 and pointer.endswith("/"):
        raise PatchError('Pointer ends with "/".')
    if pointer[1:].strip() == "/":
        raise PatchError("Pointer does not contain a valid token.")
    if re.search("~[^01]", pointer) or pointer.endswith("~"):
        raise PatchError('Pointer contains "~" not part of a recognized escape sequence.')
    return tuple(
        part.replace("~1", "/").replace("~0", "~").strip()
        for part in pointer.lstrip("/").split("/")
    )


def parse_patch(document: Any, draft: int) -> list[PatchOp]:
    """Validate a JSON-patch body the way Glance's deserializer does."""
    if not isinstance(document, list):
        raise PatchError("Request body must be a JSON array of operation objects.")
    ops: list[PatchOp] = []
    for raw in document:
        if not isinstance(raw, dict):
            raise PatchError("Operations must be JSON objects.")
        if draft == 10:
            op = raw.get("op")
            if op not in PATCH_OPERATIONS:
                raise PatchError("Invalid operation: it must be one of add, remove, replace.")
            if "path" not in raw:
                raise PatchError("Unable to find 'path' in JSON Schema change.")
            pointer = raw["path"]
        else:
            present = [k for k in PATCH_OPERATIONS if k in raw]
            if len(present) != 1:
                raise PatchError(
                    'Operation objects must contain exactly one member named "add", '
                    '"remove", or "replace".'
                )
            op = present[0]
            pointer = raw[op]
        path = decode_pointer(pointer)
        if len(path) != _PATH_DEPTH.get(path[0], {}).get(op, 1):
            raise PatchError("Invalid JSON pointer for this resource.")
        has_value = op != "remove"
        if has_value and "value" not in raw:
            raise PatchError(f'Operation "{op}" requires a member named "value".')
        refusal = glance_refusal(path[0])
        if refusal is not None:
            raise PatchError(refusal, 403)
        ops.append(PatchOp(op, path, raw.get("value"), has_value))
    return ops
