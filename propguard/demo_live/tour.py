"""The tour over HTTP, with real tokens, against the services the live demo started.

Why it reuses :mod:`propguard.demo`'s chapters: the in-process tour and this
one tell the same story from the same rules (``plan``), so a chapter is
written once. :class:`HttpTour` offers the in-process ``Tour``'s interface
(``say``, ``request``, ``step``, ``failures``) over a keystoneauth1 session
per caller: a password-authenticated session for a Keystone user, a
``ServiceTokenAuthWrapper`` for a user relayed by Nova (the real
``X-Service-Token`` of the ``nova`` user), and in ``--jwt`` mode static
tokens minted by ``propguard token``.

Each step prints the answer, the caller as its tokens describe it (user,
project, roles: what auth_token confirms), and the rules' decision for
those roles, computed by the same engine the proxy runs.
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

from propguard import demo
from propguard.credentials import Credentials


@dataclass
class LiveActor:
    """A caller: its keystoneauth1 session and what its tokens carry."""

    name: str
    session: Any
    user_id: str
    project_id: str
    roles: tuple[str, ...]
    service_user: str | None = None  # whose token goes in X-Service-Token
    service_roles: tuple[str, ...] = ()  # roles that token carries
    #: True when the service token carries a service_token_roles role (auth_token confirms it).
    service_counted: bool = False
    #: Who validates the tokens: "auth_token" (Keystone) or "the JWT filter".
    validator: str = "auth_token"

    def credentials(self) -> Credentials:
        return Credentials(
            authenticated=True,
            user_id=self.user_id,
            project_id=self.project_id,
            roles=frozenset(self.roles),
            service_roles=frozenset(self.service_roles if self.service_counted else ()),
        )

    def describe(self) -> str:
        text = (
            f"caller: user {self.user_id} (project {self.project_id}), roles "
            f"{', '.join(sorted(self.roles)) or '(none)'}"
        )
        if self.service_user is None:
            return text + "; no service token"
        if self.service_counted:
            return text + (
                f"; service token of {self.service_user} with roles "
                f"{', '.join(sorted(self.service_roles))}: confirmed, counted"
            )
        return text + (
            f"; X-Service-Token is {self.service_user}'s own token (roles "
            f"{', '.join(sorted(self.service_roles))}, no service_token_roles role): "
            f"{self.validator} marks it Invalid, no service roles"
        )


@dataclass
class Cast:
    admin: LiveActor
    alice: LiveActor
    alice_via_nova: LiveActor
    mallory: LiveActor
    bob: LiveActor
    nova: LiveActor
    anonymous: LiveActor


class HttpTour:
    """``propguard.demo.Tour``'s interface over real HTTP through the proxy."""

    def __init__(self, base_url: str, engine: Any, out: TextIO = sys.stdout) -> None:
        self.base_url = base_url.rstrip("/")
        self.engine = engine
        self.out = out
        self.failures = 0
        self.step = 0
        self.request_id: str | None = None  # X-OpenStack-Request-ID to send, when set
        self.names: dict[str, str] = {}  # Keystone ids -> names, for the transcript
        self.placement = "propguard serve"  # what the requests pass through, in words
        self.authenticator = "auth_token in propguard serve (and again in Glance)"

    def name_of(self, ident: Any) -> str:
        return self.names.get(str(ident), str(ident))

    def names_in(self, text: str) -> str:
        for ident, name in self.names.items():
            text = text.replace(ident, name)
        return text

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def send(
        self,
        actor: LiveActor,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str | None = None,
        data: Any = None,
    ) -> Any:
        headers: dict[str, str] = {}
        kwargs: dict[str, Any] = {"raise_exc": False, "headers": headers}
        if actor.session.auth is None:
            kwargs["authenticated"] = False
        if body is not None:
            kwargs["data"] = json.dumps(body).encode()
            headers["Content-Type"] = content_type or "application/json"
        elif data is not None:
            kwargs["data"] = data
            headers["Content-Type"] = content_type or "application/octet-stream"
        if self.request_id:
            headers["X-OpenStack-Request-ID"] = self.request_id
        return actor.session.request(self.base_url + path, method, **kwargs)

    def request(
        self,
        actor: LiveActor,
        method: str,
        path: str,
        expect: int,
        *,
        body: Any = None,
        content_type: str | None = None,
        data: Any = None,
        explain: Iterable[tuple[str, str]] = (),
        note: str = "",
        shown: str | None = None,
        hidden: Iterable[str] = (),
    ) -> tuple[Any, Credentials]:
        """Send; print the answer, the caller and the rules' decisions; judge the step.

        A step fails on an unexpected status, and on an answer that shows a
        property the caller must not see (``hidden``, or one the rules deny
        it ``read``: :func:`propguard.demo.leaks`), whatever its status.
        """
        self.step += 1
        response = self.send(actor, method, path, body=body, content_type=content_type, data=data)
        creds = actor.credentials()
        data_out = None
        if response.headers.get("Content-Type", "").startswith("application/json"):
            try:
                data_out = response.json()
            except ValueError:
                data_out = None
        leaked = demo.leaks(self.engine, creds, data_out, hidden)
        mark = demo.verdict_mark(response.status_code == expect, expect, leaked)
        self.failures += 0 if mark == "ok " else 1
        if shown is None:
            shown = f" {demo._brief(body)}" if body is not None else ""
        self.say(f"{self.step:2}. [{mark}] {actor.name}: {method} {path}{shown}")
        self.say(f"      -> {response.status_code} {response.reason}{_error(response)}")
        if actor.session.auth is None:
            self.say("      caller: no token")
        else:
            self.say(f"      {actor.describe()}")
            for name, op in explain:
                self.say(f"      {demo.explain_decision(self.engine, creds, name, op)}")
        if note:
            self.say(f"      {note}")
        return data_out, creds


def _error(response: Any) -> str:
    if response.status_code < 400:
        return ""
    try:
        body = response.json()
    except ValueError:
        # webob's HTML error page: its title repeats the status; keep the explanation.
        text = re.sub(r"<title>.*?</title>|<h1>.*?</h1>|<[^>]+>", " ", response.text, flags=re.S)
        text = " ".join(text.split())[:160]
        return f" ({text})" if text else ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f" ({error.get('message', '')})"
    if isinstance(body, dict) and "message" in body:
        return f" ({' '.join(str(body['message']).split())[:160]})"
    return ""


# -- chapters of the live tour (the shared ones are propguard.demo's) -----------


def refused(tour: HttpTour, cast: Cast, path: str | None) -> None:
    """Callers that get nothing, and why."""
    tour.say("\n== Refused, and why ==")
    tour.request(
        cast.anonymous,
        "GET",
        "/v2/images",
        401,
        note=f"no token: {tour.authenticator} confirms no one",
    )
    if path is None:
        return
    tour.request(
        cast.bob,
        "GET",
        path,
        404,
        note="another project's member: Glance hides a shared image from non-members; "
        "propguard passes Glance's 404 on unchanged",
    )


def nova_snapshot(tour: HttpTour, cast: Cast, p: demo.Plan, answers: dict[str, Any]) -> None:
    """A Nova-style snapshot: recorded as a relation, shown through the relations API."""
    tour.say("\n== Nova snapshots alice's server: the relation is recorded ==")
    instance = str(uuid.uuid4())
    answers["instance"] = instance
    request_id = "req-" + str(uuid.uuid4())
    snapshot = {
        "name": "web-1-snapshot",
        "container_format": "bare",
        "disk_format": "raw",
        "visibility": "private",
        "image_type": "snapshot",
        "instance_uuid": instance,
        "base_image_ref": str(uuid.uuid4()),
    }
    tour.request_id = request_id
    try:
        created, _ = tour.request(
            cast.alice_via_nova,
            "POST",
            "/v2/images",
            201,
            body=snapshot,
            note=f"Nova's createImage: alice's token, nova's service token, request id "
            f"{request_id}",
        )
        if not created or "id" not in created:
            return
        image_id = created["id"]
        answers["snapshot"] = image_id
        size = 8 * 1024 * 1024
        started = time.monotonic()
        tour.request(
            cast.alice_via_nova,
            "PUT",
            f"/v2/images/{image_id}/file",
            204,
            data=_chunks(size),
            shown=f" ({size // (1024 * 1024)} MiB, Transfer-Encoding: chunked)",
            note="nova-compute uploads the disk under the same request id; the data streams "
            f"through {tour.placement}",
        )
        answers["upload_seconds"] = time.monotonic() - started
    finally:
        tour.request_id = None
    forged = {**snapshot, "name": "not-a-snapshot", "instance_uuid": instance}
    alice = cast.alice.credentials()
    may_tag = all(tour.engine.allowed(n, "create", alice) for n in ("image_type", "instance_uuid"))
    tour.request(
        cast.alice,
        "POST",
        "/v2/images",
        201 if may_tag else 403,
        body=forged,
        explain=[("instance_uuid", "create")],
        note="alice alone tags an image with the same instance_uuid: "
        + (
            "allowed by these rules, but an image property, never a relation"
            if may_tag
            else "refused by these rules; and where rules allow it, a user's tag is only an "
            "image property, never a relation"
        ),
    )
    time.sleep(1.0)  # recording is asynchronous (relations_synchronous = false)
    listing, _ = tour.request(cast.alice, "GET", f"/v2/instances/{instance}/images", 200)
    relations = (listing or {}).get("images", [])
    answers["relations"] = relations
    for relation in relations:
        tour.say(
            f"      relation: image {relation.get('image_id')} kind {relation.get('kind')}, "
            f"requester {tour.name_of(relation.get('requester_user_id'))}, upload completed "
            f"{'yes' if relation.get('upload_completed_at') else 'no'}"
        )
        provenance = relation.get("provenance") or {}
        for line in provenance.get("proves") or []:
            tour.say(f"      proves: {tour.names_in(str(line))}")
        if provenance.get("does_not_prove"):
            tour.say(f"      does not prove: {provenance['does_not_prove']}")
    tour.say(
        f"      relations of instance {instance[:8]}...: {len(relations)} "
        "(alice's own tagged image is not one of them)"
    )
    tour.request(
        cast.bob,
        "GET",
        f"/v2/instances/{instance}/images",
        404,
        note="another project: 404, the same answer as for an instance that does not exist",
    )


def _chunks(size: int, chunk: int = 256 * 1024):
    block = b"\0" * chunk
    sent = 0
    while sent < size:
        yield block[: min(chunk, size - sent)]
        sent += chunk


def indexer_chapter(
    tour: HttpTour, tap: Any, p: demo.Plan, secret: str, answers: dict[str, Any]
) -> None:
    """What the notification filter let through to an indexer listening on the broker."""
    tour.say("\n== What an indexer receives (Glance's notifications through propguard's driver) ==")
    if tap is None:
        tour.say("   SKIPPED: no RabbitMQ at 127.0.0.1:5672 (see the start of the transcript)")
        answers["notifications"] = "skipped"
        return
    received = tap.drain()
    answers["notifications"] = received
    kinds: dict[str, int] = {}
    for _key, message in received:
        kinds[message.get("event_type", "?")] = kinds.get(message.get("event_type", "?"), 0) + 1
    tour.say(
        f"   {len(received)} notifications reached the broker on exchange {tap.exchange}: "
        + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
    )
    hidden = p.hidden
    raw = [json.dumps(m) for _, m in received]
    tour.step += 1
    leaked = [r for r in raw if (hidden and f'"{hidden}"' in r) or secret in r]
    ok = bool(received) and not leaked
    tour.failures += 0 if ok else 1
    mark = "ok " if ok else "UNEXPECTED"
    tour.say(
        f"{tour.step:2}. [{mark}] indexer: {hidden or '(no hidden property)'} and its value "
        f"{secret!r} appear in {len(leaked)} of {len(raw)} messages"
    )
    if p.visible:
        shown = sum(1 for r in raw if f'"{p.visible}"' in r)
        tour.say(f"      {p.visible} (readable by members) appears in {shown} of them")
    for _, message in received:
        payload = message.get("payload") or {}
        if message.get("event_type") == "image.create" and isinstance(payload, dict):
            props = sorted(
                k for k in payload.get("properties") or {} if not k.startswith("os_glance")
            )
            tour.say(
                f"      e.g. image.create of {payload.get('name')!r}: properties "
                f"{', '.join(props) or '(none)'}"
            )
            break
    tour.say(
        "      the driver filtered each notification inside glance-api for the audience "
        "member,reader: the raw payload never reached the broker"
    )


def _decision_records(log_path: str) -> list[dict[str, Any]]:
    """The ``propguard.decisions`` records written to ``log_path`` (one JSON per line)."""
    marker = "propguard decision "
    records = []
    try:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if marker in line:
                    try:
                        records.append(json.loads(line.split(marker, 1)[1]))
                    except ValueError:
                        continue
    except OSError:
        return []
    return records


def operating_chapter(
    tour: HttpTour, cast: Cast, log_path: str, shadow_file: str | None, metrics: bool
) -> None:
    """What an operator sees of the tour: its decision records, the shadow rules' divergences
    (rules that would let members read the hidden property), and the /metrics counters."""
    tour.say("\n== Operating it: the decision log, shadow rules, metrics ==")
    records = _decision_records(log_path)
    outcomes: dict[str, int] = {}
    for record in records:
        outcomes[record["outcome"]] = outcomes.get(record["outcome"], 0) + 1
    divergences = [r for r in records if r["outcome"] == "shadow_divergence"]
    tour.step += 1
    ok = bool(records) and (bool(divergences) or shadow_file is None)
    tour.failures += 0 if ok else 1
    counted = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "none"
    tour.say(f"{tour.step:2}. [{'ok ' if ok else 'UNEXPECTED'}] decision log {log_path}")
    tour.say(f"      records: {counted} (names and values never logged)")
    if shadow_file is not None:
        tour.say(f"      shadow rules {shadow_file}: evaluated beside the rules, never enforced")
    if divergences:
        d = divergences[0]
        who = tour.name_of(d.get("user_id"))
        tour.say(
            f"      e.g. {who} {d['method']} {d['route']}: {d['operations'][0]} "
            f"{d['enforced']} by {d['enforced_section']}, {d['shadow']} by "
            f"{d['shadow_section']} (request {d['request_id']})"
        )
    if not metrics:
        tour.say("      /metrics: served by propguard serve (inside glance-api: docs/operations.md)")
        return
    tour.step += 1
    response = tour.send(cast.anonymous, "GET", "/metrics")
    sums: dict[str, float] = {}
    for line in response.text.splitlines() if response.status_code == 200 else []:
        if line.startswith("propguard_decisions_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            sums[outcome] = sums.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    ok = response.status_code == 200 and sums.get("hidden", 0) > 0
    tour.failures += 0 if ok else 1
    tour.say(f"{tour.step:2}. [{'ok ' if ok else 'UNEXPECTED'}] anonymous: GET /metrics")
    tour.say(f"      -> {response.status_code} (no token: loopback clients only)")
    shown = ", ".join(f"{o} {int(n)}" for o, n in sorted(sums.items()))
    tour.say(f"      propguard_decisions_total by outcome: {shown}")
