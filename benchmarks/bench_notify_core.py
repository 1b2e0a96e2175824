"""The notification filter core vs a bare orjson decode + encode of the same envelope.

Run: ``.venv/bin/python benchmarks/bench_notify_core.py`` (after ``./scripts/test.sh``).

The message: Glance's ``image.update`` (``format_image_notification``) with 20
extra properties, 10 of them hidden from the ``strip`` audience, in the
oslo.messaging v2 envelope (about 1.5 KB). In the same process, alternating
within each round; many short rounds, the best per-message time of each case
kept (a machine shared with other work still has quiet moments):

* ``orjson decode+encode`` (the anchor): ``loads`` of the envelope and of its
  ``oslo.message``, ``dumps`` of both again; what any filter that reads and
  rewrites the message must spend.
* ``core alone``: ``NotificationFilter.outputs`` on the decoded notification
  (strip; roles and policies formats; Glance's own test rule files).
* ``decode+core+encode``: what the ``--stdin`` command and the service do per
  message (``wire.decode``, ``outputs``, ``wire.encode``).
* ``... 3 modes``: strip + 3 views + annotate (5 outputs) per message.

Targets (issue): the core at least 20,000 messages/s on one core and within
2x of the anchor.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import orjson

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, os.pardir, "tests", "lint_fixtures", "glance")
ROLES_FILE = os.path.join(DATA, "property-protections.conf")
POLICIES_FILE = os.path.join(DATA, "property-protections-policies.conf")
POLICY_YAML = os.path.join(DATA, "policy.yaml")

#: 20 properties over the sections of Glance's test rules: 10 readable by a
#: member (x_owner_*, x_all_permitted_*, x_foo_*), 10 not (spl_*, x_none_*, catch-all).
PROPERTIES = {
    **{f"x_owner_p{i}": f"owner-value-{i}" for i in range(4)},
    **{f"x_all_permitted_p{i}": f"public-value-{i}" for i in range(3)},
    **{f"x_foo_p{i}": f"foo-value-{i}" for i in range(3)},
    "spl_read_prop": "s1",
    "spl_create_prop": "s2",
    "x_none_read": "n",
    **{f"hidden_p{i}": f"admin-only-{i}" for i in range(7)},
}


def _best(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--number", type=int, default=2000, help="messages per case per round")
    args = parser.parse_args(argv)

    sys.path.insert(0, os.path.join(HERE, os.pardir))
    from propguard.notifications import samples, wire
    from propguard.notifications.core import NotificationFilter, ReaderClass, audience
    from propguard.rules import load_rules

    assert len(PROPERTIES) == 20
    note = samples.notification("image.update", samples.image_payload(PROPERTIES))
    body = wire.encode(note)
    engines = {
        "roles": load_rules(ROLES_FILE, "roles"),
        "policies": load_rules(
            POLICIES_FILE, "policies", policy_file=POLICY_YAML, policy_namespaces=["glance"]
        ),
    }
    member = audience(["member"])
    classes = [
        ReaderClass.parse("member", "member"),
        ReaderClass.parse("spl", "spl_role"),
        ReaderClass.parse("admin", "admin"),
    ]

    def anchor() -> bytes:
        outer = orjson.loads(body)
        inner = orjson.loads(outer["oslo.message"])
        return orjson.dumps({"oslo.version": "2.0", "oslo.message": orjson.dumps(inner).decode()})

    cases: dict[str, Callable[[], object]] = {"orjson decode+encode": anchor}
    for name, engine in engines.items():
        nf = NotificationFilter(engine, audience=member)
        all_modes = NotificationFilter(
            engine, modes=["strip", "views", "annotate"], audience=member, reader_classes=classes
        )
        decoded = wire.decode(body).notification
        kept = nf.outputs(decoded)[0].notification["payload"]["properties"]
        # roles: x_owner_*, x_all_permitted_*, x_foo_* (10); policies: no x_owner_* (6)
        assert len(kept) == {"roles": 10, "policies": 6}[name], (name, sorted(kept))

        def core(nf=nf, decoded=decoded) -> object:
            return nf.outputs(decoded)

        def full(nf=nf) -> bytes:
            d = wire.decode(body)
            return b"".join(
                wire.encode(o.notification, d.enveloped) for o in nf.outputs(d.notification)
            )

        def full_modes(nf=all_modes) -> bytes:
            d = wire.decode(body)
            return b"".join(
                wire.encode(o.notification, d.enveloped) for o in nf.outputs(d.notification)
            )

        cases[f"core alone, {name}"] = core
        cases[f"decode+core+encode, {name}"] = full
        cases[f"decode+core+encode, {name}, 3 modes (5 outputs)"] = full_modes

    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):
        for label, fn in cases.items():
            best[label] = min(best[label], _best(fn, args.number))

    anchor_time = best["orjson decode+encode"]
    print(f"image.update, 20 properties (10 hidden), envelope {len(body)} bytes")
    print(f"best of {args.rounds} rounds x {args.number} messages, cases alternating\n")
    print(f"{'case':52} {'us/msg':>8} {'msg/s':>10} {'x anchor':>9}")
    for label, seconds in best.items():
        print(f"{label:52} {seconds * 1e6:8.2f} {1 / seconds:10,.0f} {seconds / anchor_time:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
