"""The live tour judges leaks: a step showing a caller what the rules hide from it fails.

Whatever the status code: before, a member's ``GET`` answered 200 with a
property the rules deny her ``read`` was marked ``[ok ]``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from propguard import demo
from propguard.demo_live.tour import HttpTour, LiveActor
from propguard.rules.loading import RulesOptions

RULES = """\
[^Licence_]
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

IMAGE_ID = "6c1f8d4e-0000-4000-8000-000000000001"


def _image(**properties: str) -> dict:
    return {
        "id": IMAGE_ID,
        "name": "licensed",
        "status": "queued",
        "self": f"/v2/images/{IMAGE_ID}",
        "schema": "/v2/schemas/image",
        **properties,
    }


class _Response:
    reason = "OK"

    def __init__(self, status: int, body: object) -> None:
        self.status_code = status
        self.headers = {"Content-Type": "application/json"}
        self._body = body
        self.text = json.dumps(body)

    def json(self) -> object:
        return self._body


class _Session:
    auth = object()

    def __init__(self, response: _Response) -> None:
        self.response = response

    def request(self, url: str, method: str, **kwargs: object) -> _Response:
        return self.response


@pytest.fixture
def engine(tmp_path: Path):
    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    return RulesOptions.from_options({"rules_file": str(rules)}).load()


def _step(engine, status: int, body: object, expect: int = 200, **kwargs) -> tuple[int, str]:
    out = io.StringIO()
    tour = HttpTour("http://glance.invalid", engine, out)
    member = LiveActor("alice", _Session(_Response(status, body)), "alice", "demo", ("member",))
    tour.request(member, "GET", f"/v2/images/{IMAGE_ID}", expect, **kwargs)
    return tour.failures, out.getvalue()


def test_a_200_showing_what_the_rules_hide_fails(engine):
    failures, text = _step(engine, 200, _image(Licence_key="LIC-42", build="2"))
    assert failures == 1
    assert "[LEAK: shows Licence_key, hidden from this caller]" in text


def test_the_same_answer_without_it_is_ok(engine):
    failures, text = _step(engine, 200, _image(build="2"))
    assert failures == 0 and "[ok ]" in text


def test_a_name_the_step_says_is_hidden_fails_too(engine):
    failures, text = _step(engine, 200, _image(build="2"), hidden=["build"])
    assert failures == 1 and "LEAK: shows build" in text


def test_a_list_page_is_judged_image_by_image(engine):
    page = {"images": [_image(build="2"), _image(Licence_note="x")], "first": "/v2/images"}
    failures, text = _step(engine, 200, page)
    assert failures == 1 and "LEAK: shows Licence_note" in text


def test_wrong_status_and_leak_are_both_told(engine):
    failures, text = _step(engine, 201, _image(Licence_key="LIC-42"), expect=200)
    assert failures == 1
    assert "[UNEXPECTED (expected 200); LEAK: shows Licence_key" in text


def test_core_attributes_and_other_documents_are_not_properties(engine):
    # A relations answer is not an image document; core attributes are not under the rules.
    relations = {"images": [{"image_id": IMAGE_ID, "Licence_kind": "snapshot"}]}
    assert demo.leaks(engine, None, relations) == []
    creds = LiveActor("alice", None, "alice", "demo", ("member",)).credentials()
    assert demo.leaks(engine, creds, _image()) == []
    assert demo.leaks(engine, creds, _image(Licence_key="x")) == ["Licence_key"]
