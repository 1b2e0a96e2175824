"""What the rules mean for changes to Glance v2 images: create, PATCH, quota, task input.

Pure functions of one caller's :class:`~propguard.view.Reader` (the rules as
the database folds names, the caller's credentials) and Glance's JSON; no
WSGI. What a caller may *see* is the view's alone (:mod:`propguard.view`);
these checks ask it too. The filter (:mod:`propguard.middleware`) feeds them
requests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from propguard.errors import ApiError, forbidden_property, missing_property
from propguard.glance.attributes import (
    CORE_ATTRIBUTES,
    CREATE_READ_ONLY,
    RESERVED_NAMESPACES,
    is_object_attribute,
)
from propguard.glance.collation import NameFolding
from propguard.glance.patch import DRAFT4_PATCH_MEDIA_TYPE, PATCH_MEDIA_TYPES, PatchOp
from propguard.glance.routes import PUBLIC_TASK_TYPE
from propguard.view import Reader, ViewConfig

#: Glance refuses longer property names with 400 before any protection check.
MAX_PROPERTY_NAME = 255
_FOUR_BYTE = re.compile("[\U00010000-\U0010ffff]")
#: Glance's 413 without its numbers (they would count what the caller cannot read).
QUOTA_MESSAGE = "The request exceeds a limit of the image service."
_CORE_OP = {"add": "create", "replace": "update", "remove": "delete"}


@dataclass(frozen=True)
class PatchPlan:
    """The checked patch to send to Glance, and in which JSON-patch draft."""

    ops: list[PatchOp]
    draft: int
    #: Property names the patch adds that the image does not hold (as the
    #: database spells them): the rows Glance will insert.
    new_names: frozenset[str] = frozenset()

    @property
    def media_type(self) -> str:
        return next(t for t, d in PATCH_MEDIA_TYPES.items() if d == self.draft)

    def body(self) -> list[dict[str, Any]]:
        return [op.to_json(self.draft) for op in self.ops]


class ImageProtection:
    """Applies the rules to changes of image documents, as one caller's :class:`Reader` sees them."""

    def __init__(self, config: ViewConfig | None = None, property_quota: int = -1) -> None:
        config = config if config is not None else ViewConfig()
        self.config = config
        self.protected_core = config.protected_core
        #: Keys of an image document that are never subject to the rules.
        self.free_keys = config.free_keys
        #: Most extra properties an image may hold *as its caller sees it* (-1: no limit).
        self.property_quota = property_quota
        #: How Glance's database compares property names.
        self.folding: NameFolding = config.folding

    def is_counted(self, key: str) -> bool:
        """Does ``key`` count against the property quota (an extra property, as in Glance)?"""
        return key not in CORE_ATTRIBUTES and not key.startswith(RESERVED_NAMESPACES)

    def _quota_exceeded(self, count: int) -> None:
        if 0 <= self.property_quota < count:
            raise ApiError(413, QUOTA_MESSAGE)

    def is_rule_key(self, key: str) -> bool:
        return key not in self.free_keys

    @staticmethod
    def require(reader: Reader, name: str, op: str) -> None:
        """``op`` on ``name`` for the reader's caller, else Glance's 403."""
        if not reader.may(name, op):
            raise forbidden_property(name)

    def check_create(
        self,
        properties: dict[str, Any],
        reader: Reader,
        inject: Mapping[str, str] | None = None,
    ) -> None:
        """``create`` for every extra property; the first denial is Glance's 403.

        Names of Glance's image objects that are no image attribute are refused
        for everyone: stored, they would be properties no PATCH could change.
        So are the read-only attributes Glance's create would store as extra
        properties (``os_hash_algo``, ``os_hash_value``: see
        :data:`~propguard.glance.attributes.CREATE_READ_ONLY`), with the 403
        its PATCH gives them.
        ``inject``: the operator's properties, set (in place) whatever the body
        sent for those names, or any spelling the database equates with them;
        the caller needs no ``create`` right for them.
        """
        inject = inject or {}
        if inject:
            injected = StoredNames(inject, self.folding)
            for key in [k for k in properties if injected.find(k) is not None]:
                del properties[key]
            properties.update(inject)
        check_tags(properties.get("tags"))
        self._quota_exceeded(sum(1 for key in properties if self.is_counted(key)))
        names = StoredNames((), self.folding)
        for key in properties:
            if self.is_rule_key(key):
                self._check_new_name(key)
                same = names.find(key)
                if same is not None:
                    raise ApiError(
                        400, f"Property names {same} and {key} are the same to the image database."
                    )
                names.add(key)
        for key in properties:
            check_name_length(key)
            if key in CREATE_READ_ONLY:
                raise ApiError(403, f"Attribute '{key}' is read-only.")
            if is_object_attribute(key) or key.startswith(RESERVED_NAMESPACES):
                # Glance refuses os_glance_* on image create but not in an
                # import task's image_properties (e.g. os_glance_stage_host,
                # which a later DELETE follows with the deleter's token).
                raise forbidden_property(key)
            if self.is_rule_key(key) and key not in inject:
                self.require(reader, key, "create")

    def plan_patch(
        self,
        ops: list[PatchOp],
        stored: Callable[[], set[str]],
        reader: Reader,
        draft: int,
    ) -> PatchPlan:
        """Screen and check ``ops`` and choose the draft to send them in.

        ``stored()`` reads the image's stored property names (hidden ones
        included); it is called only when a rule must be checked. First the
        whole patch is screened for what Glance's handlers get wrong whatever
        the rules say (:func:`screen_patch`), then each op is checked
        (:meth:`check_patch`). A draft-10 patch whose adds may only create (no
        update right) is sent as draft 4, unchanged in meaning except that
        Glance refuses an add over a property that appeared since ``stored()``
        was read (409 "already present") where draft 10 would overwrite it.
        """
        ops = screen_patch(ops, draft)
        if not any(self.is_rule_key(op.root) for op in ops):
            return PatchPlan(ops, draft)
        existing = stored()
        checked = self.check_patch(ops, existing, reader, draft)
        self.check_patch_quota(ops, existing, reader)
        ops = checked
        if draft == 10 and _only_creating_adds(ops):
            draft = PATCH_MEDIA_TYPES[DRAFT4_PATCH_MEDIA_TYPE]
        new_names = frozenset(
            op.root
            for op in ops
            if op.op in ("add", "replace") and self.is_rule_key(op.root) and op.root not in existing
        )
        return PatchPlan(ops, draft, new_names)

    def _check_new_name(self, name: str) -> None:
        """Names a UCA collation could equate in ways the folding does not model: 400."""
        if not self.folding.is_safe_new_name(name):
            raise ApiError(400, f"Property name {name} cannot be stored by the image database.")

    def check_patch_quota(self, ops: list[PatchOp], existing: set[str], reader: Reader) -> None:
        """``property_quota`` on the properties the caller can read, after the patch.

        Glance counts every stored property (``image_property_quota``), so its
        413 tells how many the caller cannot read. Here the count and the
        trigger (an ``add`` of a name the caller does not see stored) depend
        only on what the caller can read: an add of an unreadable name always
        triggers the check and never counts, whether or not it is stored.
        """
        if self.property_quota < 0:
            return
        can_read = reader.can_read
        fold = self.folding.fold
        visible = {fold(n) for n in existing if self.is_counted(n) and can_read(n)}
        added = False
        for op in ops:
            name = op.root
            if not self.is_counted(name):
                continue
            key = fold(name)
            if op.op == "add":
                added = added or key not in visible
                if can_read(name):
                    visible.add(key)
            elif op.op == "remove":
                visible.discard(key)
        if added:
            self._quota_exceeded(len(visible))

    def check_task_input(
        self,
        document: Any,
        reader: Reader,
        inject: Mapping[str, str] | None = None,
    ) -> None:
        """``POST /v2/tasks``: only ``import`` tasks, ``create`` for their ``image_properties``.

        Glance creates ``api_image_import`` and ``location_import`` tasks itself
        after the checks of the import and locations routes (method, image
        state, ``glance-download``); through the tasks API they would skip them.
        """
        task_type = document.get("type") if isinstance(document, dict) else None
        if task_type is not None and task_type != PUBLIC_TASK_TYPE:
            raise ApiError(
                403,
                f"Tasks of type '{task_type}' are created by the image service itself; "
                "use the image import API.",
            )
        task_input = document.get("input") if isinstance(document, dict) else None
        if inject and isinstance(task_input, dict) and task_input.get("image_properties") is None:
            task_input["image_properties"] = {}
        props = task_input.get("image_properties") if isinstance(task_input, dict) else None
        if isinstance(props, dict):
            self.check_create(props, reader, inject)
        elif props is not None:
            raise ApiError(400, "'image_properties' must be a JSON object.")

    def check_patch(
        self,
        ops: list[PatchOp],
        existing: set[str],
        reader: Reader,
        draft: int = 10,
    ) -> list[PatchOp]:
        """Apply Glance's semantics op by op on a model of the stored properties.

        ``existing``: the property names as stored (hidden ones included).
        Raises :class:`ApiError` (403 readable but protected, 409 unreadable or
        absent, 409 draft-4 "already present"). Returns the ops to forward.

        An ``add`` of a property the caller cannot read may land on a stored
        value it must neither see nor lose, so it needs both ``create`` and
        ``update``: the answer then depends on the rules only, never on
        whether the property exists. With both, it is sent as ``replace`` when
        the property exists, so Glance's draft-4 "already present" conflict
        cannot reveal it either.
        """
        exists = StoredNames(existing, self.folding)
        checked: list[PatchOp] = []
        for op in ops:
            name = op.root
            if not self.is_rule_key(name):
                checked.append(op)
                continue
            check_name_length(name)
            if name in self.protected_core:
                self.require(reader, name, _CORE_OP[op.op])
                checked.append(op)
                continue
            readable = reader.can_read(name)
            if op.op == "add":
                # The stored property the database would take this name for:
                # itself, or (MySQL/MariaDB) another spelling of the same key.
                stored = exists.find(name)
                if stored is None:
                    self._check_new_name(name)
                if stored is not None and readable:
                    if draft == 4:
                        # Glance's _do_add: a visible property is "already present"
                        # in draft 4, before (and whatever) the update right.
                        raise ApiError(409, f"Property {name} already present.")
                    self.require(reader, name, "update")
                    if stored != name:
                        op = PatchOp("replace", (stored,), op.value, True)
                elif readable:
                    self.require(reader, name, "create")
                    if not reader.may(name, "update"):
                        op = PatchOp(op.op, op.path, op.value, op.has_value, absent_only=True)
                else:
                    self.require(reader, name, "create")
                    self.require(reader, name, "update")
                    if stored is not None:
                        # Glance would insert a second spelling of the key (500).
                        op = PatchOp("replace", (stored,), op.value, True)
                exists.add(stored or name)
            elif op.op == "replace":
                if not readable or name not in exists:
                    raise missing_property(name)
                self.require(reader, name, "update")
            else:  # remove
                if not readable or name not in exists:
                    raise missing_property(name)
                self.require(reader, name, "delete")
                exists.discard(name)
            checked.append(op)
        return checked


class StoredNames:
    """Property names as stored, found the way the database finds them (its collation)."""

    def __init__(self, names: Iterable[str], folding: NameFolding) -> None:
        self.folding = folding
        self.names: set[str] = set()
        self.by_key: dict[str, str] = {}
        for name in names:
            self.add(name)

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def add(self, name: str) -> None:
        self.names.add(name)
        if not self.folding.is_identity:
            for key in self.folding.stored_keys(name):
                self.by_key.setdefault(key, name)

    def discard(self, name: str) -> None:
        self.names.discard(name)
        self.by_key = {k: v for k, v in self.by_key.items() if v != name}

    def find(self, name: str) -> str | None:
        """``name`` if stored, else the stored name the database equates with it, else None."""
        if name in self.names:
            return name
        if self.folding.is_identity:
            return None
        return self.by_key.get(self.folding.fold(name))


def screen_patch(ops: list[PatchOp], draft: int) -> list[PatchOp]:
    """Refuse or rewrite, for every caller and whatever the rules, what Glance's
    PATCH handlers would get wrong (``glance/api/v2/images.py``, Glance 33):

    * a name of Glance's image objects that is no image attribute
      (``image_id``, ``extra_properties``, ``__class__``...): ``_do_add`` and
      ``_do_replace`` would ``setattr`` it (``image_id`` saves the caller's
      image over another one; others are dropped or crash Glance): 403;
    * ``stores``: Glance refuses it on create (read-only) but stores it as a
      plain property on PATCH, where it would escape the rules: 403, as on create;
    * ``add /owner`` (draft 10): ``_do_add`` lacks ``_do_replace``'s "Owner
      can't be updated by non admin." check, and Glance commits the new owner
      before answering 403: sent as ``replace``, which refuses before writing;
    * tags with 4-byte characters: Glance commits the other changes, then
      refuses the tags (400): refused first.
    """
    screened: list[PatchOp] = []
    for op in ops:
        name = op.root
        if is_object_attribute(name):
            raise forbidden_property(name)
        if name == "stores":
            raise ApiError(403, "Attribute 'stores' is read-only.")
        if name == "tags" and op.has_value:
            check_tags(op.value)
        if name == "owner" and op.op == "add" and draft == 10:
            op = PatchOp("replace", op.path, op.value, op.has_value)
        screened.append(op)
    return screened


def check_tags(tags: Any) -> None:
    """Glance refuses 4-byte characters in tags only after it saved the rest."""
    values = tags if isinstance(tags, list) else [tags]
    if any(isinstance(t, str) and _FOUR_BYTE.search(t) for t in values):
        raise ApiError(400, "Param values can't contain 4 byte unicode.")


def check_name_length(name: str) -> None:
    if len(name) > MAX_PROPERTY_NAME:
        raise ApiError(400, "Custom property should not be greater than 255 characters.")


def matches_filters(image: Any, filters: dict[str, list[str]]) -> bool:
    """Does ``image`` carry every filtered property, by exact name, with the value asked?

    Values compare case-insensitively, as the most lenient supported database
    collation does, so that readable filters keep working as before there.
    """
    if not isinstance(image, dict):
        return False
    for key, values in filters.items():
        actual = image.get(key)
        if not isinstance(actual, str) or any(actual.casefold() != v.casefold() for v in values):
            return False
    return True


def _only_creating_adds(ops: list[PatchOp]) -> bool:
    """Does the patch create something it may not update, with no add that must overwrite?"""
    adds = [op for op in ops if op.op == "add" and op.root != "locations"]
    return any(op.absent_only for op in adds) and all(op.absent_only for op in adds)
