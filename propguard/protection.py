"""What the rules mean for Glance v2 image documents: create, read, PATCH, list filters.

Pure functions of a :class:`~propguard.rules.RuleEngine`, the caller's
:class:`~propguard.identity.Credentials` and Glance's JSON; no WSGI. The
filter (:mod:`propguard.middleware`) feeds them requests and responses.
"""

from __future__ import annotations

from typing import Any

from propguard.credentials import Credentials
from propguard.errors import ApiError, forbidden_property, missing_property
from propguard.glance.attributes import CORE_ATTRIBUTES, PROTECTABLE_CORE_ATTRIBUTES
from propguard.glance.patch import PatchOp
from propguard.rules import RuleEngine

#: Glance refuses longer property names with 400 before any protection check.
MAX_PROPERTY_NAME = 255
_CORE_OP = {"add": "create", "replace": "update", "remove": "delete"}


class ImageProtection:
    """Applies the rules to image documents; ``protected_core`` puts core attributes under them."""

    def __init__(self, protected_core: frozenset[str] = frozenset()) -> None:
        unknown = protected_core - PROTECTABLE_CORE_ATTRIBUTES
        if unknown:
            raise ValueError(
                "propguard: protect_core_attributes accepts only "
                f"{sorted(PROTECTABLE_CORE_ATTRIBUTES)}, not {sorted(unknown)}"
            )
        self.protected_core = protected_core
        #: Keys of an image document that are never subject to the rules.
        self.free_keys = CORE_ATTRIBUTES - protected_core

    def is_rule_key(self, key: str) -> bool:
        return key not in self.free_keys

    @staticmethod
    def require(engine: RuleEngine, name: str, op: str, creds: Credentials) -> None:
        if not engine.allowed(name, op, creds):
            raise forbidden_property(name)

    def check_create(
        self, properties: dict[str, Any], creds: Credentials, engine: RuleEngine
    ) -> None:
        """``create`` for every extra property; the first denial is Glance's 403."""
        for key in properties:
            check_name_length(key)
            if self.is_rule_key(key):
                self.require(engine, key, "create", creds)

    def hide_unreadable(self, images: list[Any], creds: Credentials, engine: RuleEngine) -> bool:
        """Remove, in place, what the caller cannot read; True if anything was removed."""
        can_read = engine.checker("read", creds)
        free = self.free_keys
        changed = False
        # Images of one page mostly share their key sets: decide once per set.
        hidden_for: dict[tuple[str, ...], list[str]] = {}
        for image in images:
            if not isinstance(image, dict):
                continue
            keys = tuple(image)
            hidden = hidden_for.get(keys)
            if hidden is None:
                hidden = hidden_for[keys] = [k for k in keys if k not in free and not can_read(k)]
            for key in hidden:
                del image[key]
            changed = changed or bool(hidden)
        return changed

    def check_patch(
        self,
        ops: list[PatchOp],
        existing: set[str],
        creds: Credentials,
        engine: RuleEngine,
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
        exists = set(existing)
        checked: list[PatchOp] = []
        for op in ops:
            name = op.root
            if not self.is_rule_key(name):
                checked.append(op)
                continue
            check_name_length(name)
            if name in self.protected_core:
                self.require(engine, name, _CORE_OP[op.op], creds)
                checked.append(op)
                continue
            readable = engine.allowed(name, "read", creds)
            if op.op == "add":
                if name in exists and readable:
                    if draft == 4:
                        # Glance's _do_add: a visible property is "already present"
                        # in draft 4, before (and whatever) the update right.
                        raise ApiError(409, f"Property {name} already present.")
                    self.require(engine, name, "update", creds)
                elif readable:
                    self.require(engine, name, "create", creds)
                    if not engine.allowed(name, "update", creds):
                        op = PatchOp(op.op, op.path, op.value, op.has_value, absent_only=True)
                else:
                    self.require(engine, name, "create", creds)
                    self.require(engine, name, "update", creds)
                    if name in exists:
                        op = PatchOp("replace", op.path, op.value, True)
                exists.add(name)
            elif op.op == "replace":
                if not readable or name not in exists:
                    raise missing_property(name)
                self.require(engine, name, "update", creds)
            else:  # remove
                if not readable or name not in exists:
                    raise missing_property(name)
                self.require(engine, name, "delete", creds)
                exists.discard(name)
            checked.append(op)
        return checked


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
