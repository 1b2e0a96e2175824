"""What shadow rules cost the notification filter core, against the core without them.

Run: ``.venv/bin/python benchmarks/bench_notify_shadow.py`` (after ``./scripts/test.sh``).

The message of ``bench_notify_core.py`` (Glance's ``image.update`` with 20
extra properties, ``strip`` for a member), filtered by
``NotificationFilter.outputs`` with: no shadow rules (the anchor); shadow
rules deciding every name alike (a second engine of the same file); shadow
rules on which 4 of the names diverge (each notification then gives records
and counter increments; the decision log itself is disabled so the logging
handler is not measured). Process CPU time (``time.process_time``), cases
alternating within each round, the best round of each kept: load on a shared
machine disturbs it far less than wall-clock time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from bench_notify_core import PROPERTIES, ROLES_FILE

from propguard.decisions import DecisionLog
from propguard.notifications import samples
from propguard.notifications.core import NotificationFilter, audience
from propguard.notifications.shadow import DivergenceRecorder
from propguard.rules import load_rules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--number", type=int, default=2000, help="messages per case per round")
    args = parser.parse_args(argv)

    engine = load_rules(ROLES_FILE, "roles")
    with open(ROLES_FILE) as handle:
        text = handle.read().replace("[^x_owner_.*]", "[^x_ownerX_.*]", 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "shadow.conf")
        with open(path, "w") as handle:
            handle.write(text)
        diverging = load_rules(path, "roles")
    recorder = DivergenceRecorder(DecisionLog(enabled=False))

    def make(shadow) -> NotificationFilter:
        return NotificationFilter(
            engine,
            modes=["strip"],
            audience=audience(["member"]),
            shadow=shadow,
            on_divergence=recorder,
        )

    cases = {
        "no shadow rules": make(None),
        "shadow, all agree": make(load_rules(ROLES_FILE, "roles")),
        "shadow, 4 diverge": make(diverging),
    }
    note = samples.notification("image.update", samples.image_payload(dict(PROPERTIES)))
    for nf in cases.values():
        nf.outputs(note)
    best = dict.fromkeys(cases, float("inf"))
    for round_ in range(args.rounds):
        order = list(cases) if round_ % 2 == 0 else list(reversed(cases))
        for name in order:
            nf = cases[name]
            start = time.process_time()
            for _ in range(args.number):
                nf.outputs(note)
            best[name] = min(best[name], (time.process_time() - start) / args.number)
        print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr)
    anchor = best["no shadow rules"]
    print(f"python {sys.version.split()[0]}; core alone, strip, 20 properties, CPU time")
    for name, seconds in best.items():
        print(f"{name:20s} {seconds * 1e6:8.2f} us/msg  {seconds / anchor:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
