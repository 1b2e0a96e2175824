"""ImageProtection: Glance's PATCH/create/read semantics on documents (reference §2.2-§2.4)."""

from __future__ import annotations

import pytest

from propguard.credentials import Credentials
from propguard.errors import ApiError
from propguard.glance.patch import PatchOp
from propguard.protection import ImageProtection, matches_filters
from propguard.rules import parse_rules_text
from propguard.rules.engine import compile_rules
from propguard.view import ImageView, ViewConfig

RULES = """\
[^x_owner_.*]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member

[x_none_read]
create = admin,member
read = !
update = !
delete = !

[x_upsert]
create = admin,member
read = admin
update = admin,member
delete = admin

[x_ro]
create = admin
read = admin,member
update = admin
delete = admin

[x_nodel]
create = admin,member
read = admin,member
update = admin,member
delete = !

[^(locations|direct_url)$]
create = admin
read = admin,service:service
update = admin
delete = admin

[.*]
create = admin
read = admin
update = admin
delete = admin
"""
STORED = {"x_owner_a", "x_none_read", "x_upsert", "x_ro", "x_nodel", "foo"}
MEMBER = Credentials(authenticated=True, roles=frozenset({"member", "reader"}))
RELAYED = Credentials(
    authenticated=True, roles=frozenset({"member"}), service_roles=frozenset({"service"})
)


@pytest.fixture(scope="module")
def engine():
    return compile_rules(parse_rules_text("rules.conf", RULES, "roles"))


def op(kind: str, name: str) -> PatchOp:
    return PatchOp(kind, (name,), "v", kind != "remove")


def reader(engine, creds=MEMBER, protection=None):
    """``creds``'s view under ``engine``, with ``protection``'s operator options."""
    config = protection.config if protection is not None else ViewConfig()
    return ImageView(config).reader(engine, creds)


def status(protection, engine, ops, draft=10, creds=MEMBER):
    try:
        protection.check_patch(ops, STORED, reader(engine, creds, protection), draft)
    except ApiError as exc:
        return exc.status, exc.message
    return 200, ""


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        # reference §2.4 matrix, caller reader,member
        ("replace", "x_none_read", 409),  # unreadable
        ("remove", "x_none_read", 409),
        ("replace", "foo", 409),
        ("remove", "foo", 409),
        ("add", "foo", 403),  # unreadable, no create right
        ("add", "x_none_read", 403),  # unreadable, may create but not update (Glance: 500)
        ("add", "x_upsert", 200),  # unreadable, may create and update (Glance: 500)
        ("replace", "x_ro", 403),  # readable, not updatable
        ("add", "x_ro", 403),  # readable, exists: needs update
        ("remove", "x_ro", 403),
        ("remove", "x_nodel", 403),
        ("add", "brand_new", 403),  # falls to [.*]
        ("remove", "x_owner_absent", 409),  # readable, not there
        ("replace", "x_owner_a", 200),
        ("remove", "x_owner_a", 200),
        ("add", "x_owner_new", 200),
        ("replace", "name", 200),  # core attribute: not under the rules
    ],
)
def test_patch_matrix(engine, kind, name, expected):
    assert status(ImageProtection(), engine, [op(kind, name)])[0] == expected


def test_messages_repeat_only_the_callers_name(engine):
    protection = ImageProtection()
    assert status(protection, engine, [op("replace", "foo")]) == (
        409,
        "Property foo does not exist.",
    )
    assert status(protection, engine, [op("replace", "x_ro")]) == (
        403,
        "Attribute 'x_ro' is reserved.",
    )


def test_blind_add_of_existing_hidden_property_is_forwarded_as_replace(engine):
    ops = ImageProtection().check_patch([op("add", "x_upsert")], STORED, reader(engine), 4)
    assert [(o.op, o.path) for o in ops] == [("replace", ("x_upsert",))]
    absent = STORED - {"x_upsert"}
    ops = ImageProtection().check_patch([op("add", "x_upsert")], absent, reader(engine), 4)
    assert [(o.op, o.path) for o in ops] == [("add", ("x_upsert",))]


@pytest.mark.parametrize("stored", [STORED, STORED - {"x_none_read"}], ids=["exists", "absent"])
def test_blind_add_without_update_right_is_403_whether_or_not_it_exists(engine, stored):
    """A create right alone must not overwrite a stored value the caller cannot see;
    the same 403 when it is absent, so the answer reveals nothing."""
    for draft in (4, 10):
        with pytest.raises(ApiError) as info:
            ImageProtection().check_patch([op("add", "x_none_read")], stored, reader(engine), draft)
        assert (info.value.status, info.value.message) == (
            403,
            "Attribute 'x_none_read' is reserved.",
        )


def test_draft4_add_of_visible_property_is_already_present(engine):
    assert status(ImageProtection(), engine, [op("add", "x_owner_a")], draft=4) == (
        409,
        "Property x_owner_a already present.",
    )


def test_ops_see_the_effect_of_earlier_ops(engine):
    protection = ImageProtection()
    assert status(protection, engine, [op("add", "x_owner_n"), op("remove", "x_owner_n")])[0] == 200
    assert (
        status(protection, engine, [op("remove", "x_owner_a"), op("replace", "x_owner_a")])[0]
        == 409
    )


def test_long_names_are_400_whatever_the_rules(engine):
    for name in ("x_owner_" + "a" * 300, "z" * 256):
        assert status(ImageProtection(), engine, [op("add", name)])[0] == 400


def test_protected_core_attributes(engine):
    protection = ImageProtection(ViewConfig(frozenset({"locations"})))
    assert status(protection, engine, [PatchOp("add", ("locations", "-"), {}, True)])[0] == 403
    assert status(protection, engine, [op("replace", "direct_url")])[0] == 200  # not opted in
    image = {"id": "i", "locations": [{"url": "file:///x"}], "direct_url": "file:///x"}
    assert reader(engine, MEMBER, protection).images([image])
    assert "locations" not in image and "direct_url" in image
    image = {"id": "i", "locations": []}
    assert not reader(engine, RELAYED, protection).images([image])
    with pytest.raises(ValueError, match="protect_core_attributes"):
        ViewConfig(frozenset({"name"}))


def test_hide_unreadable_keeps_core_attributes_and_readable_properties(engine):
    images = [
        {"id": str(i), "name": "n", "x_owner_a": "a", "foo": "secret", "x_none_read": "s"}
        for i in range(3)
    ]
    assert reader(engine).images(images)
    assert images == [{"id": str(i), "name": "n", "x_owner_a": "a"} for i in range(3)]


@pytest.mark.parametrize("name", ["os_hash_algo", "os_hash_value"])
def test_read_only_attributes_glance_would_store_as_properties_are_refused_on_create(
    engine, name
):
    """Glance's create stores them as extra properties past its read-only check."""
    with pytest.raises(ApiError) as info:
        ImageProtection().check_create({"name": "i", name: "x"}, reader(engine))
    assert (info.value.status, info.value.message) == (403, f"Attribute '{name}' is read-only.")


def test_matches_filters_needs_exact_name_and_value():
    image = {"colour": "Blue", "secret_key": "abc"}
    assert matches_filters(image, {"colour": ["blue"]})
    assert not matches_filters(image, {"SECRET_key": ["abc"]})
    assert not matches_filters(image, {"colour": ["Blue", "Red"]})
    assert not matches_filters(["not", "an", "image"], {"colour": ["Blue"]})


def test_readable_add_that_may_also_update_is_not_marked(engine):
    absent = STORED - {"x_owner_a", "x_nodel"}
    ops = ImageProtection().check_patch(
        [op("add", "x_owner_a"), op("add", "x_nodel")], absent, reader(engine), 10
    )
    assert [o.absent_only for o in ops] == [False, False]


def test_create_only_add_is_marked_absent_only():
    rules = compile_rules(
        parse_rules_text(
            "r.conf",
            "[^img_signature$]\ncreate = member\nread = member\nupdate = !\ndelete = !\n",
            "roles",
        )
    )
    ops = ImageProtection().check_patch([op("add", "img_signature")], set(), reader(rules), 10)
    assert [(o.op, o.absent_only) for o in ops] == [("add", True)]
