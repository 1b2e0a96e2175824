"""propguard.metrics: bounded labels, what counts as hidden, the /metrics app's restriction."""

from __future__ import annotations

import webob
from prometheus_client.parser import text_string_to_metric_families

from propguard import metrics
from propguard.credentials import Credentials
from propguard.decisions import Trail
from propguard.errors import ApiError, UpstreamAnswer
from propguard.relations.outbox import Outbox
from propguard.rules import parse_rules_text
from propguard.rules.engine import compile_rules
from propguard.view import ImageView

RULES = """\
[^secret_]
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


def sample(name: str, **labels: str) -> float:
    text = metrics.render().decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return 0.0


def test_outcomes() -> None:
    assert metrics.outcome_of(webob.Response(status=200), False) == "passed"
    assert metrics.outcome_of(webob.Response(status=404), False) == "upstream"
    assert metrics.outcome_of(ApiError(403, "no"), True) == "refused"
    assert metrics.outcome_of(ApiError(409, "no"), True) == "refused"
    assert metrics.outcome_of(ApiError(400, "bad"), True) == "invalid"
    assert metrics.outcome_of(ApiError(502, "bad"), True) == "error"
    assert metrics.outcome_of(UpstreamAnswer(webob.Response(status=404)), False) == "upstream"
    assert metrics.outcome_of(lambda environ, start: [], False) == "unchecked"


def test_a_caller_chosen_method_is_other() -> None:
    before = sample("propguard_decisions_total", route="image", method="other", outcome="passed")
    metrics.decided("image", {"REQUEST_METHOD": "X-EVIL-NAME"}, webob.Response(), False)
    after = sample("propguard_decisions_total", route="image", method="other", outcome="passed")
    assert after == before + 1
    assert "X-EVIL-NAME" not in metrics.render().decode()


def test_hidden_properties_are_counted_per_request() -> None:
    environ: dict = {"REQUEST_METHOD": "GET"}
    trail = Trail()
    reader = ImageView().reader(ENGINE, MEMBER, trail=trail)
    page = [{"id": "1", "secret_a": 1, "secret_b": 2, "x": 3}, {"id": "2", "secret_a": 1}]
    assert reader.images(page)
    assert page == [{"id": "1", "x": 3}, {"id": "2"}]
    assert sum(trail.hidden.values()) == 3
    image = {"id": "3", "secret_c": 1}
    assert reader.image(image)
    task = {"input": {"image_properties": {"secret_d": 1, "ok": 2}}}
    reader.task(task)
    metrics.note_hidden(environ, sum(trail.hidden.values()))  # as the filter does at the end
    assert environ[metrics.HIDDEN_KEY] == 5
    before = sample("propguard_hidden_properties_total", route="images")
    hidden_before = sample(
        "propguard_decisions_total", route="images", method="GET", outcome="hidden"
    )
    metrics.decided("images", environ, webob.Response(), False)
    assert sample("propguard_hidden_properties_total", route="images") == before + 5
    assert (
        sample("propguard_decisions_total", route="images", method="GET", outcome="hidden")
        == hidden_before + 1
    )


def test_the_metrics_app_answers_only_its_source_ranges() -> None:
    app = metrics.app_factory({})
    local = webob.Request.blank("/metrics", remote_addr="127.0.0.1").get_response(app)
    assert local.status_code == 200 and b"propguard_decisions_total" in local.body
    remote = webob.Request.blank("/metrics", remote_addr="192.0.2.7").get_response(app)
    assert remote.status_code == 403
    wide = metrics.app_factory({}, allowed_source_ranges="192.0.2.0/24")
    assert (
        webob.Request.blank("/metrics", remote_addr="192.0.2.7").get_response(wide).status_code
        == 200
    )


def test_outbox_depth_and_lag(tmp_path) -> None:
    outbox = Outbox(str(tmp_path / "outbox"))
    assert metrics.outbox_depth(outbox) == (0, 0.0)
    outbox.append([{"event": "deleted", "image_id": "i", "at": "2000-01-01T00:00:00"}])
    size, lag = metrics.outbox_depth(outbox)
    assert size > 0 and lag > 20 * 365 * 86400


def test_api_shadow_divergences_are_counted_by_sections_never_by_name() -> None:
    """Each shadow_divergence record of the API filter is one count, labelled by the
    route template, the operation and both deciding sections: no property name."""
    from propguard.decisions import DecisionLog

    labels = {
        "route": "image",
        "operation": "read",
        "enforced_section": "rules.conf:7",
        "shadow_section": "next.conf:1",
        "change": "would_hide",
    }
    write = dict(labels, operation="update", change="would_allow")
    write.update(enforced_section="rules.conf:1", shadow_section="next.conf:7")
    before = sample("propguard_shadow_divergences_total", **labels)
    before_write = sample("propguard_shadow_divergences_total", **write)
    trail = Trail()
    trail.divergences.extend(
        [("read", "x_secret_caller_chosen", True, False), ("read", "x_other", True, False)]
    )
    trail.divergences.append(("update", "secret_key", False, True))
    sections = {"x_secret_caller_chosen": 7, "x_other": 7, "secret_key": 1}
    shadow_sections = {"x_secret_caller_chosen": 1, "x_other": 1, "secret_key": 7}
    DecisionLog(enabled=False).request(
        trail,
        {"REQUEST_METHOD": "GET"},
        MEMBER,
        "image",
        status=200,
        refused=False,
        enforce=True,
        where=lambda name: f"rules.conf:{sections[name]}",
        shadow_where=lambda name: f"next.conf:{shadow_sections[name]}",
    )
    assert sample("propguard_shadow_divergences_total", **labels) == before + 2
    assert sample("propguard_shadow_divergences_total", **write) == before_write + 1
    assert "x_secret_caller_chosen" not in metrics.render().decode()
