"""Nova's captured request sequences, replayed through Glance 33 + auth_token + propguard.

Each test runs with the relations store on SQLite, PostgreSQL and MariaDB
(``relations_db.backend``). The requests are the capture's, byte for byte
(bodies, headers, the shared ``X-OpenStack-Request-ID``), with the
capture's placeholder tokens registered in keystonemiddleware's fixture:
alice (member of the instance's project), an admin of another project, and
Nova's service user with the ``service`` role.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import relations_db
from relations_db import (
    ADMIN,
    ADMIN_PROJECT,
    ADMIN_REQUEST_ID,
    ALICE,
    ALICE_PROJECT,
    INSTANCE,
    NOVA_PROJECT,
    NOVA_TOKEN,
    NOVA_USER,
    REQUEST_ID,
    Replay,
    all_relations,
    captured_steps,
    register_capture_tokens,
    replay,
    start,
)

pytestmark = pytest.mark.glance

# fixtures
backend = relations_db.backend
fresh_database = relations_db.fresh_database

PRODUCTION = Path(__file__).resolve().parents[2] / "policies" / "production.conf"


def _by_name(rows):
    return {row["image_name"]: row for row in rows}


def test_every_captured_sequence_records_its_relation(guarded_glance, backend):
    glance = start(guarded_glance, backend, PRODUCTION, relations_origins=f"{NOVA_USER}:region-one")
    state = Replay()
    for _name, requests in captured_steps().items():
        replay(glance, requests, state)
    # Glance accepted every create and the rbd location add (it is checked later, in a task).
    assert len(state.created) == 8
    assert state.status("POST", "/locations") == [202]
    # (GET /versions is a 500 here: the in-process pipeline has no versionnegotiation.)
    assert set(state.status("PUT", "/file")) == {204}
    assert state.status("DELETE", "/v2/images/") == [204]

    rows = _by_name(all_relations(backend.store()))
    assert set(rows) == {
        "snap-1",
        "nightly-0",
        "nightly-1",
        "nightly-2",
        "vm1-shelved",
        "admin-snap",
        "bfv-snap",
        "snap-rbd",
    }
    for row in rows.values():
        assert row["origin"] == "region-one"
        assert (row["service_user_id"], row["service_project_id"]) == (NOVA_USER, NOVA_PROJECT)
        assert row["provenance"] == "service_token_confirmed"
        assert row["recorded_at"] is not None

    snap = rows["snap-1"]
    assert (snap["kind"], snap["instance_uuid"], snap["backup_type"]) == (
        "snapshot",
        INSTANCE,
        None,
    )
    assert (snap["requester_user_id"], snap["requester_project_id"]) == (ALICE, ALICE_PROJECT)
    assert snap["image_owner"] == ALICE_PROJECT
    assert snap["instance_project_id"] == ALICE_PROJECT  # nova-compute's owner_id PATCH
    assert snap["compute_patched_at"] is not None
    assert snap["upload_method"] == "file" and snap["upload_completed_at"] is not None
    assert snap["request_id"] == REQUEST_ID
    assert snap["base_image_ref"] == "9b7c3c5e-2f41-4a2b-8c1d-6e0f5a4b3c21"
    assert snap["asserted"]["user_id"] == ALICE and snap["mismatches"] == []
    assert snap["deleted_at"] is None

    backups = [rows[f"nightly-{i}"] for i in range(3)]
    assert [(b["kind"], b["backup_type"]) for b in backups] == [("backup", "daily")] * 3
    assert [b["recorded_at"] for b in backups] == sorted(b["recorded_at"] for b in backups)
    assert all(b["upload_completed_at"] is not None for b in backups)
    # B2's rotation deleted nightly-1 (the capture's tie case), through Nova.
    deleted = rows["nightly-1"]
    assert deleted["deleted_at"] is not None
    assert (deleted["deleted_via"], deleted["deleted_reason"]) == ("service", "rotation")
    assert deleted["deleted_request_id"] == REQUEST_ID
    assert rows["nightly-0"]["deleted_at"] is None and rows["nightly-2"]["deleted_at"] is None

    shelved = rows["vm1-shelved"]
    assert (shelved["kind"], shelved["instance_uuid"]) == ("shelve", INSTANCE)
    assert "-shelved" in shelved["asserted"]["kind_basis"]

    admin_snap = rows["admin-snap"]
    assert (admin_snap["kind"], admin_snap["instance_uuid"]) == ("snapshot", INSTANCE)
    assert (admin_snap["requester_user_id"], admin_snap["requester_project_id"]) == (
        ADMIN,
        ADMIN_PROJECT,
    )
    assert admin_snap["image_owner"] == ADMIN_PROJECT
    assert admin_snap["instance_project_id"] == ALICE_PROJECT  # the member POST
    assert admin_snap["request_id"] == ADMIN_REQUEST_ID
    assert "visibility_note" in admin_snap["asserted"]

    volume = rows["bfv-snap"]
    assert (volume["kind"], volume["instance_uuid"]) == ("volume_snapshot", None)
    assert volume["asserted"]["cinder_snapshot_ids"] == ["7e8f9a0b-1c2d-4e3f-a4b5-c6d7e8f9a0b1"]
    assert volume["upload_method"] == "file"

    rbd = rows["snap-rbd"]
    assert rbd["kind"] == "snapshot" and rbd["compute_patched_at"] is not None
    assert rbd["upload_method"] == "location"  # POST /locations 202


@pytest.mark.parametrize(
    "variant",
    ["no service token", "invalid service token", "service token without service role"],
)
def test_no_relation_without_a_qualifying_service_token(guarded_glance, backend, variant):
    glance = start(guarded_glance, backend)
    if variant == "no service token":
        headers = {"X-Service-Token": None}
    elif variant == "invalid service token":
        headers = {"X-Service-Token": "gAAAAA-not-a-token"}
    else:
        headers = {"X-Service-Token": glance.service_token(["reader"], user_id=NOVA_USER)}
    state = Replay()
    for _name, requests in captured_steps().items():
        replay(glance, requests, state, headers=headers)
    assert len(state.created) == 8  # Glance created every image (open rules) ...
    assert all_relations(backend.store()) == []  # ... and nothing was recorded


def test_service_token_lacking_a_relations_role_records_nothing(guarded_glance, backend):
    """``relations_service_roles`` is checked on top of ``service_token_roles``."""
    glance = start(guarded_glance, backend, relations_service_roles="nova")
    state = Replay()
    for name, requests in captured_steps().items():
        if name.startswith(("A", "B0 createBackup daily")):
            replay(glance, requests, state)
    assert len(state.created) == 2
    assert all_relations(backend.store()) == []
    # the same token with the role records
    glance.service_token(["service", "nova"], user_id=NOVA_USER, token_id=NOVA_TOKEN + "-2")
    replay(
        glance,
        captured_steps()["A1 createImage: compute API create_image (nova-api)"],
        state,
        headers={"X-Service-Token": NOVA_TOKEN + "-2"},
    )
    assert [r["image_name"] for r in all_relations(backend.store())] == ["snap-1"]


def test_a_user_cannot_update_a_relation_under_novas_request_id(guarded_glance, backend):
    """The compute-side steps count only with the service token and the same request id."""
    glance = start(guarded_glance, backend)
    steps = captured_steps()
    state = replay(glance, steps["A1 createImage: compute API create_image (nova-api)"])
    # alice replays nova-compute's PATCH and upload herself: no service token
    replay(
        glance,
        steps["A2 createImage: libvirt snapshot upload (nova-compute, elevated ctx)"],
        state,
        headers={"X-Service-Token": None},
    )
    (row,) = all_relations(backend.store())
    assert row["compute_patched_at"] is None and row["upload_completed_at"] is None
    assert row["instance_project_id"] is None


def test_user_metadata_overriding_user_id_is_a_visible_mismatch(guarded_glance, backend):
    glance = start(guarded_glance, backend)
    register_capture_tokens(glance)
    (request,) = [
        r
        for r in captured_steps()["A1 createImage: compute API create_image (nova-api)"]
        if r["method"] == "POST"
    ]
    forged = {**request, "json_body": {**request["json_body"], "user_id": "someone-else"}}
    replay(glance, [forged])
    (row,) = all_relations(backend.store())
    assert row["asserted"]["user_id"] == "someone-else"
    assert row["mismatches"] == [
        f"user_id 'someone-else' differs from the requester '{ALICE}' (user metadata overrode it)"
    ]


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_replay_with_glance_itself_on_the_same_server(
    guarded_glance, fresh_database, tmp_path, server, request
):
    """Glance's own database on PostgreSQL/MariaDB too (not its sqlite file)."""
    backend = relations_db.Backend(server, fresh_database(server), fresh_database(server), tmp_path)
    request.addfinalizer(backend.close)
    glance = start(guarded_glance, backend, PRODUCTION)
    state = Replay()
    for name, requests in captured_steps().items():
        if name[0] in "ABD":
            replay(glance, requests, state)
    assert len(state.created) == 5
    rows = _by_name(all_relations(backend.store()))
    assert sorted(rows) == ["admin-snap", "nightly-0", "nightly-1", "nightly-2", "snap-1"]
    assert rows["nightly-1"]["deleted_reason"] == "rotation"
    assert rows["admin-snap"]["instance_project_id"] == ALICE_PROJECT
    assert rows["snap-1"]["upload_completed_at"] is not None
