"""propguard demo: a real Glance v2 behind auth_token and propguard, and a scripted tour.

Everything is real except Keystone: Glance 33 runs in-process (sqlite, file
store) and keystonemiddleware's auth_token validates tokens that its own
AuthTokenFixture supplies. Each step prints who asks for what, the status the
pipeline answers, the credentials propguard derived from that very request
(user roles, and the service token's roles when auth_token confirmed it) and
the rules engine's decision for them. The tour picks its property names from
the rules it is given, so it runs on any rules file; what Glance alone would
do is shown by running the same steps on Glance with its own property
protections (same rules, no propguard).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_POLICIES = Path(__file__).resolve().parent.parent / "policies"
PATCH_TYPE = "application/openstack-images-v2.1-json-patch"

#: Roles of the tour's tokens (no implied roles: each token carries exactly these).
ADMIN_ROLES = ("admin", "member", "reader")
MEMBER_ROLES = ("member", "reader")
SERVICE_ROLES = ("service",)
#: propguard's service_token_roles in the tour's pipeline.
SERVICE_TOKEN_ROLES = ("service",)

#: Property names the tour tries, most telling first; the rules decide which it uses.
CANDIDATE_NAMES = (
    "license_code",
    "billing_code",
    "os_distro",
    "x_distro",
    "x_os_distro",
    "instance_uuid",
    "image_type",
    "img_signature",
    "hw_disk_bus",
    "x_billing_code",
    "os_version",
    "owner_user_name",
    "x_note",
    "note",
)


@dataclass
class Actor:
    name: str
    token: str
    service_token: str | None = None
    roles: tuple[str, ...] = ()
    service_roles: tuple[str, ...] = ()


def _default_rules() -> str:
    candidate = REPO_POLICIES / "production.conf"
    if candidate.is_file():
        return str(candidate)
    raise SystemExit(
        "propguard demo: policies/production.conf not found next to the package; "
        "pass --rules FILE (run from a source checkout, e.g. ./scripts/demo.sh)"
    )


# -- the witness: propguard's own view of each request -----------------------

#: sink name -> what the witness saw, one dict per request.
_WITNESSED: dict[str, list[dict[str, Any]]] = {}


def witness_filter_factory(global_conf: Mapping[str, str], sink: str = "demo", **local: str):
    """Paste filter placed just before propguard: the credentials propguard derives.

    It calls propguard's own :func:`~propguard.identity.credentials_from_environ`
    with propguard's ``service_token_roles`` on the environ auth_token left,
    and keeps auth_token's verdict on the service token, so the tour explains
    each step with the credentials of the request it just made.
    """
    from propguard.identity import credentials_from_environ

    records = _WITNESSED.setdefault(sink, [])
    roles = tuple(r.strip() for r in local.get("service_token_roles", "service").split(","))

    def _filter(app):
        def _witness(environ, start_response):
            records.append(
                {
                    "creds": credentials_from_environ(environ, service_token_roles=roles),
                    "service_status": environ.get("HTTP_X_SERVICE_IDENTITY_STATUS"),
                    "service_roles": environ.get("HTTP_X_SERVICE_ROLES"),
                }
            )
            return app(environ, start_response)

        return _witness

    return _filter


def describe_caller(seen: Mapping[str, Any] | None, actor: Actor) -> str:
    """The caller as propguard saw it (from the witness), in words."""
    if seen is None:
        return "caller: (not seen)"
    creds = seen["creds"]
    if not creds.authenticated:
        return "caller: anonymous (no confirmed user token): no roles"
    text = f"caller: user {creds.user_id}, roles {', '.join(sorted(creds.roles)) or '(none)'}"
    if creds.service_roles:
        text += (
            f"; service token CONFIRMED by auth_token (user {creds.service_user_id}), "
            f"service roles {', '.join(sorted(creds.service_roles))}"
        )
    elif actor.service_token is not None:
        status = seen.get("service_status") or "absent"
        text += (
            f"; service token sent but not counted (auth_token: X-Service-Identity-Status "
            f"{status}; it carries no {'/'.join(SERVICE_TOKEN_ROLES)} role): no service roles"
        )
    else:
        text += "; no service token"
    return text


# -- the tour -----------------------------------------------------------------


class Tour:
    """Runs requests through a pipeline and narrates them, each with what propguard saw."""

    def __init__(self, glance: Any, engine: Any, sink: str, out=sys.stdout) -> None:
        self.glance = glance
        self.app = glance.webtest_app()
        self.engine = engine
        self.sink = sink
        self.out = out
        self.failures = 0
        self.step = 0

    def say(self, text: str = "") -> None:
        print(text, file=self.out)

    def request(
        self,
        actor: Actor,
        method: str,
        path: str,
        expect: int,
        *,
        body: Any = None,
        content_type: str | None = None,
        explain: Iterable[tuple[str, str]] = (),
        note: str = "",
        hidden: Iterable[str] = (),
    ) -> tuple[Any, Any]:
        """Send; print the answer, the caller propguard derived and the rules' decisions.

        ``explain``: (property, operation) pairs decided for the caller of this request.
        ``hidden``: names the answer must not show (see :func:`leaks`).
        Returns ``(json body or None, credentials)``.
        """
        self.step += 1
        seen_before = len(_WITNESSED.setdefault(self.sink, []))
        headers = self.glance.headers(actor.token, actor.service_token)
        kwargs: dict[str, Any] = {"headers": headers, "expect_errors": True}
        if body is not None:
            kwargs["params"] = _json(body)
            headers["Content-Type"] = content_type or "application/json"
        response = getattr(self.app, method.lower())(path, **kwargs)
        records = _WITNESSED[self.sink]
        seen = records[seen_before] if len(records) > seen_before else None
        creds = seen["creds"] if seen is not None else None
        data = response.json if response.content_type == "application/json" else None
        leaked = leaks(self.engine, creds, data, hidden)
        mark = verdict_mark(response.status_int == expect, expect, leaked)
        self.failures += 0 if mark == "ok " else 1
        shown = f" {_brief(body)}" if body is not None else ""
        self.say(f"{self.step:2}. [{mark}] {actor.name}: {method} {path}{shown}")
        self.say(f"      -> {response.status}{_error_message(response)}")
        self.say(f"      {describe_caller(seen, actor)}")
        for name, op in explain:
            if creds is not None and self.engine is not None:
                self.say(f"      {explain_decision(self.engine, creds, name, op)}")
        if note:
            self.say(f"      {note}")
        return data, creds


def leaks(engine: Any, creds: Any, data: Any, hidden: Iterable[str] = ()) -> list[str]:
    """Properties an answer shows that this step's caller must not see; empty when none.

    Why every step checks it, whatever its status code: a step that shows a
    property the rules hide from the caller is a leak even when Glance
    answered 200 as expected. The names that must not be visible are the
    step's ``hidden`` ones and every extra property of an image document in
    the answer (an image, a list page's images) that the rules deny ``read``
    to the caller; core attributes are not under the rules.
    """
    from propguard.glance.attributes import CORE_ATTRIBUTES

    must_not = set(hidden)
    found: set[str] = set()
    for document in _image_documents(data):
        for name in document:
            if name in must_not:
                found.add(name)
            elif name in CORE_ATTRIBUTES or engine is None or creds is None:
                continue
            elif not engine.allowed(name, "read", creds):
                found.add(name)
    return sorted(found)


def _image_documents(data: Any) -> list[dict[str, Any]]:
    """The image documents of a Glance v2 answer: the image itself, or a list page's."""

    def is_image(item: Any) -> bool:
        return isinstance(item, dict) and str(item.get("self", "")).startswith("/v2/images/")

    if is_image(data):
        return [data]
    if isinstance(data, dict) and isinstance(data.get("images"), list):
        return [item for item in data["images"] if is_image(item)]
    return []


def verdict_mark(status_ok: bool, expect: int, leaked: list[str]) -> str:
    """A step's mark: ``ok`` only with the expected status and nothing hidden shown."""
    if status_ok and not leaked:
        return "ok "
    parts = [] if status_ok else [f"UNEXPECTED (expected {expect})"]
    if leaked:
        parts.append(f"LEAK: shows {', '.join(leaked)}, hidden from this caller")
    return "; ".join(parts)


def explain_decision(engine: Any, creds: Any, name: str, op: str) -> str:
    decision = engine.decide(name, op, creds)
    where = decision.section.describe() if decision.section else "no section"
    verdict = "allowed" if decision.allowed else "denied"
    return f"rules: {op} '{name}' {verdict} by {where}: {decision.reason}"


def _json(body: Any) -> bytes:
    import orjson

    return orjson.dumps(body)


def _brief(body: Any) -> str:
    text = _json(body).decode()
    return text if len(text) < 110 else text[:107] + "..."


def _error_message(response: Any) -> str:
    if response.status_int < 400 or response.content_type != "application/json":
        return ""
    error = (response.json or {}).get("error") or {}
    return f" ({error.get('message', '')})" if error else ""


# -- what the rules let the tour show ----------------------------------------


@dataclass
class Plan:
    """Property names the rules make interesting, each None when the rules have none."""

    hidden: str | None = None  # the admin creates and reads it, a member cannot read it
    visible: str | None = None  # a member reads it, the admin creates it
    service_read: str | None = None  # readable relayed by Nova, not by the member alone
    service_write: str | None = None  # Nova may create it for the member, she alone may not
    write_once: str | None = None  # a member creates it and may never change it
    member_can: dict[str, dict[str, bool]] = field(default_factory=dict)


def plan(engine: Any) -> Plan:
    from propguard.credentials import Credentials

    admin = Credentials.for_roles(ADMIN_ROLES)
    member = Credentials.for_roles(MEMBER_ROLES)
    relayed = Credentials.for_roles(MEMBER_ROLES, SERVICE_ROLES)
    names = list(CANDIDATE_NAMES) + _reaching_names(engine)

    def can(creds, name, op) -> bool:
        return engine.allowed(name, op, creds)

    def first(test) -> str | None:
        return next((n for n in names if not n.startswith("os_glance") and test(n)), None)

    result = Plan()
    result.hidden = first(
        lambda n: can(admin, n, "create") and can(admin, n, "read") and not can(member, n, "read")
    )
    result.visible = first(
        lambda n: can(admin, n, "create") and can(member, n, "read") and n != result.hidden
    )
    result.service_read = first(
        lambda n: can(admin, n, "create") and can(relayed, n, "read") and not can(member, n, "read")
    )
    service_write = lambda n: can(relayed, n, "create") and not can(member, n, "create")  # noqa: E731
    # Preferably one the member reads (Nova's snapshot metadata): her change is then a 403.
    result.service_write = first(lambda n: service_write(n) and can(member, n, "read")) or first(
        service_write
    )
    result.write_once = first(
        lambda n: (
            can(member, n, "create")
            and can(member, n, "read")
            and not can(member, n, "update")
            and not can(admin, n, "update")
        )
    )
    for name in filter(None, vars(result).values()):
        if isinstance(name, str):
            result.member_can[name] = {
                op: can(member, name, op) for op in ("create", "read", "update", "delete")
            }
    return result


def _reaching_names(engine: Any) -> list[str]:
    """A name per section that the engine routes there (when the candidates miss one)."""
    try:
        from propguard.lint.sections import analyse_sections

        report = analyse_sections(engine.document, overlap=False)
    except (RecursionError, MemoryError, OverflowError):
        return []
    return [n for n in report.reaching.values() if n]


# -- the chapters ---------------------------------------------------------------


@dataclass
class Cast:
    admin: Actor
    alice: Actor
    alice_via_nova: Actor
    mallory: Actor


def _cast(glance: Any) -> Cast:
    """Tokens for the tour's actors (admin, alice, alice via Nova, alice posing as a service)."""
    from propguard.inprocess import DEFAULT_PROJECT as project

    alice_roles = MEMBER_ROLES
    return Cast(
        admin=Actor("admin", glance.user_token(ADMIN_ROLES, user_id="admin"), roles=ADMIN_ROLES),
        alice=Actor(
            "alice (member)", glance.user_token(alice_roles, user_id="alice"), roles=alice_roles
        ),
        alice_via_nova=Actor(
            "alice relayed by Nova (service token)",
            glance.user_token(alice_roles, user_id="alice"),
            glance.service_token(SERVICE_ROLES),
            roles=alice_roles,
            service_roles=SERVICE_ROLES,
        ),
        mallory=Actor(
            "alice with her own token as X-Service-Token",
            glance.user_token(alice_roles, user_id="alice"),
            glance.user_token(["member"], user_id="alice", project_id=project),
            roles=alice_roles,
        ),
    )


IMAGE = {"disk_format": "qcow2", "container_format": "bare", "visibility": "shared"}
SECRET = "LIC-42"


def _publish(tour: Tour, cast: Cast, p: Plan, answers: dict[str, str]) -> str | None:
    """The admin publishes an image holding a hidden and a visible property; what alice sees."""
    tour.say("== The operator publishes an image; what a member sees of it ==")
    extra = {}
    if p.hidden:
        extra[p.hidden] = SECRET
    if p.visible:
        extra[p.visible] = "ubuntu"
    if p.service_read and p.service_read not in extra:
        extra[p.service_read] = "NOVA-ONLY"
    image, _ = tour.request(
        cast.admin,
        "POST",
        "/v2/images",
        201,
        body={"name": "ubuntu-24.04", **IMAGE, **extra},
        explain=[(n, "create") for n in extra],
    )
    if not image or "id" not in image:
        tour.say("      (no image was created: the rest of this chapter is skipped)")
        return None
    path = f"/v2/images/{image['id']}"
    unreadable = [n for n in (p.hidden, p.service_read) if n]  # by the plan: no member reads them
    shown, creds = tour.request(
        cast.alice, "GET", path, 200, explain=[(n, "read") for n in extra], hidden=unreadable
    )
    if shown is not None:
        kept = sorted(n for n in extra if n in shown)
        gone = sorted(n for n in extra if n not in shown)
        tour.say(
            f"      properties alice sees: {', '.join(kept) or '(none of them)'}"
            + (f"; removed from the answer: {', '.join(gone)}" if gone else "")
        )
    if p.hidden:
        listing, _ = tour.request(
            cast.alice,
            "GET",
            f"/v2/images?{p.hidden}={SECRET}",
            200,
            explain=[(p.hidden, "read")],
            hidden=[p.hidden],
            note="a filter on a property the caller cannot read matches nothing, whatever "
            "the value (Glance alone: see the last chapter)",
        )
        if listing is not None:
            count = len(listing.get("images", []))
            answers["listed"] = f"{count} image{'s' if count != 1 else ''} listed"
            tour.say(f"      images listed: {count}")
    return path


def _member_edits(tour: Tour, cast: Cast, p: Plan, path: str, answers: dict[str, str]) -> None:
    """A member PATCHes the image: nothing hidden is lost or revealed."""
    tour.say("\n== A member edits the image: nothing hidden is lost or revealed ==")
    tour.request(
        cast.alice,
        "PATCH",
        path,
        200,
        body=[{"op": "replace", "path": "/name", "value": "ubuntu-24.04-lts"}],
        content_type=PATCH_TYPE,
        hidden=[n for n in (p.hidden, p.service_read) if n],
        note="'name' is a core attribute, not under the rules; Glance (its protections off "
        "behind propguard) changes only what the patch names",
    )
    if not p.hidden:
        return
    kept, _ = tour.request(cast.admin, "GET", path, 200, explain=[(p.hidden, "read")])
    if kept is not None:
        value = kept.get(p.hidden, "(gone)")
        answers["kept"] = f"{p.hidden} {value!r}"
        tour.say(f"      {p.hidden} as the admin sees it: {value!r}")
    can = p.member_can[p.hidden]
    tour.request(
        cast.alice,
        "PATCH",
        path,
        409,
        body=[{"op": "replace", "path": f"/{p.hidden}", "value": "FREE"}],
        content_type=PATCH_TYPE,
        explain=[(p.hidden, "read"), (p.hidden, "update")],
        note="a replace of a property the caller cannot read: 'does not exist' (Glance's "
        "409), the answer for a name that really does not exist",
    )
    add_ok = can["create"] and can["update"]
    tour.request(
        cast.alice,
        "PATCH",
        path,
        200 if add_ok else 403,
        body=[{"op": "add", "path": f"/{p.hidden}", "value": "FREE"}],
        content_type=PATCH_TYPE,
        explain=[(p.hidden, "create"), (p.hidden, "update")],
        hidden=[] if add_ok else [p.hidden],
        note="an add of a property the caller cannot read needs create and update: it "
        "could overwrite a value she cannot see",
    )


def _service_token(tour: Tour, cast: Cast, p: Plan, path: str | None) -> None:
    """What Nova's service token adds, and only when auth_token confirmed it."""
    tour.say("\n== Nova relays a member's request with its service token ==")
    if not (p.service_read or p.service_write):
        tour.say(
            "   (these rules give a confirmed service token nothing a member lacks: in strict "
            "mode service roles count only where a rule names service:<role> or "
            "service_roles:)"
        )
        if path is not None:
            names = [n for n in (p.hidden, p.visible) if n]
            relayed, _ = tour.request(
                cast.alice_via_nova, "GET", path, 200, explain=[(n, "read") for n in names]
            )
            if relayed is not None:
                tour.say(
                    "      properties alice sees relayed by Nova: "
                    + (", ".join(sorted(n for n in names if n in relayed)) or "(none of them)")
                )
    if p.service_read and path is not None:
        alone, _ = tour.request(cast.alice, "GET", path, 200, explain=[(p.service_read, "read")])
        relayed, _ = tour.request(
            cast.alice_via_nova, "GET", path, 200, explain=[(p.service_read, "read")]
        )
        if alone is not None and relayed is not None:
            tour.say(
                f"      {p.service_read}: alice alone sees "
                f"{alone.get(p.service_read, '(removed)')!r}, relayed by Nova "
                f"{relayed.get(p.service_read, '(removed)')!r}"
            )
    if p.service_write:
        snapshot = {"name": "web-1 snapshot", **IMAGE, p.service_write: "3f1a4f5e-8a0a"}
        tour.request(
            cast.alice,
            "POST",
            "/v2/images",
            403,
            body=snapshot,
            explain=[(p.service_write, "create")],
        )
        created, _ = tour.request(
            cast.alice_via_nova,
            "POST",
            "/v2/images",
            201,
            body=snapshot,
            explain=[(p.service_write, "create")],
        )
        if created and "id" in created:
            can = p.member_can[p.service_write]
            expect = 200 if can["update"] else (403 if can["read"] else 409)
            tour.request(
                cast.alice,
                "PATCH",
                f"/v2/images/{created['id']}",
                expect,
                body=[{"op": "replace", "path": f"/{p.service_write}", "value": "other"}],
                content_type=PATCH_TYPE,
                explain=[(p.service_write, "read"), (p.service_write, "update")],
                note="readable but protected: 403; unreadable: 409 'does not exist'",
            )
        tour.request(
            cast.mallory,
            "POST",
            "/v2/images",
            403,
            body=snapshot,
            explain=[(p.service_write, "create")],
            note="auth_token marks a service token without a service_token_roles role "
            "Invalid (Glance's delay_auth_decision lets the request go on as alice alone), "
            "and propguard counts no service role from it",
        )


def _write_once(tour: Tour, cast: Cast, p: Plan) -> None:
    tour.say("\n== A property a member sets once and nobody changes ==")
    if not p.write_once:
        tour.say("   (these rules have no property a member may create but nobody may update)")
        return
    name = p.write_once
    created, _ = tour.request(
        cast.alice,
        "POST",
        "/v2/images",
        201,
        body={"name": "signed", **IMAGE, name: "c2lnbmF0dXJl"},
        explain=[(name, "create")],
    )
    if created and "id" in created:
        tour.request(
            cast.alice,
            "PATCH",
            f"/v2/images/{created['id']}",
            403,
            body=[{"op": "replace", "path": f"/{name}", "value": "Zm9yZ2Vk"}],
            content_type=PATCH_TYPE,
            explain=[(name, "update")],
        )


def _glance_alone(tour: Tour, cast: Cast, p: Plan, propguard_answers: dict[str, str]) -> None:
    """The steps whose answer differs without propguard, run on Glance's own protections."""
    tour.say(
        "\n== The same steps on Glance alone (its own property protections, the same rules, "
        "no propguard) =="
    )
    if not p.hidden:
        tour.say("   (no property hidden from members in these rules: nothing to compare)")
        return
    extra = {p.hidden: SECRET}
    if p.visible:
        extra[p.visible] = "ubuntu"
    image, _ = tour.request(
        cast.admin, "POST", "/v2/images", 201, body={"name": "ubuntu-24.04", **IMAGE, **extra}
    )
    if not image or "id" not in image:
        return
    path = f"/v2/images/{image['id']}"
    listing, _ = tour.request(
        cast.alice, "GET", f"/v2/images?{p.hidden}={SECRET}", 200, hidden=[p.hidden]
    )
    if listing is not None:
        tour.say(
            f"      images listed: {len(listing.get('images', []))} -- Glance filters on the "
            f"stored value alice may not read: guessing {SECRET!r} right is confirmed "
            f"(behind propguard: {propguard_answers.get('listed', '?')})"
        )
    tour.request(
        cast.alice,
        "PATCH",
        path,
        200,
        body=[{"op": "replace", "path": "/name", "value": "ubuntu-24.04-lts"}],
        content_type=PATCH_TYPE,
        hidden=[p.hidden],
    )
    after, _ = tour.request(cast.admin, "GET", path, 200)
    if after is not None:
        tour.say(
            f"      {p.hidden} as the admin sees it: {after.get(p.hidden, '(gone)')!r} -- "
            "Glance deleted what the member could not read when she saved the image "
            f"(behind propguard: {propguard_answers.get('kept', '?')})"
        )


def _verdict(tours: list[Tour], out) -> int:
    failures = sum(t.failures for t in tours)
    steps = tours[-1].step  # numbered on from one tour to the next
    print("", file=out)
    if failures:
        print(f"{failures} of {steps} steps did not behave as expected", file=out)
        return 1
    print(f"all {steps} steps behaved as expected", file=out)
    return 0


# -- running it -----------------------------------------------------------------


@dataclass(frozen=True)
class DemoRules:
    """The rules file and how propguard reads it in the tour."""

    rules: str
    rule_format: str
    policy_file: str | None

    def filter_options(self) -> dict[str, str]:
        options = {
            "rules_file": self.rules,
            "rule_format": self.rule_format,
            "service_role_mode": "strict",
            "service_token_roles": ",".join(SERVICE_TOKEN_ROLES),
            "reload_on_sighup": "false",
        }
        if self.policy_file:
            options["policy_file"] = self.policy_file
        return options


def resolve_rules(
    rules: str, rule_format: str = "auto", policy_file: str | None = None
) -> DemoRules:
    """The format (``auto``: as ``propguard lint`` detects it) and, for the policies
    format, a policy file: the one given, else a ``policy.yaml`` beside the rules file."""
    from propguard.rules.loading import RulesOptions, detect_format
    from propguard.rules.parser import read_rules_text

    beside = os.path.join(os.path.dirname(rules), "policy.yaml")
    candidate = policy_file or (beside if os.path.isfile(beside) else None)
    if rule_format == "auto":
        text, problem = read_rules_text(rules)
        if problem is not None:
            raise SystemExit(f"propguard demo: {problem}")
        detected = detect_format(
            rules, text or "", RulesOptions(rule_format="auto", policy_file=candidate)
        )
        rule_format = str(detected)
    if rule_format == "policies":
        return DemoRules(rules, rule_format, candidate)
    return DemoRules(rules, rule_format, policy_file)


def run_tour(
    rules: str | DemoRules, workdir: str, out=sys.stdout, compare_with_glance: bool = True
) -> int:
    from propguard.inprocess import InProcessGlance
    from propguard.rules import RulesError
    from propguard.rules.loading import RulesOptions

    demo = rules if isinstance(rules, DemoRules) else resolve_rules(rules)
    options = demo.filter_options()
    try:
        engine = RulesOptions.from_options(options).load()
    except RulesError as exc:
        print(f"propguard demo: the rules do not load: {exc}", file=out)
        return 2
    p = plan(engine)
    sink = f"demo-{os.getpid()}-{id(out)}"
    witness = ("witness", "propguard.demo:witness_filter_factory", {"sink": sink})
    guard = ("propguard", "propguard.middleware:filter_factory", options)
    tours: list[Tour] = []
    answers: dict[str, str] = {}
    with InProcessGlance(os.path.join(workdir, "propguard"), extra_filters=[witness, guard]) as g:
        cast = _cast(g)
        tour = Tour(g, engine, sink, out)
        tours.append(tour)
        tour.say(f"propguard demo: Glance v2 in-process at {workdir}")
        tour.say("pipeline: authtoken witness propguard context rootapp")
        tour.say(
            f"rules: {demo.rules} ({demo.rule_format} format"
            + (f", policy_file {demo.policy_file}" if demo.policy_file else "")
            + "; service_role_mode strict, service_token_roles "
            + ",".join(SERVICE_TOKEN_ROLES)
            + ")"
        )
        tour.say(
            "names the rules make interesting: "
            + ", ".join(f"{k}={v}" for k, v in vars(p).items() if isinstance(v, str))
        )
        tour.say("")
        path = _publish(tour, cast, p, answers)
        if path is not None:
            _member_edits(tour, cast, p, path, answers)
        _service_token(tour, cast, p, path)
        _write_once(tour, cast, p)
    if compare_with_glance:
        native = {
            "glance_property_protection_file": demo.rules,
            "glance_property_protection_rule_format": demo.rule_format,
        }
        if demo.policy_file:
            native["glance_policy_file"] = demo.policy_file
        sink_native = sink + "-native"
        witness_native = (
            "witness",
            "propguard.demo:witness_filter_factory",
            {"sink": sink_native},
        )
        with InProcessGlance(
            os.path.join(workdir, "glance-alone"), extra_filters=[witness_native], **native
        ) as g:
            tour = Tour(g, engine, sink_native, out)
            tour.step = tours[-1].step
            tours.append(tour)
            tour.say("")
            tour.say("pipeline: authtoken witness context rootapp (Glance's own protections)")
            _glance_alone(tour, _cast(g), p, answers)
    return _verdict(tours, out)


def _quiet_libraries() -> None:
    """Keep the tour readable: Glance and friends log deprecation chatter at import."""
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    for name in ("glance", "keystonemiddleware", "oslo_policy", "glance_store"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("stevedore").setLevel(logging.CRITICAL)  # optional store drivers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="propguard demo",
        description="Run a real Glance v2 API in-process behind keystonemiddleware's "
        "auth_token and propguard, and a scripted tour of what a member, an admin and a "
        "member relayed by Nova with a service token can see and change, each answer "
        "explained with the credentials propguard derived from that request; then the same "
        "steps on Glance alone. Exit status: 0 when every step answered as the rules say, "
        "1 otherwise, 2 when the rules do not load.",
    )
    parser.add_argument(
        "--rules",
        metavar="FILE",
        help="rules file, roles or policies format (default: policies/production.conf)",
    )
    parser.add_argument(
        "--rules-format",
        choices=("auto", "roles", "policies"),
        default="auto",
        help="how its values are read (default: auto, as propguard lint detects it)",
    )
    parser.add_argument(
        "--policy-file",
        metavar="FILE",
        help="policies format: the oslo.policy file its names resolve in (default: a "
        "policy.yaml beside the rules file)",
    )
    parser.add_argument(
        "--workdir",
        metavar="DIR",
        help="directory for Glance's databases and images (default: a temporary directory)",
    )
    parser.add_argument(
        "--no-glance-comparison",
        dest="compare",
        action="store_false",
        help="skip the last chapter (the same steps on Glance alone)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    rules = os.path.abspath(args.rules) if args.rules else _default_rules()
    policy_file = os.path.abspath(args.policy_file) if args.policy_file else None
    demo = resolve_rules(rules, args.rules_format, policy_file)
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        return run_tour(demo, args.workdir, compare_with_glance=args.compare)
    with tempfile.TemporaryDirectory(prefix="propguard-demo-") as workdir:
        return run_tour(demo, workdir, compare_with_glance=args.compare)


if __name__ == "__main__":
    sys.exit(main())
