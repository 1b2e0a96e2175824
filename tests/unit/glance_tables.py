"""Glance's own test tables (reference §3.1-§3.2) shared by the roles and policies tests.

Glance runs the same rows in both formats (its test mixin); so do we.
"""

from __future__ import annotations

from propguard.rules import OPERATIONS

#: ``CONFIG_SECTIONS`` of glance/tests/unit/common/test_property_utils.py: the
#: sections of Glance's test rules file, after its injected ``os_glance.*``.
GLANCE_CONFIG_SECTIONS = [
    "os_glance.*",
    "^x_owner_.*",
    "spl_create_prop",
    "spl_read_prop",
    "spl_read_only_prop",
    "spl_update_prop",
    "spl_update_only_prop",
    "spl_delete_prop",
    "spl_delete_empty_prop",
    "^x_all_permitted.*",
    "^x_none_permitted.*",
    "x_none_read",
    "x_none_update",
    "x_none_delete",
    "x_case_insensitive",
    "x_foo_matcher",
    "x_foo_*",
    ".*",
]

#: Rows (test name, property, op, roles, expected) both Glance test classes run.
SHARED_ROWS = [
    *[(f"{op}_all_permitted", "x_all_permitted", op, [""], True) for op in OPERATIONS],
    *[(f"{op}_none_permitted", "x_none_permitted", op, [""], False) for op in OPERATIONS],
    ("read_none/create", "x_none_read", "create", ["admin", "member"], True),
    ("read_none/read", "x_none_read", "read", [""], False),
    ("read_none/update", "x_none_read", "update", [""], False),
    ("read_none/delete", "x_none_read", "delete", [""], False),
    ("update_none/create", "x_none_update", "create", ["admin", "member"], True),
    ("update_none/read", "x_none_update", "read", ["admin", "member"], True),
    ("update_none/update", "x_none_update", "update", [""], False),
    ("update_none/delete", "x_none_update", "delete", ["admin", "member"], True),
    ("delete_none/create", "x_none_delete", "create", ["admin", "member"], True),
    ("delete_none/read", "x_none_delete", "read", ["admin", "member"], True),
    ("delete_none/update", "x_none_delete", "update", ["admin", "member"], True),
    ("delete_none/delete", "x_none_delete", "delete", [""], False),
    *[(f"return_first_match/{op}", "x_foo_matcher", op, [""], False) for op in OPERATIONS],
]
