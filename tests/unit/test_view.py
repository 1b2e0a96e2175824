"""The reader's view, and every adapter that shows image data asking it alike.

One table of rules, collations, callers and names (with the spellings a
MySQL/MariaDB collation equates) goes through each adapter: the API filter
(image, list page, task), the notification filter (strip and views) and the
relations API. None may show a caller a name or a value that the view hides,
and all must show the same names.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import webob
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from propguard import opts
from propguard.credentials import Credentials
from propguard.glance.attributes import CORE_ATTRIBUTES
from propguard.glance.collation import folding
from propguard.middleware import PropertyProtectionFilter
from propguard.notifications import samples
from propguard.notifications.core import NotificationFilter, ReaderClass
from propguard.relations.api import present
from propguard.rules import parse_rules_text
from propguard.rules.engine import compile_rules
from propguard.view import (
    ALWAYS_HIDDEN,
    ImageView,
    UnexpectedDocument,
    ViewConfig,
)

RULES = """\
[^secret_]
create = admin
read = admin
update = admin
delete = admin

[^base_image_ref$]
create = admin,service:nova
read = admin,service:nova
update = admin
delete = admin

[^locations$]
create = admin
read = admin
update = admin
delete = admin

[.*]
create = @
read = @
update = @
delete = @
"""
ENGINE = compile_rules(parse_rules_text("rules.conf", RULES, "roles"))
MEMBER = Credentials.for_roles(["member"])
ADMIN = Credentials.for_roles(["admin"])
NOVA = Credentials.for_roles(["member"], ["nova"])
CALLERS = {"member": MEMBER, "admin": ADMIN, "nova": NOVA}
COLLATIONS = ("binary", "utf8mb3_general_ci", "mysql_any")

#: Names and the spellings MariaDB's general_ci takes for them.
BASES = ("secret_key", "base_image_ref", "colour", "instance_uuid", "backup_type")
SPELLINGS = (
    lambda n: n,
    str.upper,
    str.title,
    lambda n: n + " ",
    lambda n: n.replace("e", "é", 1),
    lambda n: n.replace("s", "ｓ", 1),  # fullwidth: UCA equates it, general_ci does not
)


def hidden_by_oracle(name: str, creds: Credentials, config: ViewConfig) -> bool:
    """What the view must hide, derived independently of it."""
    if name in config.free_keys:
        return False
    if name in ALWAYS_HIDDEN:
        return True
    return not ENGINE.allowed(config.folding.fold(name), "read", creds)


# -- the view itself --------------------------------------------------------


def test_core_attributes_are_free_unless_protected() -> None:
    image = {"id": "i", "name": "n", "locations": [], "direct_url": "file:///x", "colour": "red"}
    reader = ImageView().reader(ENGINE, MEMBER)
    assert not reader.image(dict(image))
    protected = ImageView(ViewConfig(frozenset({"locations"}))).reader(ENGINE, MEMBER)
    shown = dict(image)
    assert protected.image(shown)
    assert "locations" not in shown and shown["direct_url"] == "file:///x"


def test_always_hidden_names_are_hidden_from_everyone() -> None:
    for creds in CALLERS.values():
        reader = ImageView().reader(ENGINE, creds)
        assert reader.properties({"os_glance_stage_host": "h", "colour": "red"}) == {
            "colour": "red"
        }


@pytest.mark.parametrize("spelling", ["SECRET_KEY", "Secret_Key", "sécret_key", "secret_key "])
def test_spellings_the_database_equates_are_decided_alike(spelling: str) -> None:
    folded = ImageView(ViewConfig(folding=folding("utf8mb3_general_ci"))).reader(ENGINE, MEMBER)
    assert not folded.can_read(spelling)
    exact = ImageView().reader(ENGINE, MEMBER)
    # To a byte-comparing database, only the spellings the regex matches as written.
    assert exact.can_read(spelling) == (not spelling.startswith("secret_"))


@pytest.mark.parametrize(
    "document",
    [["a", "list"], "text", 3, None],
    ids=["array", "string", "number", "null"],
)
def test_a_document_of_another_shape_is_refused(document: Any) -> None:
    reader = ImageView().reader(ENGINE, MEMBER)
    with pytest.raises(UnexpectedDocument):
        reader.image(document)
    with pytest.raises(UnexpectedDocument):
        reader.images([document])
    with pytest.raises(UnexpectedDocument):
        reader.task(document)
    with pytest.raises(UnexpectedDocument):
        reader.task({"input": document if document is not None else ["x"]})
    with pytest.raises(UnexpectedDocument):
        reader.task({"input": {"image_properties": document or ["x"]}})


def test_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from propguard import view

    monkeypatch.setattr(view, "MEMO_SIZE", 40)
    reader = ImageView().reader(ENGINE, MEMBER)
    for i in range(200):
        assert reader.can_read(f"p{i}")
        assert len(reader._memo) <= 40
    assert reader.can_read("name") and not reader.can_read("secret_x")


# -- decisions shared across requests ----------------------------------------


def _counting(text: str = RULES) -> tuple[Any, list[str]]:
    """An engine of ``text`` that notes every name it is asked about."""
    engine = compile_rules(parse_rules_text("rules.conf", text, "roles"))
    asked: list[str] = []
    decide = engine.allowed

    def allowed(name: str, op: str, creds: Credentials) -> bool:
        asked.append(name)
        return decide(name, op, creds)

    engine.allowed = allowed  # type: ignore[method-assign]
    return engine, asked


def test_a_role_set_is_decided_once_across_requests() -> None:
    engine, asked = _counting()
    view = ImageView()
    page = [{"id": "i", "colour": "red", "secret_key": "s"}] * 3
    alice = Credentials.for_roles(["member"], user_id="alice", project_id="p1")
    bob = Credentials.for_roles(["Member"], user_id="bob", project_id="p2")
    for creds in (alice, bob, alice):
        images = [dict(image) for image in page]
        assert view.reader(engine, creds).images(images)
        assert images[2] == {"id": "i", "colour": "red"}
    assert sorted(asked) == ["colour", "secret_key"]  # the first request only
    assert view.reader(engine, ADMIN).can_read("secret_key")  # another role set: asked
    assert sorted(asked) == ["colour", "secret_key", "secret_key"]


def test_every_request_records_its_divergences_and_the_shadow_is_asked_once() -> None:
    from propguard.decisions import Trail

    engine = compile_rules(parse_rules_text("rules.conf", RULES, "roles"))
    shadow, asked = _counting(RULES.replace("read = admin", "read = admin,member", 1))
    view = ImageView()
    for _ in range(3):
        trail = Trail()
        reader = view.reader(engine, MEMBER, shadow=shadow, trail=trail)
        images = [{"id": "i", "colour": "red", "secret_key": "s"}, {"secret_key": "t"}]
        assert reader.images(images) and images == [{"id": "i", "colour": "red"}, {}]
        assert not reader.can_read("secret_key")
        assert trail.divergences == [("read", "secret_key", False, True)]  # once per request
        assert trail.hidden == {"secret_key": 2}
    assert sorted(asked) == ["colour", "secret_key"]


def test_reloaded_rules_decide_afresh() -> None:
    from propguard.decisions import Trail

    view = ImageView()
    hiding = compile_rules(parse_rules_text("rules.conf", RULES, "roles"))
    showing = compile_rules(
        parse_rules_text("rules.conf", RULES.replace("read = admin", "read = @", 1), "roles")
    )
    for engine, shadow, shown, diverges in [
        (hiding, None, False, False),
        (showing, None, True, False),
        (showing, hiding, True, True),
        (showing, showing, True, False),
        (hiding, None, False, False),
    ]:
        trail = Trail()
        reader = view.reader(engine, MEMBER, shadow=shadow, trail=trail)
        assert reader.can_read("secret_key") == shown
        assert bool(trail.divergences) == diverges


def test_policies_are_decided_per_caller_not_per_role_set(tmp_path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('"in_p1": "project_id:p1"\n')
    text = "[.*]\ncreate = in_p1\nread = in_p1\nupdate = in_p1\ndelete = in_p1\n"
    engine = compile_rules(
        parse_rules_text("p.conf", text, "policies"), policy_file=str(policy), policy_namespaces=()
    )
    view = ImageView()
    in_p1 = Credentials.for_roles(["member"], user_id="alice", project_id="p1")
    in_p2 = Credentials.for_roles(["member"], user_id="alice", project_id="p2")
    for _ in range(2):
        assert view.reader(engine, in_p1).can_read("colour")
        assert not view.reader(engine, in_p2).can_read("colour")


def test_shared_decisions_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from propguard import view as module

    monkeypatch.setattr(module, "SHARED_CALLERS", 3)
    monkeypatch.setattr(module, "SHARED_NAMES", 40)
    monkeypatch.setattr(module, "MEMO_SIZE", 64)
    view = ImageView()
    for i in range(10):
        creds = Credentials.for_roles(["member", f"r{i}"])
        reader = view.reader(ENGINE, creds)
        for j in range(100):
            assert reader.can_read(f"p{j}") and not reader.can_read(f"secret_{j}")
        assert len(reader._memo) <= 40 and len(reader._own) <= 64
        assert view._known is not None and len(view._known[2]) <= 3
    assert view.reader(ENGINE, ADMIN).can_read("secret_1")


def test_threads_sharing_a_view_get_the_rules_answers() -> None:
    import random
    import threading

    view = ImageView(ViewConfig(frozenset({"locations"}), folding("utf8mb3_general_ci")))
    config = view.config
    callers = [*CALLERS.values(), Credentials.for_roles(["admin"], ["nova"])]
    spellings = [spell(base) for base in BASES for spell in SPELLINGS] + ["locations", "name"]
    wrong: list[tuple[str, Credentials]] = []

    def work(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(300):
            creds = rnd.choice(callers)
            reader = view.reader(ENGINE, creds)
            for name in rnd.sample(spellings, 8):
                if reader.can_read(name) == hidden_by_oracle(name, creds, config):
                    wrong.append((name, creds))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not wrong


# -- every adapter, one answer ----------------------------------------------


class _Glance:
    """Answers each route with the document the test gives it (the API filter's upstream)."""

    document: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = json.dumps(self.document).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]


def _api_filter(tmp_path_factory: pytest.TempPathFactory, collation: str):
    rules = tmp_path_factory.mktemp("view") / "rules.conf"
    rules.write_text(RULES)
    glance = _Glance()
    options = opts.resolve(
        {
            "rules_file": str(rules),
            "name_collation": collation,
            "protect_core_attributes": "locations",
            "trust_identity_headers": "true",
            "reload_interval": "-1",
            "service_token_roles": "nova",
        }
    )
    return glance, PropertyProtectionFilter(glance, options)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {c: _api_filter(tmp_path_factory, c) for c in COLLATIONS}


def _headers(creds: Credentials) -> dict[str, str]:
    headers = {"X-Identity-Status": "Confirmed", "X-Roles": ",".join(sorted(creds.roles))}
    if creds.service_roles:
        headers |= {
            "X-Service-Identity-Status": "Confirmed",
            "X-Service-Roles": ",".join(sorted(creds.service_roles)),
        }
    return headers


def _through_api(adapter: Any, path: str, document: Any, creds: Credentials) -> Any:
    glance, api = adapter
    glance.document = document
    response = webob.Request.blank(path, headers=_headers(creds)).get_response(api)
    assert response.status_int == 200, response.text
    return response.json


names = st.tuples(st.sampled_from(BASES), st.sampled_from(SPELLINGS)).map(lambda t: t[1](t[0]))
properties = st.dictionaries(names | st.sampled_from(sorted(ALWAYS_HIDDEN)), st.just(""), max_size=6)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    props=properties,
    collation=st.sampled_from(COLLATIONS),
    caller=st.sampled_from(sorted(CALLERS)),
)
@example(props={"SECRET_KEY": "", "colour": ""}, collation="utf8mb3_general_ci", caller="member")
@example(props={"Base_Image_Ref": ""}, collation="mysql_any", caller="member")
@example(props={"os_glance_stage_host": ""}, collation="binary", caller="admin")
def test_no_adapter_shows_what_the_view_hides(adapters, props, collation, caller) -> None:
    # Each value is unique and names its key: a hidden value found anywhere is a leak.
    props = {name: f"value-of-{i}" for i, name in enumerate(props)}
    creds = CALLERS[caller]
    config = ViewConfig(frozenset({"locations"}), folding(collation))
    hidden = {n for n in props if hidden_by_oracle(n, creds, config)}
    visible = set(props) - hidden
    secrets = [props[n] for n in hidden]
    image = {"id": "i1", "name": "img", "locations": [{"url": "file:///l"}], **props}

    api = adapters[collation]
    shown: dict[str, set[str]] = {}
    got = _through_api(api, "/v2/images/i1", image, creds)
    shown["image"] = set(got) - CORE_ATTRIBUTES
    assert ("locations" in got) == (caller == "admin")
    page = _through_api(api, "/v2/images", {"images": [image, image]}, creds)
    shown["list"] = set(page["images"][0]) - CORE_ATTRIBUTES
    task = {"id": "t", "input": {"image_properties": props, "loc_url": "file:///l"}}
    got_task = _through_api(api, "/v2/tasks/t", task, creds)
    shown["task"] = set(got_task["input"]["image_properties"])
    assert ("loc_url" in got_task["input"]) == (caller == "admin")

    view = api[1].view
    audience = NotificationFilter(ENGINE, audience=creds, view=view)
    (out,) = audience.outputs(samples.notification("image.update", samples.image_payload(props)))
    shown["notification"] = set(out.notification["payload"]["properties"])
    classes = NotificationFilter(
        ENGINE,
        modes=["views"],
        reader_classes=[ReaderClass.parse("c", ",".join(sorted(creds.roles)))],
        view=view,
    )
    if not creds.service_roles:
        (out,) = classes.outputs(samples.notification("image.create", samples.image_payload(props)))
        shown["view"] = set(out.notification["payload"]["properties"])

    relation = present(_relation(props), view.reader(ENGINE, creds))
    shown["relation"] = set(relation["provenance"]["asserted"])
    assert (relation["base_image_ref"] is None) == (
        hidden_by_oracle("base_image_ref", creds, config)
    )

    for adapter, names_shown in shown.items():
        expected = visible if adapter != "relation" else visible & set(_relation(props)["asserted"])
        assert names_shown == expected, adapter
    everything = json.dumps([got, page, got_task, out.notification, relation])
    for secret in secrets:
        assert secret not in everything


def _relation(props: dict[str, str]) -> dict[str, Any]:
    """A relations row whose asserted values are the image's (Nova's create body)."""
    return {
        "image_id": "i1",
        "instance_uuid": "u1",
        "kind": "snapshot",
        "backup_type": None,
        "origin": None,
        "image_owner": "p1",
        "image_name": "img",
        "requester_user_id": "alice",
        "requester_project_id": "p1",
        "instance_project_id": "p1",
        "base_image_ref": "b1",
        "request_id": "req-1",
        "global_request_id": None,
        "recorded_at": None,
        "image_created_at": None,
        "upload_completed_at": None,
        "compute_patched_at": None,
        "deleted_at": None,
        "deleted_reason": None,
        "deleted_request_id": None,
        "provenance": "service_token",
        "service_user_id": "nova",
        "service_project_id": "service",
        "upload_method": None,
        "asserted": {k: v for k, v in props.items() if k.strip().lower() in BASES},
        "mismatches": [],
    }
