"""Requests -> relation events (pure): kinds, provenance, mismatches, origins."""

from __future__ import annotations

import pytest

from propguard.credentials import Credentials
from propguard.relations import events

INSTANCE = "f3e5b7a1-8c2d-4e6f-9a0b-1c2d3e4f5a6b"
IMAGE = {
    "id": "938d90cd-756c-4155-ae1d-63e78b029928",
    "owner": "p1",
    "created_at": "2026-11-29T10:00:00Z",
}
NOVA = Credentials(
    authenticated=True,
    user_id="alice",
    project_id="p1",
    roles=frozenset({"member"}),
    service_roles=frozenset({"service"}),
    service_user_id="nova-id",
    service_project_id="service-project",
)


def created(document, creds=NOVA, origins=None):
    return events.created_event(
        document,
        IMAGE,
        creds,
        origin=events.origin_of(creds, origins or {}),
        request_id="req-1",
        global_request_id=None,
        at="2026-11-29T10:00:00.123456",
    )


def nova_body(**extra):
    return {
        "instance_uuid": INSTANCE,
        "user_id": "alice",
        "image_type": "snapshot",
        "name": "s",
        **extra,
    }


def test_snapshot():
    event = created(nova_body())
    assert event["event"] == "created"
    assert (event["kind"], event["instance_uuid"], event["backup_type"]) == (
        "snapshot",
        INSTANCE,
        None,
    )
    assert event["image_id"] == IMAGE["id"] and event["image_owner"] == "p1"
    assert (event["requester_user_id"], event["requester_project_id"]) == ("alice", "p1")
    assert event["origin"] == "nova-id" and event["request_id"] == "req-1"
    assert event["mismatches"] == []
    assert event["asserted"]["kind_basis"] == "image_type=snapshot"
    assert event["image_created_at"] == "2026-11-29T10:00:00Z"


def test_backup_and_its_type():
    event = created(nova_body(image_type="backup", backup_type="daily"))
    assert (event["kind"], event["backup_type"]) == ("backup", "daily")
    assert created(nova_body(image_type="backup"))["mismatches"] == [
        "image_type=backup without a backup_type"
    ]


def test_shelve_is_recognised_by_name_only():
    assert created(nova_body(name="vm1-shelved"))["kind"] == "shelve"
    assert (
        created(nova_body(name="vm1-shelved", image_type="backup", backup_type="d"))["kind"]
        == "backup"
    )


def test_snapshot_with_an_inherited_backup_type_is_legitimate():
    event = created(nova_body(backup_type="weekly"))
    assert event["kind"] == "snapshot" and event["backup_type"] == "weekly"
    assert event["mismatches"] == [] and "inherited" in event["asserted"]["backup_type_note"]


def test_volume_backed_snapshot_never_takes_the_inherited_instance():
    bdm = '[{"source_type": "snapshot", "snapshot_id": "7e8f9a0b-1c2d-4e3f-a4b5-c6d7e8f9a0b1"}]'
    plain = created({"name": "bfv", "block_device_mapping": bdm, "bdm_v2": "True"})
    assert (plain["kind"], plain["instance_uuid"]) == ("volume_snapshot", None)
    assert plain["asserted"]["cinder_snapshot_ids"] == ["7e8f9a0b-1c2d-4e3f-a4b5-c6d7e8f9a0b1"]
    inherited = created({**nova_body(), "block_device_mapping": bdm})
    assert inherited["instance_uuid"] is None
    assert inherited["asserted"]["instance_uuid"] == INSTANCE
    assert "inherited from the boot volume" in inherited["mismatches"][0]


def test_user_id_differing_from_the_requester_is_a_mismatch():
    event = created(nova_body(user_id="mallory"))
    assert event["mismatches"] == [
        "user_id 'mallory' differs from the requester 'alice' (user metadata overrode it)"
    ]
    body = nova_body()
    del body["user_id"]
    assert created(body)["mismatches"] == ["no user_id: Nova always sends the requester's"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "plain image"},
        {"instance_uuid": INSTANCE, "name": "no image_type"},
        {"instance_uuid": INSTANCE, "image_type": "other"},
        {"instance_uuid": "not-a-uuid", "image_type": "snapshot"},
        {"instance_uuid": 12, "image_type": "backup"},
    ],
)
def test_not_novas_create_records_nothing(body):
    assert created(body) is None


def test_uuid_spellings_are_canonical():
    event = created(nova_body(instance_uuid=INSTANCE.upper()))
    assert event["instance_uuid"] == INSTANCE
    assert events.canonical_uuid(INSTANCE.replace("-", "")) == INSTANCE
    assert events.canonical_uuid("x" * 100) is None


def test_long_values_are_cut_to_the_column():
    event = created(nova_body(image_type="backup", backup_type="d" * 400, name="n" * 400))
    assert len(event["backup_type"]) == len(event["image_name"]) == 255


def test_origins_by_service_user_then_project():
    assert events.origin_of(NOVA, {"nova-id": "region-one"}) == "region-one"
    assert events.origin_of(NOVA, {"service-project": "region-two"}) == "region-two"
    assert events.origin_of(NOVA, {"other": "x"}) == "nova-id"


def test_compute_patch_and_location_fallback():
    ops = [
        {"op": "add", "path": "/image_location", "value": "snapshot"},
        {"op": "add", "path": "/owner_id", "value": "p1"},
        {"op": "replace", "path": "/disk_format", "value": "qcow2"},
    ]
    (patched,) = events.patched_event(IMAGE["id"], ops, "req-1")
    assert (patched["event"], patched["owner_id"], patched["request_id"]) == (
        "patched",
        "p1",
        "req-1",
    )
    rbd = [{"op": "add", "path": "/locations/-", "value": {"url": "rbd://x", "metadata": {}}}]
    (uploaded,) = events.patched_event(IMAGE["id"], rbd, "req-1")
    assert (uploaded["event"], uploaded["method"]) == ("uploaded", "location")
    assert (
        events.patched_event(IMAGE["id"], [{"op": "add", "path": "/name", "value": "x"}], "r") == []
    )
    assert events.patched_event(IMAGE["id"], {"not": "a list"}, "r") == []


def test_member_and_delete_events():
    assert events.member_event(IMAGE["id"], {"member": "p2"}, "r")["member"] == "p2"
    assert events.member_event(IMAGE["id"], {"member": ""}, "r") is None
    deleted = events.deleted_event(IMAGE["id"], NOVA, via="service", request_id="r")
    assert (deleted["via"], deleted["user_id"], deleted["project_id"]) == ("service", "alice", "p1")
    assert events.reconciled_event(IMAGE["id"])["via"] == "reconcile"
