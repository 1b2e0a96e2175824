"""JSON-pointer decoding and JSON-patch parsing, against Glance 33's own code.

Why: a pointer propguard decoded differently from Glance would let a caller
have one name checked and another changed. So every pointer here goes through
both ``propguard.glance.patch.decode_pointer`` and Glance's
``RequestDeserializer._decode_json_pointer`` (which runs its
``_validate_json_pointer``): either both refuse it (``PatchError`` /
``webob.exc.HTTPBadRequest``) or both give the same parts. Whole patch
documents go through ``parse_patch`` and Glance's ``RequestDeserializer.update``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import webob
import webob.exc
from hypothesis import given, settings
from hypothesis import strategies as st

from propguard.glance.patch import PATCH_MEDIA_TYPES, PatchError, decode_pointer, parse_patch

images = pytest.importorskip("glance.api.v2.images", reason="needs glance (the [glance] extra)")

#: draft -> media type (Glance answers any other media type with a 415, not a 400).
MEDIA_TYPES = {draft: media_type for media_type, draft in PATCH_MEDIA_TYPES.items()}


@pytest.fixture(scope="module")
def deserializer() -> Any:
    """Glance's image request deserializer, without ``_validate_change``.

    ``_validate_change`` is Glance's check of the change against the image
    schema and its read-only/reserved attributes: Glance still does it after
    propguard, and ``parse_patch`` deliberately does not.
    """
    glance = images.RequestDeserializer()
    glance._validate_change = lambda change: None
    return glance


def _glance_pointer(deserializer: Any, pointer: str) -> list[str] | None:
    try:
        return deserializer._decode_json_pointer(pointer)
    except webob.exc.HTTPBadRequest:
        return None


def _propguard_pointer(pointer: Any) -> list[str] | None:
    try:
        return list(decode_pointer(pointer))
    except PatchError:
        return None


def assert_same_pointer(deserializer: Any, pointer: str) -> list[str] | None:
    ours = _propguard_pointer(pointer)
    assert ours == _glance_pointer(deserializer, pointer), pointer
    return ours


POINTERS = [
    # plain names, escapes
    ("/name", ["name"]),
    ("/x_owner_a", ["x_owner_a"]),
    ("/a~1b", ["a/b"]),
    ("/a~0b", ["a~b"]),
    ("/~01", ["~1"]),  # "~0" first: a "~" followed by "1", not a "/"
    ("/~10", ["/0"]),
    ("/~0~1", ["~/"]),
    ("/~1~0", ["/~"]),
    ("/~0", ["~"]),
    ("/~1", ["/"]),
    ("/a~0~0b", ["a~~b"]),
    # unknown escapes and a trailing "~"
    ("/a~2b", None),
    ("/a~b", None),
    ("/~", None),
    ("/a~", None),
    ("/a~0~", None),
    ("/~~", None),
    ("/a/b~", None),
    # "/" alone, empty, no leading "/"
    ("/", [""]),
    ("", None),
    ("name", None),
    (" /name", None),
    ("~1name", None),
    # adjacent "/" (also with white space between), trailing "/"
    ("//", None),
    ("//a", ["a"]),  # not adjacent in pointer[1:]; then lstrip("/") takes both
    ("///a", None),
    ("/a//b", None),
    ("/a/ /b", None),
    ("/a/\t/b", None),
    ("/ /", None),
    ("/  /", None),
    ("/a/", None),
    ("/a/b/", None),
    ("/ / ", None),
    # white space is stripped from every part
    ("/ ", [""]),
    ("/  ", [""]),
    ("/ name", ["name"]),
    ("/name ", ["name"]),
    ("/\tname\n", ["name"]),
    ("/ a / b", ["a", "b"]),
    ("/a b", ["a b"]),
    ("/\u00a0name\u3000", ["name"]),  # unicode white space too
    ("/name\u2028", ["name"]),
    ("/ ~0 ", ["~"]),
    ("/~1 ", ["/"]),
    # unicode names
    ("/ü", ["ü"]),
    ("/x_owner_🙂", ["x_owner_🙂"]),
    ("/名前/値", ["名前", "値"]),
    # depth (parse_patch decides whether a depth is allowed)
    ("/locations/0", ["locations", "0"]),
    ("/locations/-", ["locations", "-"]),
    ("/a/b/c", ["a", "b", "c"]),
    ("/properties/x", ["properties", "x"]),
]


@pytest.mark.parametrize(("pointer", "expected"), POINTERS)
def test_pointer_decodes_as_glance_does(deserializer, pointer: str, expected) -> None:
    assert assert_same_pointer(deserializer, pointer) == expected


@pytest.mark.parametrize("pointer", [None, 1, 1.5, True, ["/a"], {"/a": 1}, b"/a"])
def test_pointer_that_is_not_a_string_is_a_patch_error(pointer) -> None:
    # (Glance itself fails on these with an AttributeError: a 500.)
    with pytest.raises(PatchError, match="Pointer must be a string."):
        decode_pointer(pointer)


def test_pointer_error_messages() -> None:
    cases = {
        "name": 'Pointer does not start with "/".',
        "/a//b": 'Pointer contains adjacent "/".',
        "/a/": 'Pointer ends with "/".',
        "/a~2": 'Pointer contains "~" not part of a recognized escape sequence.',
    }
    for pointer, message in cases.items():
        with pytest.raises(PatchError) as err:
            decode_pointer(pointer)
        assert str(err.value) == message


def test_decoded_pointer_is_a_tuple() -> None:
    assert decode_pointer("/a/b") == ("a", "b")


_POINTER_CHARS = st.sampled_from(
    ["/", "/", "/", "~", "~", "0", "1", "2", " ", "\t", "\n", "\u00a0", "a", "b", "ü", "🙂"]
)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(
    pointer=st.one_of(
        st.text(_POINTER_CHARS, max_size=10),
        st.text(_POINTER_CHARS, max_size=10).map(lambda tail: "/" + tail),
        st.text(max_size=8).map(lambda tail: "/" + tail),
    )
)
def test_generated_pointers_decode_as_glance_does(deserializer, pointer: str) -> None:
    assert_same_pointer(deserializer, pointer)


# -- whole JSON-patch documents ----------------------------------------------


def _glance_changes(deserializer: Any, document: Any, draft: int) -> list[tuple] | None:
    request = webob.Request.blank("/v2/images/x", method="PATCH")
    request.body = json.dumps(document).encode()
    request.content_type = MEDIA_TYPES[draft]
    try:
        changes = deserializer.update(request)["changes"]
    except webob.exc.HTTPBadRequest:
        return None
    return [(c["op"], list(c["path"]), c.get("value"), "value" in c) for c in changes]


def _propguard_changes(document: Any, draft: int) -> list[tuple] | None:
    try:
        ops = parse_patch(document, draft)
    except PatchError:
        return None
    # (a remove keeps the value it was sent with; neither checked nor forwarded)
    return [(op.op, list(op.path), op.value if op.has_value else None, op.has_value) for op in ops]


def assert_same_changes(deserializer: Any, document: Any, draft: int) -> list[tuple] | None:
    ours = _propguard_changes(document, draft)
    assert ours == _glance_changes(deserializer, document, draft), (draft, document)
    return ours


DOCUMENTS_D10 = [
    ([], []),
    ([{"op": "add", "path": "/a", "value": 1}], [("add", ["a"], 1, True)]),
    ([{"op": "replace", "path": "/a~1b", "value": "v"}], [("replace", ["a/b"], "v", True)]),
    ([{"op": "remove", "path": "/ a "}], [("remove", ["a"], None, False)]),
    # a value on a remove is ignored, a null value is a value
    ([{"op": "remove", "path": "/a", "value": "v"}], [("remove", ["a"], None, False)]),
    ([{"op": "add", "path": "/a", "value": None}], [("add", ["a"], None, True)]),
    (
        [{"op": "add", "path": "/a", "value": 1}, {"op": "remove", "path": "/b"}],
        [("add", ["a"], 1, True), ("remove", ["b"], None, False)],
    ),
    # locations: the only two-part paths (add/remove), replace only whole
    ([{"op": "add", "path": "/locations/0", "value": {}}], [("add", ["locations", "0"], {}, True)]),
    ([{"op": "remove", "path": "/locations/-"}], [("remove", ["locations", "-"], None, False)]),
    (
        [{"op": "replace", "path": "/locations", "value": []}],
        [("replace", ["locations"], [], True)],
    ),
    ([{"op": "replace", "path": "/locations/0", "value": {}}], None),
    ([{"op": "add", "path": "/locations", "value": []}], None),
    ([{"op": "add", "path": "/tags/-", "value": "t"}], None),
    ([{"op": "add", "path": "/properties/a", "value": 1}], None),
    # refused documents and operations
    ({"op": "add", "path": "/a", "value": 1}, None),
    ("add", None),
    (None, None),
    ([["add", "/a", 1]], None),
    (["add"], None),
    ([{"path": "/a", "value": 1}], None),
    ([{"op": None, "path": "/a", "value": 1}], None),
    ([{"op": "move", "path": "/a", "from": "/b"}], None),
    ([{"op": "ADD", "path": "/a", "value": 1}], None),
    ([{"op": ["add"], "path": "/a", "value": 1}], None),
    ([{"op": "add", "value": 1}], None),
    ([{"op": "add", "path": "/a"}], None),
    ([{"op": "replace", "path": "/a"}], None),
    ([{"op": "add", "path": "a", "value": 1}], None),
    ([{"op": "add", "path": "/a//b", "value": 1}], None),
    ([{"op": "add", "path": "/a~2", "value": 1}], None),
    ([{"op": "add", "path": "/a/", "value": 1}], None),
    # a refused operation refuses the whole document
    ([{"op": "add", "path": "/a", "value": 1}, {"op": "add", "path": "/b"}], None),
    # draft-4 spelling in a draft-10 document
    ([{"add": "/a", "value": 1}], None),
]

DOCUMENTS_D4 = [
    ([{"add": "/a", "value": 1}], [("add", ["a"], 1, True)]),
    ([{"replace": "/a~0b", "value": "v"}], [("replace", ["a~b"], "v", True)]),
    ([{"remove": "/a"}], [("remove", ["a"], None, False)]),
    ([{"remove": "/locations/0"}], [("remove", ["locations", "0"], None, False)]),
    ([{"add": "/a", "value": 1, "op": "remove", "path": "/b"}], [("add", ["a"], 1, True)]),
    ([{"add": "/a", "remove": "/b", "value": 1}], None),
    ([{"op": "add", "path": "/a", "value": 1}], None),
    ([{}], None),
    ([{"add": "/a"}], None),
    ([{"add": "a", "value": 1}], None),
    ([{"replace": "/a/b", "value": 1}], None),
    ({"add": "/a", "value": 1}, None),
]


@pytest.mark.parametrize(("document", "expected"), DOCUMENTS_D10)
def test_draft10_patch_parses_as_glance_does(deserializer, document, expected) -> None:
    assert assert_same_changes(deserializer, document, 10) == expected


@pytest.mark.parametrize(("document", "expected"), DOCUMENTS_D4)
def test_draft4_patch_parses_as_glance_does(deserializer, document, expected) -> None:
    assert assert_same_changes(deserializer, document, 4) == expected


@pytest.mark.parametrize(
    ("document", "draft"),
    [([{"op": "add", "path": 1, "value": 1}], 10), ([{"add": None, "value": 1}], 4)],
)
def test_patch_with_a_pointer_that_is_not_a_string_is_a_patch_error(document, draft) -> None:
    # (Glance itself fails on these with an AttributeError: a 500.)
    with pytest.raises(PatchError, match="Pointer must be a string."):
        parse_patch(document, draft)


def test_parsed_operations_serialise_back_to_what_was_checked() -> None:
    (op,) = parse_patch([{"op": "add", "path": "/ a~1b~0c ", "value": 1}], 10)
    assert op.path == ("a/b~c",) and op.root == "a/b~c"
    assert op.to_json(10) == {"op": "add", "path": "/a~1b~0c", "value": 1}
    assert op.to_json(4) == {"add": "/a~1b~0c", "value": 1}
    assert decode_pointer(op.to_json(10)["path"]) == op.path
    (remove,) = parse_patch([{"remove": "/locations/0"}], 4)
    assert remove.to_json(4) == {"remove": "/locations/0"}


#: Mostly well-formed operations (so that most documents parse), with every kind of fault.
_OPS = st.sampled_from(["add", "add", "remove", "remove", "replace", "replace", "move", None])
_PATHS = st.one_of(
    st.sampled_from(["/a", "/a~1b", "/ a", "/locations", "/locations/0", "/a/b", "/", "a", "//"]),
    st.text(_POINTER_CHARS, max_size=6).map(lambda tail: "/" + tail),
    st.text(st.sampled_from("ab ~01"), min_size=1, max_size=4).map(lambda tail: "/" + tail),
)
_VALUES = st.one_of(st.none(), st.integers(), st.text(max_size=3))
_MOSTLY = st.sampled_from([True, True, True, True, False])


@st.composite
def _draft10_ops(draw: st.DrawFn) -> dict[str, Any]:
    op: dict[str, Any] = {}
    if draw(_MOSTLY):
        op["op"] = draw(_OPS)
    if draw(_MOSTLY):
        op["path"] = draw(_PATHS)
    if draw(_MOSTLY):
        op["value"] = draw(_VALUES)
    return op


@st.composite
def _draft4_ops(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(
        st.sampled_from([["add"], ["remove"], ["replace"], [], ["add", "remove"], ["op", "path"]])
    )
    op: dict[str, Any] = {name: draw(_PATHS) for name in names}
    if draw(_MOSTLY):
        op["value"] = draw(_VALUES)
    return op


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(
    case=st.one_of(
        st.tuples(st.lists(_draft10_ops(), min_size=1, max_size=2), st.just(10)),
        st.tuples(st.lists(_draft4_ops(), min_size=1, max_size=2), st.just(4)),
    )
)
def test_generated_patches_parse_as_glance_does(deserializer, case) -> None:
    document, draft = case
    assert_same_changes(deserializer, document, draft)
