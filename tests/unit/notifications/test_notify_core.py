"""The notification filter core on every Glance event type, in both rule formats.

Oracle: the expected property sets are written out by hand from Glance's own
test rule files (``tests/lint_fixtures/glance``), not computed with the engine.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import pytest
from data_paths import GLANCE_POLICIES_FILE, GLANCE_POLICY_YAML, GLANCE_ROLES_FILE

from propguard.credentials import Credentials
from propguard.notifications import samples
from propguard.notifications.core import (
    ALWAYS_HIDDEN,
    ANNOTATION_KEY,
    UNIQUE_ID_KEY,
    VIEW_KEY,
    FilterError,
    Mode,
    NotificationFilter,
    ReaderClass,
    audience,
    derived_unique_id,
    is_image_event,
)
from propguard.rules import RuleEngine, load_rules
from propguard.rules.loading import RulesOptions, open_rules

HIDDEN_HOSTS = {"os_glance_stage_host": "glance-1", "os_glance_hash_op_host": "glance-2"}


@dataclass
class Case:
    """One rule file with a property set and who may read what (by hand)."""

    engine: RuleEngine
    properties: dict[str, str]
    readable: dict[str, set[str]]  # reader class -> readable property names
    read_rules: dict[str, object]  # property -> expected annotate rule value
    rules_key: str


ROLE_PROPS = {
    "x_owner_foo": "o",
    "spl_read_prop": "s",
    "x_none_read": "n",
    "x_all_permitted_a": "a",
    "x_foo_bar": "f",
    "x_case_insensitive": "c",
    "other_prop": "z",
    "os_glance_import_task": "t",
    **HIDDEN_HOSTS,
}
POLICY_PROPS = {
    "spl_creator_policy": "c",
    "spl_default_policy": "d",
    "x_all_permitted_a": "a",
    "x_none_read": "n",
    "x_foo_bar": "f",
    "x_owner_foo": "o",
    "os_glance_import_task": "t",
    **HIDDEN_HOSTS,
}
EVERYONE_ROLES = {"x_all_permitted_a", "x_foo_bar", "os_glance_import_task"}
EVERYONE_POLICIES = EVERYONE_ROLES | {"spl_default_policy"}


@pytest.fixture(scope="module", params=["roles", "policies"])
def case(request: pytest.FixtureRequest) -> Case:
    if request.param == "roles":
        return Case(
            engine=load_rules(str(GLANCE_ROLES_FILE), "roles"),
            properties=ROLE_PROPS,
            readable={
                "nobody": EVERYONE_ROLES,
                "member": EVERYONE_ROLES | {"x_owner_foo", "x_case_insensitive"},
                "spl": EVERYONE_ROLES | {"spl_read_prop"},
                "admin": set(ROLE_PROPS) - {"x_none_read"} - set(HIDDEN_HOSTS),
            },
            read_rules={
                "x_owner_foo": ["admin", "member"],
                "spl_read_prop": ["admin", "spl_role"],
                "x_none_read": ["!"],
                "x_all_permitted_a": ["@"],
                "x_foo_bar": ["@"],
                "x_case_insensitive": ["admin", "member"],
                "other_prop": ["admin"],
                "os_glance_import_task": ["@"],
            },
            rules_key="property_read_roles",
        )
    return Case(
        engine=load_rules(
            str(GLANCE_POLICIES_FILE),
            "policies",
            policy_file=str(GLANCE_POLICY_YAML),
            policy_namespaces=["glance"],
        ),
        properties=POLICY_PROPS,
        readable={
            "nobody": EVERYONE_POLICIES,
            "member": EVERYONE_POLICIES,
            "spl": EVERYONE_POLICIES | {"spl_creator_policy"},
            "admin": set(POLICY_PROPS) - {"x_none_read"} - set(HIDDEN_HOSTS),
        },
        read_rules={
            "spl_creator_policy": "glance_creator",
            "spl_default_policy": "default",
            "x_all_permitted_a": "@",
            "x_none_read": "!",
            "x_foo_bar": "@",
            "x_owner_foo": "context_is_admin",
            "os_glance_import_task": "@",
        },
        rules_key="property_read_policies",
    )


CLASSES = [
    ReaderClass.parse("member", "member+reader"),
    ReaderClass.parse("spl", "spl_role"),
    ReaderClass.parse("admin", "admin"),
]
EVENTS = list(samples.every_event({}))
EVENT_IDS = [f"{n['event_type']}-{n['priority']}-{i}" for i, n in enumerate(EVENTS)]


def _event(index: int, properties: dict[str, str]) -> dict:
    note = copy.deepcopy(EVENTS[index])
    if isinstance(note["payload"], dict) and "properties" in note["payload"]:
        note["payload"]["properties"] = dict(properties)
    return note


def _filtered(note: dict) -> bool:
    return is_image_event(note["event_type"]) and isinstance(note["payload"], dict)


def _check_envelope_keys(original: dict, out: dict) -> None:
    for key in ("message_id", "timestamp", "publisher_id", "priority", "event_type"):
        assert out[key] == original[key]
    assert out[UNIQUE_ID_KEY] != original[UNIQUE_ID_KEY]


def _check_other_payload_keys(original: dict, out: dict) -> None:
    """Every top-level payload key but ``properties`` (and the annotation) is kept as is."""
    rest = {k: v for k, v in out["payload"].items() if k not in ("properties", ANNOTATION_KEY)}
    assert rest == {k: v for k, v in original["payload"].items() if k != "properties"}


@pytest.mark.parametrize("index", range(len(EVENTS)), ids=EVENT_IDS)
def test_strip_every_event(case: Case, index: int) -> None:
    note = _event(index, case.properties)
    before = copy.deepcopy(note)
    nf = NotificationFilter(case.engine, audience=audience(["member", "reader"]))
    (out,) = nf.outputs(note)
    assert note == before  # never modified
    assert out.mode is Mode.STRIP and out.view is None
    _check_envelope_keys(note, out.notification)
    if not _filtered(note):
        assert out.notification["payload"] == note["payload"]
        assert nf.counts == {"filtered": 0, "passed": 1}
        return
    assert set(out.notification["payload"]["properties"]) == case.readable["member"]
    for name, value in out.notification["payload"]["properties"].items():
        assert value == case.properties[name]
    _check_other_payload_keys(note, out.notification)
    assert VIEW_KEY not in out.notification
    assert nf.counts == {"filtered": 1, "passed": 0}


@pytest.mark.parametrize("index", range(len(EVENTS)), ids=EVENT_IDS)
def test_views_every_event(case: Case, index: int) -> None:
    note = _event(index, case.properties)
    nf = NotificationFilter(case.engine, modes=["views"], reader_classes=CLASSES)
    outs = nf.outputs(note)
    assert [o.view for o in outs] == ["member", "spl", "admin"]
    assert len({o.notification[UNIQUE_ID_KEY] for o in outs}) == 3
    for out in outs:
        assert out.mode is Mode.VIEWS
        assert out.notification[VIEW_KEY] == out.view
        _check_envelope_keys(note, out.notification)
        if _filtered(note):
            assert set(out.notification["payload"]["properties"]) == case.readable[out.view]
            _check_other_payload_keys(note, out.notification)
        else:
            assert out.notification["payload"] == note["payload"]


@pytest.mark.parametrize("index", range(len(EVENTS)), ids=EVENT_IDS)
def test_annotate_every_event(case: Case, index: int) -> None:
    note = _event(index, case.properties)
    nf = NotificationFilter(case.engine, modes=["annotate"], reader_classes=CLASSES)
    (out,) = nf.outputs(note)
    _check_envelope_keys(note, out.notification)
    payload = out.notification["payload"]
    if not _filtered(note):
        assert payload == note["payload"]
        return
    visible = {k: v for k, v in case.properties.items() if k not in ALWAYS_HIDDEN}
    assert payload["properties"] == visible
    _check_other_payload_keys(note, out.notification)
    annotation = payload[ANNOTATION_KEY]
    assert annotation["version"] == 1
    assert annotation["reader_classes"] == {
        "member": "member+reader",
        "spl": "spl_role",
        "admin": "admin",
    }
    assert annotation[case.rules_key] == case.read_rules
    expected_classes = {
        name: [c.name for c in CLASSES if name in case.readable[c.name]] for name in visible
    }
    assert annotation["property_read_classes"] == expected_classes


def test_all_modes_in_order(case: Case) -> None:
    note = samples.notification(
        "image.update", samples.image_payload(case.properties), unique_id=False
    )
    nf = NotificationFilter(
        case.engine,
        modes=["annotate", "views", "strip"],
        audience=audience(),
        reader_classes=CLASSES,
    )
    outs = nf.outputs(note)
    assert [(o.mode.value, o.view) for o in outs] == [
        ("strip", None),
        ("views", "member"),
        ("views", "spl"),
        ("views", "admin"),
        ("annotate", None),
    ]
    assert set(outs[0].notification["payload"]["properties"]) == case.readable["nobody"]
    assert all(UNIQUE_ID_KEY not in o.notification for o in outs)


@pytest.mark.parametrize("mode", list(Mode))
def test_hosts_always_removed(write_rules, mode: Mode) -> None:
    engine = load_rules(write_rules("[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n"))
    note = samples.notification("image.update", samples.image_payload({**HIDDEN_HOSTS, "a": "1"}))
    nf = NotificationFilter(engine, modes=[mode], reader_classes=CLASSES)
    for out in nf.outputs(note):
        assert out.notification["payload"]["properties"] == {"a": "1"}


def test_hosts_removed_without_builtin_section(write_rules) -> None:
    engine = load_rules(write_rules("[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n"))
    options = RulesOptions(rules_file=engine.document.path, os_glance_section=False)
    nf = NotificationFilter(options.load())
    (out,) = nf.outputs(samples.notification("image.create", samples.image_payload(HIDDEN_HOSTS)))
    assert out.notification["payload"]["properties"] == {}


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "x", "name": "y"},
        {"id": "x", "properties": None},
        samples.image_payload({"a": "1"}, secret_top_level="s"),
        {k: v for k, v in samples.image_payload({"a": "1"}).items() if k != "properties"},
        samples.image_payload({"a": {"extra_properties": {"b": "2"}}}),
        ["not", "an", "object"],
        "text where an image belongs",
        None,
    ],
    ids=["no-properties", "null", "unknown-key", "missing-key", "nested", "array", "str", "null-payload"],
)
def test_image_payload_of_another_shape_is_refused(roles_engine, payload) -> None:
    """Refused, not passed on: a filter that protects a search index fails closed."""
    nf = NotificationFilter(roles_engine, modes=["strip", "annotate"], reader_classes=CLASSES)
    with pytest.raises(FilterError) as info:
        nf.outputs(samples.notification("image.update", payload))
    assert "secret" not in str(info.value) and "extra_properties" not in str(info.value)


@pytest.mark.parametrize("properties", [["a"], "a", 3])
def test_properties_not_an_object_is_an_error(roles_engine, properties) -> None:
    nf = NotificationFilter(roles_engine)
    note = samples.notification("image.update", {**samples.image_payload(), "properties": properties})
    with pytest.raises(FilterError) as info:
        nf.outputs(note)
    assert "image.update payload: its properties are not an object" in str(info.value)


@pytest.mark.parametrize("event_type", [None, 3, ["image.update"]])
def test_event_type_must_be_a_string(roles_engine, event_type) -> None:
    with pytest.raises(FilterError):
        NotificationFilter(roles_engine).outputs({"event_type": event_type, "payload": {}})


def test_string_payload_of_image_event_passes(roles_engine) -> None:
    note = samples.notification("image.upload", "Image storage media is full", priority="ERROR")
    (out,) = NotificationFilter(roles_engine).outputs(note)
    assert out.notification["payload"] == "Image storage media is full"
    assert out.notification["priority"] == "ERROR"


def test_member_send_task_metadef_pass_unchanged_in_their_own_shape(roles_engine) -> None:
    for note in samples.every_event(ROLE_PROPS):
        if not is_image_event(note["event_type"]) and isinstance(note["payload"], dict):
            (out,) = NotificationFilter(roles_engine).outputs(note)
            assert out.notification["payload"] == note["payload"]


@pytest.mark.parametrize("event_type", ["image.member.create", "image.send", "task.success"])
def test_other_events_with_properties_or_input_are_refused(roles_engine, event_type) -> None:
    """A task event carrying ``input.image_properties``, a member event with properties:
    no payload Glance sends, so nothing the filter may pass on unfiltered."""
    for payload in ({"properties": {"spl_read_prop": "s"}}, {"input": {"image_properties": {}}}):
        with pytest.raises(FilterError):
            NotificationFilter(roles_engine).outputs(samples.notification(event_type, payload))


@pytest.mark.parametrize(
    "event_type",
    ["image.future_event", "Image.Update", "images.update", "image.update ", "compute.instance"],
)
def test_event_types_off_the_allow_list_are_refused(roles_engine, event_type) -> None:
    note = samples.notification(event_type, samples.image_payload(ROLE_PROPS))
    with pytest.raises(FilterError, match="allow-list"):
        NotificationFilter(roles_engine, audience=audience(["member"])).outputs(note)


def test_an_operator_may_allow_more_event_types_with_the_view_applied(roles_engine) -> None:
    from propguard.notifications.shapes import Shape

    note = samples.notification("image.future_event", samples.image_payload(ROLE_PROPS))
    nf = NotificationFilter(
        roles_engine, audience=audience(["member"]), extra_events={"image.future_event": Shape.IMAGE}
    )
    (out,) = nf.outputs(note)
    assert "spl_read_prop" not in out.notification["payload"]["properties"]


def test_top_level_import_properties_go_through_the_view(write_rules) -> None:
    """``image.prepare``/``image.upload`` carry two ``os_glance_*`` properties at the top level."""
    engine = load_rules(
        write_rules("[.*]\ncreate = @\nread = admin\nupdate = @\ndelete = @\n"),
        os_glance_section=False,
    )
    note = samples.notification("image.prepare", samples.image_event_payload("image.prepare", {}))
    (out,) = NotificationFilter(engine, audience=audience(["member"])).outputs(note)
    payload = out.notification["payload"]
    assert "os_glance_importing_to_stores" not in payload and "os_glance_failed_import" not in payload
    assert payload["name"] == "cirros-0.6.2" and payload["backend"] == "file1"


def test_spellings_the_database_equates_are_hidden_as_in_the_api(roles_engine) -> None:
    from propguard.glance.collation import folding
    from propguard.view import ImageView, ViewConfig

    view = ImageView(ViewConfig(folding=folding("utf8mb3_general_ci")))
    hidden = {k: v for k, v in ROLE_PROPS.items() if k.startswith("spl_read")}
    spelled = {k.upper(): v for k, v in hidden.items()} | {k + " ": v for k, v in hidden.items()}
    note = samples.notification("image.update", samples.image_payload(spelled))
    nf = NotificationFilter(roles_engine, audience=audience(["member"]), view=view)
    (out,) = nf.outputs(note)
    assert out.notification["payload"]["properties"] == {}


def test_annotation_fed_back_is_not_stripped_through(roles_engine) -> None:
    note = samples.notification("image.update", samples.image_payload(ROLE_PROPS))
    annotated = NotificationFilter(roles_engine, modes=["annotate"], reader_classes=CLASSES)
    (out,) = annotated.outputs(note)
    for mode in ("strip", "views"):
        nf = NotificationFilter(roles_engine, modes=[mode], reader_classes=CLASSES)
        for again in nf.outputs(out.notification):
            assert ANNOTATION_KEY not in again.notification["payload"]


@pytest.mark.parametrize("event_type", ["task.success", "image.member.create", "metadef_tag.create"])
def test_annotation_fed_back_is_removed_on_the_paths_that_copy(roles_engine, event_type) -> None:
    """Events passed on in their own shape are copies: the annotation must not ride along."""
    note = next(n for n in samples.every_event(ROLE_PROPS) if n["event_type"] == event_type)
    note = {**note, "payload": {**note["payload"], ANNOTATION_KEY: {"spl_read_prop": ["admin"]}}}
    note[VIEW_KEY] = "admin"
    nf = NotificationFilter(roles_engine, modes=list(Mode), reader_classes=CLASSES)
    for out in nf.outputs(note):
        assert ANNOTATION_KEY not in out.notification["payload"]
        assert out.notification.get(VIEW_KEY) == out.view


def test_service_roles_audience_and_class(write_rules) -> None:
    from data_paths import TESTS_DIR

    engine = load_rules(str(TESTS_DIR.parent / "policies" / "production.conf"))
    props = {"billing_code": "SKU", "hw_disk_bus": "virtio", "instance_uuid": "i"}
    note = samples.notification("image.update", samples.image_payload(props))
    plain = NotificationFilter(engine, audience=audience(["member"]))
    relayed = NotificationFilter(engine, audience=audience(["member"], ["service"]))
    assert set(plain.outputs(note)[0].notification["payload"]["properties"]) == {
        "hw_disk_bus",
        "instance_uuid",
    }
    assert set(relayed.outputs(note)[0].notification["payload"]["properties"]) == set(props)
    nova = ReaderClass.parse("nova", "member+service:service")
    assert nova.spec == "member+service:service"
    assert nova.credentials.service_roles == {"service"}
    (view,) = NotificationFilter(engine, modes=["views"], reader_classes=[nova]).outputs(note)
    assert set(view.notification["payload"]["properties"]) == set(props)
    (ann,) = NotificationFilter(engine, modes=["annotate"], reader_classes=[nova]).outputs(note)
    roles = ann.notification["payload"][ANNOTATION_KEY]["property_read_roles"]
    assert roles["billing_code"] == ["admin", "service:service"]


def test_rules_reload_is_picked_up(write_rules) -> None:
    path = write_rules("[^a$]\ncreate = @\nread = @\nupdate = @\ndelete = @\n")
    holder = open_rules(RulesOptions(rules_file=path), reload_interval=0)
    nf = NotificationFilter(holder.current, modes=["strip", "annotate"], reader_classes=CLASSES)
    note = samples.notification("image.update", samples.image_payload({"a": "1", "b": "2"}))
    strip, ann = nf.outputs(note)
    assert strip.notification["payload"]["properties"] == {"a": "1"}
    assert ann.notification["payload"][ANNOTATION_KEY]["property_read_roles"]["b"] == ["!"]
    import os

    os.utime(path, ns=(0, 0))  # a different stamp even within the same clock tick
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("[^b$]\ncreate = @\nread = @\nupdate = @\ndelete = @\n")
    strip, ann = nf.outputs(note)
    assert strip.notification["payload"]["properties"] == {"a": "1", "b": "2"}
    assert ann.notification["payload"][ANNOTATION_KEY]["property_read_roles"]["b"] == ["@"]


def test_derived_unique_id_is_stable_and_distinct() -> None:
    a = derived_unique_id("u1", Mode.VIEWS, "member")
    assert a == derived_unique_id("u1", Mode.VIEWS, "member")
    assert a == "u1.views.member"
    assert (
        len(
            {
                a,
                derived_unique_id("u1", Mode.VIEWS, "admin"),
                derived_unique_id("u2", Mode.VIEWS, "member"),
                derived_unique_id("u1", Mode.STRIP, None),
            }
        )
        == 4
    )


def test_memo_is_bounded(roles_engine, monkeypatch) -> None:
    from propguard import view
    from propguard.notifications import core

    monkeypatch.setattr(core, "MEMO_SIZE", 8)
    # A reader's memo starts with the core attributes and the always-hidden names.
    monkeypatch.setattr(view, "MEMO_SIZE", 40)
    nf = NotificationFilter(roles_engine, modes=["strip", "annotate"], audience=audience(["admin"]))
    props = {f"p{i}": "v" for i in range(50)}
    strip, _ = nf.outputs(samples.notification("image.update", samples.image_payload(props)))
    assert strip.notification["payload"]["properties"] == props
    assert all(len(m._memo) <= 40 for m in nf._memos.values())
    assert len(nf._annotations) <= 8


def test_key_set_memo_decides_names_once_and_copies_values_every_time(
    write_rules, monkeypatch
) -> None:
    """Payloads sharing key sets are stripped from the memo: each output has its own
    message's values, another key set is decided anew, the memo is bounded; the result
    is the per-key view's (:func:`_as_seen_by`) every time."""
    from propguard.notifications import core

    monkeypatch.setattr(core, "KEY_SETS_SIZE", 2)
    engine = load_rules(
        write_rules(
            "[^(x_secret_|os_glance_)]\ncreate = @\nread = admin\nupdate = @\ndelete = @\n"
            "[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n"
        ),
        os_glance_section=False,
    )
    member = audience(["member"])
    nf = NotificationFilter(engine, audience=member)
    reader = NotificationFilter(engine, audience=member)._memo(engine, member)
    names = ["a", "x_secret_1", "b", "x_secret_2", "c"]
    payloads = [
        samples.image_payload({n: f"{n}-{i}" for n in names[: 2 + i % 4]}, image_id=f"i{i}")
        for i in range(12)
    ]
    payloads += [
        {**samples.image_payload({"a": f"{i}", "x_secret_1": "s"}), "os_glance_failed_import": "f"}
        for i in range(3)
    ]
    for payload in payloads:
        (out,) = nf.outputs(samples.notification("image.update", payload))
        seen = out.notification["payload"]
        assert seen == core._as_seen_by(reader, payload)
        assert seen["id"] == payload["id"]
        assert seen["properties"] == {
            k: v for k, v in payload["properties"].items() if not k.startswith("x_secret_")
        }
        assert "os_glance_failed_import" not in seen
    (seer,) = nf._seers.values()
    assert 0 < len(seer._hidden) <= 2


def test_configuration_errors(roles_engine) -> None:
    with pytest.raises(ValueError, match="no output mode"):
        NotificationFilter(roles_engine, modes=[])
    with pytest.raises(ValueError, match="needs at least one reader class"):
        NotificationFilter(roles_engine, modes=["views"])
    with pytest.raises(ValueError, match="unique"):
        NotificationFilter(roles_engine, modes=["views"], reader_classes=CLASSES + CLASSES[:1])
    with pytest.raises(ValueError):
        NotificationFilter(roles_engine, modes=["fancy"])


@pytest.mark.parametrize("name", ["", "a b", "a,b", "a:b"])
def test_reader_class_bad_name(name: str) -> None:
    with pytest.raises(ValueError):
        ReaderClass.parse(name, "member")


@pytest.mark.parametrize("spec", ["member+", "@", "!", "a b"])
def test_reader_class_bad_roles(spec: str) -> None:
    with pytest.raises(ValueError):
        ReaderClass.parse("x", spec)


def test_reader_class_without_roles() -> None:
    rc = ReaderClass.parse("anyone", "")
    assert rc.credentials == Credentials.for_roles()
    assert rc.spec == ""
