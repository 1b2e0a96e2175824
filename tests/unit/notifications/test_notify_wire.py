"""oslo.messaging v2 envelopes and bare notifications, decoded and encoded without oslo.messaging."""

from __future__ import annotations

import json

import pytest

from propguard.notifications import samples, wire


def _envelope(note: dict) -> bytes:
    """As oslo.messaging's ``serialize_msg`` writes it (stdlib json, ", " separators)."""
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(note)}).encode()


def test_envelope_round_trip() -> None:
    note = samples.notification("image.update", samples.image_payload({"a": "é"}))
    decoded = wire.decode(_envelope(note))
    assert decoded.enveloped and decoded.notification == note
    again = wire.decode(wire.encode(decoded.notification, True))
    assert again == decoded


def test_bare_round_trip() -> None:
    note = {"event_type": "image.update", "payload": {"properties": {}}}
    decoded = wire.decode(json.dumps(note))
    assert not decoded.enveloped and decoded.notification == note
    assert json.loads(wire.encode(note, False)) == note


def test_oslo_messaging_reads_what_we_write() -> None:
    from oslo_messaging._drivers import common

    note = samples.notification("image.create", samples.image_payload({"x": "1"}))
    assert common.deserialize_msg(json.loads(wire.encode(note))) == note


SECRET = "s3cr3t-value"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            b'{"event_type": "image.update", "payload": {"x": "' + SECRET.encode() + b'"',
            "not valid JSON",
        ),
        (b"\xff\xfe" + SECRET.encode(), "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"' + SECRET.encode() + b'"', "not a JSON object"),
        (b'{"oslo.version": "1.0", "oslo.message": "{}"}', "oslo.version"),
        (b'{"oslo.message": "{}"}', "oslo.version"),
        (b'{"oslo.version": "2.0", "oslo.message": {"event_type": "x"}}', "'oslo.message' string"),
        (
            b'{"oslo.version": "2.0", "oslo.message": "{\\"a\\": \\"' + SECRET.encode() + b'\\""}',
            "'oslo.message' is not valid JSON",
        ),
        (b'{"oslo.version": "2.0", "oslo.message": "[]"}', "not a JSON object"),
        (b'{"payload": {}}', "event_type"),
        (b'{"event_type": 3, "payload": {}}', "event_type"),
        (b'{"event_type": "image.update"}', "'payload'"),
        (b'{"event_type": "image.update", "payload": {}, "message_id": 3}', "'message_id'"),
        (
            b'{"event_type": "image.update", "payload": {}, "priority": ["'
            + SECRET.encode()
            + b'"]}',
            "'priority'",
        ),
        (b"", "not valid JSON"),
    ],
)
def test_decode_errors_never_echo_content(data: bytes, reason: str) -> None:
    with pytest.raises(wire.DecodeError) as info:
        wire.decode(data)
    assert reason in str(info.value)
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None  # no chained exception carrying the text either

@pytest.mark.parametrize(
    "text",
    [
        b'{"event_type": "image.update", "payload": {}, "event_type": "task.run"}',
        b'{"event_type": "image.update", "payload": {"properties": {}}, "payload": {}}',
        b'{"oslo.version": "2.0", "oslo.message": "{}", "oslo.message": "{}"}',
        json.dumps(
            {
                "oslo.version": "2.0",
                "oslo.message": '{"event_type": "image.update", "payload": {},'
                ' "event_type": "metadef_tag.create"}',
            }
        ).encode(),
        # The same names spelled with escapes: a JSON reader decodes them to the same key.
        b'{"event_type": "image.update", "payload": {}, "event\\u005ftype": "task.run"}',
        b'{"oslo.version": "2.0", "oslo.message": "{}", "oslo\\u002Emessage": "{}"}',
        json.dumps(
            {
                "oslo.version": "2.0",
                "oslo.message": '{"event_type": "image.update", "payload": {},'
                ' "\\u0065vent_type": "metadef_tag.create"}',
            }
        ).encode(),
        # ... and the envelope writing the message's backslash as an escape itself.
        b'{"oslo.version": "2.0", "oslo.message": "{\\"event_type\\": \\"image.update\\", '
        b'\\"payload\\": {}, \\"event\\u005cu005ftype\\": \\"task.run\\"}"}',
    ],
    ids=[
        "event_type",
        "payload",
        "oslo.message",
        "inside-the-envelope",
        "escaped-event_type",
        "escaped-oslo.message",
        "escaped-inside-the-envelope",
        "escaped-backslash-inside-the-envelope",
    ],
)
def test_repeated_envelope_keys_are_refused(text: bytes) -> None:
    """A reader that keeps the first copy would see another notification than the filtered one."""
    with pytest.raises(wire.DecodeError, match="repeats a key"):
        wire.decode(text)


def test_a_key_name_repeated_below_the_top_is_fine() -> None:
    note = {"event_type": "image.update", "payload": {"event_type": "x", "payload": "y"}}
    assert wire.decode(json.dumps(note).encode()).notification == note
    # In an envelope, with the envelope's own names and escapes inside the notification
    # (the escaped "_" takes the exact check: still no repeated key).
    inner = (
        '{"event_type": "image.update", "payload": {"oslo.message": "oslo.version", '
        '"a": "caf\\u00e9 \\u005f"}}'
    )
    text = json.dumps({"oslo.version": "2.0", "oslo.message": inner})
    note["payload"] = {"oslo.message": "oslo.version", "a": "caf\u00e9 _"}
    assert wire.decode(text.encode()).notification == note
