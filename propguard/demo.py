"""``propguard demo``: a real Glance v2 behind auth_token and propguard, and a scripted tour.

Everything is real except Keystone: Glance 33 runs in-process (sqlite, file
store), keystonemiddleware's ``auth_token`` validates tokens that its own
``AuthTokenFixture`` supplies. Each step prints who asks for what, the status
propguard (or Glance) answers, and why, in the words of the rules engine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_POLICIES = Path(__file__).resolve().parent.parent / "policies"
PATCH_TYPE = "application/openstack-images-v2.1-json-patch"


@dataclass
class Actor:
    name: str
    token: str
    service_token: str | None = None


def _default_rules() -> str:
    candidate = REPO_POLICIES / "production.conf"
    if candidate.is_file():
        return str(candidate)
    raise SystemExit(
        "propguard demo: policies/production.conf not found next to the package; "
        "pass --rules FILE (run from a source checkout, e.g. ./scripts/demo.sh)"
    )


class Tour:
    """Runs requests through the pipeline and narrates them."""

    def __init__(self, glance: Any, engine_of: Any, out=sys.stdout) -> None:
        self.glance = glance
        self.app = glance.webtest_app()
        self.engine_of = engine_of
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
        why: str,
        body: Any = None,
        content_type: str | None = None,
    ) -> Any:
        self.step += 1
        headers = self.glance.headers(actor.token, actor.service_token)
        kwargs: dict[str, Any] = {"headers": headers, "expect_errors": True}
        if body is not None:
            kwargs["params"] = _json(body)
            headers["Content-Type"] = content_type or "application/json"
        response = getattr(self.app, method.lower())(path, **kwargs)
        ok = response.status_int == expect
        self.failures += 0 if ok else 1
        mark = "ok " if ok else "UNEXPECTED"
        shown = f" {_brief(body)}" if body is not None else ""
        self.say(f"{self.step:2}. [{mark}] {actor.name}: {method} {path}{shown}")
        self.say(f"      -> {response.status}{_error_message(response)}")
        self.say(f"      {why}")
        return response.json if response.content_type == "application/json" else None

    def explain(self, actor_creds: Any, name: str, op: str) -> str:
        decision = self.engine_of().decide(name, op, actor_creds)
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


@dataclass
class Cast:
    """Who takes part in the tour, and the credentials the narration explains rules for."""

    admin: Actor
    alice: Actor
    alice_via_nova: Actor
    mallory: Actor
    member_creds: Any
    relayed_creds: Any


def _filter_options(rules: str) -> dict[str, str]:
    """propguard's paste options in the tour's pipeline."""
    return {
        "rules_file": rules,
        "rule_format": "roles",
        "service_role_mode": "strict",
        "reload_on_sighup": "false",
    }


def _cast(glance: Any) -> Cast:
    """Tokens for the tour's actors (admin, alice, alice via Nova, alice posing as a service)."""
    from propguard.credentials import Credentials
    from propguard.inprocess import DEFAULT_PROJECT as project

    admin = Actor("admin", glance.user_token(["admin", "member", "reader"]))
    alice = Actor("alice (member)", glance.user_token(["member", "reader"], user_id="alice"))
    nova_token = glance.service_token(["service"])
    alice_via_nova = Actor(
        "alice relayed by Nova (service token)",
        glance.user_token(["member", "reader"], user_id="alice"),
        nova_token,
    )
    mallory = Actor(
        "alice with her own token as X-Service-Token",
        glance.user_token(["member", "reader"], user_id="alice"),
        glance.user_token(["member"], user_id="alice", project_id=project),
    )
    return Cast(
        admin=admin,
        alice=alice,
        alice_via_nova=alice_via_nova,
        mallory=mallory,
        member_creds=Credentials.for_roles(["member", "reader"]),
        relayed_creds=Credentials.for_roles(["member", "reader"], ["service"]),
    )


def _publish_and_see(tour: Tour, cast: Cast) -> str:
    """The operator publishes a licensed image; what a member sees of it. Returns its path."""
    say = tour.say
    say("== The operator publishes an image with a licence key ==")
    image = tour.request(
        cast.admin,
        "POST",
        "/v2/images",
        201,
        tour.explain(cast.member_creds, "license_code", "read")
        + "  (admin creates it; members will not see it)",
        {
            "name": "ubuntu-24.04",
            "disk_format": "qcow2",
            "container_format": "bare",
            "visibility": "shared",
            "license_code": "LIC-42",
            "os_distro": "ubuntu",
        },
    )
    image_id = image["id"]
    path = f"/v2/images/{image_id}"

    say("\n== What a member sees ==")
    shown = tour.request(
        cast.alice, "GET", path, 200, "license_code is removed from the response; os_distro stays"
    )
    say(
        f"      properties alice sees: {sorted(k for k in shown if k in ('license_code', 'os_distro'))}"
    )
    listing = tour.request(
        cast.alice,
        "GET",
        "/v2/images?license_code=LIC-42",
        200,
        "a filter on a property alice cannot read matches nothing, whatever the value "
        "(Glance alone would list the image: a value oracle)",
    )
    say(f"      images listed: {len(listing['images'])}")
    return path


def _member_edits(tour: Tour, cast: Cast, path: str) -> None:
    """A member PATCHes the image: nothing hidden is lost or revealed."""
    tour.say("\n== A member edits the image: nothing hidden is lost or revealed ==")
    tour.request(
        cast.alice,
        "PATCH",
        path,
        200,
        "core attribute 'name' is not under the rules; Glance (protections off) only "
        "changes what the patch names",
        [{"op": "replace", "path": "/name", "value": "ubuntu-24.04-lts"}],
        PATCH_TYPE,
    )
    kept = tour.request(
        cast.admin,
        "GET",
        path,
        200,
        "the admin still sees the licence key: the member's PATCH did not purge it",
    )
    tour.say(f"      license_code as the admin sees it: {kept.get('license_code')!r}")
    tour.request(
        cast.alice,
        "PATCH",
        path,
        409,
        "replace of a property alice cannot read: 'does not exist' (Glance's 409), "
        "the same answer as for a name that really does not exist",
        [{"op": "replace", "path": "/license_code", "value": "FREE"}],
        PATCH_TYPE,
    )
    tour.request(
        cast.alice,
        "PATCH",
        path,
        403,
        tour.explain(cast.member_creds, "license_code", "create"),
        [{"op": "add", "path": "/license_code", "value": "FREE"}],
        PATCH_TYPE,
    )


def _service_token_metadata(tour: Tour, cast: Cast) -> None:
    """Nova snapshot metadata: only through Nova's service token, not a forged one."""
    tour.say("\n== Nova snapshot metadata: only through Nova's service token ==")
    snapshot = {
        "name": "web-1 snapshot",
        "disk_format": "qcow2",
        "container_format": "bare",
        "instance_uuid": "3f1a4f5e-8a0a-4c1b-9c7e-2f5d6b7a8c9d",
        "image_type": "snapshot",
    }
    tour.request(
        cast.alice,
        "POST",
        "/v2/images",
        403,
        tour.explain(cast.member_creds, "instance_uuid", "create"),
        snapshot,
    )
    created = tour.request(
        cast.alice_via_nova,
        "POST",
        "/v2/images",
        201,
        tour.explain(cast.relayed_creds, "instance_uuid", "create"),
        snapshot,
    )
    tour.request(
        cast.alice,
        "PATCH",
        f"/v2/images/{created['id']}",
        403,
        tour.explain(cast.member_creds, "instance_uuid", "update")
        + "  (alice can read it, so 403, not 409)",
        [{"op": "replace", "path": "/instance_uuid", "value": "someone-else"}],
        PATCH_TYPE,
    )
    tour.request(
        cast.mallory,
        "POST",
        "/v2/images",
        403,
        "auth_token marks a service token without the 'service' role Invalid "
        "(service_token_roles_required; Glance's delay_auth_decision lets the request "
        "go on as alice alone), and propguard counts no service roles from it: "
        + tour.explain(cast.member_creds, "instance_uuid", "create"),
        snapshot,
    )


def _frozen_signatures(tour: Tour, cast: Cast) -> None:
    """Image signatures: a member may set them once, then nobody may change them."""
    tour.say("\n== Image signatures: set once, then frozen ==")
    signed = tour.request(
        cast.alice,
        "POST",
        "/v2/images",
        201,
        tour.explain(cast.member_creds, "img_signature", "create"),
        {
            "name": "signed",
            "disk_format": "raw",
            "container_format": "bare",
            "img_signature": "c2lnbmF0dXJl",
            "img_signature_hash_method": "SHA-256",
        },
    )
    tour.request(
        cast.alice,
        "PATCH",
        f"/v2/images/{signed['id']}",
        403,
        tour.explain(cast.member_creds, "img_signature", "update"),
        [{"op": "replace", "path": "/img_signature", "value": "Zm9yZ2Vk"}],
        PATCH_TYPE,
    )


def _verdict(tour: Tour) -> int:
    """The closing line; 1 if any step answered other than expected."""
    tour.say("")
    if tour.failures:
        tour.say(f"{tour.failures} step(s) did not behave as expected")
        return 1
    tour.say(f"all {tour.step} steps behaved as expected")
    return 0


def run_tour(rules: str, workdir: str, out=sys.stdout) -> int:
    from propguard.inprocess import InProcessGlance
    from propguard.rules.loading import RulesOptions, open_rules

    filt_options = _filter_options(rules)
    with InProcessGlance(
        workdir, extra_filters=[("propguard", "propguard.middleware:filter_factory", filt_options)]
    ) as glance:
        cast = _cast(glance)
        # The filter's own options, loaded the one way every adapter loads them.
        rules_holder = open_rules(RulesOptions.from_options(filt_options))
        tour = Tour(glance, rules_holder.current, out)
        tour.say(f"propguard demo: Glance v2 in-process at {workdir}")
        tour.say(f"pipeline: authtoken propguard context rootapp; rules: {rules}")
        tour.say("")

        path = _publish_and_see(tour, cast)
        _member_edits(tour, cast, path)
        _service_token_metadata(tour, cast)
        _frozen_signatures(tour, cast)
        return _verdict(tour)


def _quiet_libraries() -> None:
    """Keep the tour readable: Glance and friends log deprecation chatter at import."""
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    for name in ("glance", "keystonemiddleware", "oslo_policy", "glance_store"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("stevedore").setLevel(logging.CRITICAL)  # optional store drivers


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    parser = argparse.ArgumentParser(prog="propguard demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rules", help="roles-format rules file (default: policies/production.conf)"
    )
    parser.add_argument(
        "--workdir", help="directory for Glance's database and images (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    rules = os.path.abspath(args.rules) if args.rules else _default_rules()
    if args.workdir:
        os.makedirs(args.workdir, exist_ok=True)
        return run_tour(rules, args.workdir)
    with tempfile.TemporaryDirectory(prefix="propguard-demo-") as workdir:
        return run_tour(rules, workdir)


if __name__ == "__main__":
    sys.exit(main())
