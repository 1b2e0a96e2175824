"""The role names lint takes as existing (PG208 reports any other)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def known_roles(given: frozenset[str] | None, values: Mapping[str, Any]) -> frozenset[str] | None:
    """``--known-roles`` as given (None: the role check is off)."""
    return given
