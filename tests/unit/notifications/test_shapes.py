"""The allow-list of notification shapes against Glance 33's own notifier code.

A new event type or payload key in Glance must fail here, not pass through
the filter unchecked (or be refused in production without anyone knowing why).
"""

from __future__ import annotations

import ast
import inspect
import types

import pytest

from propguard.notifications import samples
from propguard.notifications.shapes import (
    EVENTS,
    IMAGE_IMPORT_KEYS,
    PAYLOADS,
    TEXT_EVENTS,
    Shape,
    ShapeError,
    check_payload,
)


def _event_types_in(module) -> set[str]:
    """Every string literal naming an event that ``module`` sends (first argument of
    ``send_notification`` / second of ``_send_notification`` / ``notify``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
        position = {"send_notification": 0, "_send_notification": 1, "notify": 0}.get(name)
        if position is None or len(node.args) <= position:
            continue
        arg = node.args[position]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            found.add(arg.value)
    return found


def test_every_event_glance_sends_is_on_the_allow_list_and_nothing_else() -> None:
    from glance import notifier
    from glance.api import common

    assert _event_types_in(notifier) | _event_types_in(common) == set(EVENTS)


class _Anything:
    """Any attribute a format function reads: a value, or an empty mapping for properties."""

    def __getattr__(self, name: str):
        if name in ("extra_properties", "properties"):
            return {}
        if name == "tags":
            return []
        if name == "schema":
            return {}
        if name.endswith(("_at", "created_at")):
            return None
        return "x"


@pytest.mark.parametrize(
    ("function", "shape"),
    [
        ("format_image_notification", Shape.IMAGE),
        ("format_image_member_notification", Shape.MEMBER),
        ("format_task_notification", Shape.TASK),
        ("format_metadef_namespace_notification", Shape.METADEF_NAMESPACE),
        ("format_metadef_object_notification", Shape.METADEF_OBJECT),
        ("format_metadef_property_notification", Shape.METADEF_PROPERTY),
        ("format_metadef_resource_type_notification", Shape.METADEF_RESOURCE_TYPE),
        ("format_metadef_tag_notification", Shape.METADEF_TAG),
    ],
)
def test_payload_keys_are_glances(function: str, shape: Shape, monkeypatch) -> None:
    from glance import notifier

    monkeypatch.setattr(notifier.timeutils, "isotime", lambda value=None: "2026-01-01T00:00:00Z")
    payload = getattr(notifier, function)(_Anything())
    assert set(payload) == PAYLOADS[shape].required


def test_optional_image_keys_are_the_import_properties_and_the_backend() -> None:
    from glance import notifier

    proxy = notifier.ImageProxy.__new__(notifier.ImageProxy)
    proxy.repo = types.SimpleNamespace(extra_properties={})
    assert set(proxy._format_import_properties()) == IMAGE_IMPORT_KEYS
    assert PAYLOADS[Shape.IMAGE].optional == IMAGE_IMPORT_KEYS | {"backend"}


def test_image_send_keys_are_glances() -> None:
    """``image_send_notification`` (``glance/api/common.py``) and the proxy's own."""
    from glance import notifier

    proxy = notifier.ImageProxy.__new__(notifier.ImageProxy)
    proxy.repo = types.SimpleNamespace(image_id="i", owner="o")
    proxy.context = types.SimpleNamespace(project_id="p", user_id="u")
    assert set(proxy._format_image_send(1)) == PAYLOADS[Shape.SEND].required
    source = inspect.getsource(__import__("glance.api.common", fromlist=["x"]))
    assert "'destination_ip'" in source and PAYLOADS[Shape.SEND].optional == {"destination_ip"}


def test_every_sample_is_of_its_shape() -> None:
    for note in samples.every_event({"a": "1"}):
        check_payload(note["event_type"], EVENTS[note["event_type"]], note["payload"])


def test_only_image_upload_may_carry_text() -> None:
    assert {"image.upload"} == TEXT_EVENTS
    check_payload("image.upload", Shape.IMAGE, "Image storage media is full")
    with pytest.raises(ShapeError):
        check_payload("image.update", Shape.IMAGE, "text")


def test_a_key_set_accepted_once_is_still_checked_for_its_shape_and_values(monkeypatch) -> None:
    """The memo of accepted key sets is per shape and keys only: values are checked every time."""
    from propguard.notifications import shapes

    image = samples.image_payload({"a": "1"})
    check_payload("image.update", Shape.IMAGE, image)
    assert tuple(image) in PAYLOADS[Shape.IMAGE].accepted
    with pytest.raises(ShapeError, match="not a string"):
        check_payload("image.update", Shape.IMAGE, {**image, "properties": {"a": ["1"]}})
    with pytest.raises(ShapeError, match="lacks a key"):
        check_payload("image.member.create", Shape.MEMBER, image)
    monkeypatch.setattr(shapes, "ACCEPTED_SIZE", 3)
    for i in range(10):
        check_payload("image.update", Shape.IMAGE, {**image, "backend": "b"} if i % 2 else image)
        check_payload("image.update", Shape.IMAGE, dict(reversed(image.items())))
    assert len(PAYLOADS[Shape.IMAGE].accepted) <= 3
