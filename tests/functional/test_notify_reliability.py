"""``notify-filter`` reliability against the machine's real RabbitMQ (issue 24, point 4).

* A message the encoder cannot write (nested 300 deep: orjson reads 1024
  levels but writes 254) is dead-lettered with the reason; the stream goes
  on, in order, and nothing before it is published twice.
* An output queue deleted while the service runs (an operator, an
  ``expires`` policy) is declared again and only the outputs it missed are
  published again: the other outputs get no copies.
* With ``declare_output_queues = false`` an output no queue takes is
  dead-lettered with the reason after ``max_attempts`` rounds; the outputs
  that were delivered are not repeated.

Each test has its own exchange and queues (see ``test_notify_service.Bus``).
"""

from __future__ import annotations

import json
import time

import test_notify_service as svc
from test_notify_service import SECRET, Bus, _secret_notes

from propguard.notifications import samples, wire
from propguard.notifications.core import NotificationFilter, audience
from propguard.rules.loading import RulesOptions, open_rules

# The fixtures of the service tests: a test's own exchange and queues, the rules, a service.
bus = svc.bus
rules_file = svc.rules_file
run_service = svc.run_service

NO_COPIES_WAIT = 1.0  # seconds to let duplicates (if any) arrive before counting


def _deep(depth: int):
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_unencodable_message_is_dead_lettered_and_the_stream_goes_on(
    bus: Bus, run_service, caplog
) -> None:
    running = run_service(modes=("strip", "annotate"))
    before, after = _secret_notes(5), _secret_notes(5, start=5)
    # Glance's own shape, but nested past what orjson writes: a metadef property's
    # JSON-schema ``items`` (an image property value this deep is refused by shape).
    deep = samples.notification(
        "metadef_property.update",
        {**samples.metadef_payload("metadef_property.update"), "items": _deep(300)},
    )
    # Glance's oslo.messaging (Python's json) writes it, orjson reads it
    body = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(deep)}).encode()
    assert wire.decode(body).notification["message_id"] == deep["message_id"]  # and it reads
    bus.publish([("info", wire.encode(n)) for n in before] + [("info", body)])
    bus.publish([("info", wire.encode(n)) for n in after])
    out = f"{bus.strip}.info"
    bus.wait_for(lambda: bus.depth(out) >= 10, what="the good messages")
    bus.wait_for(lambda: bus.depth(f"{bus.dead}.error") >= 1, what="the dead letter")
    time.sleep(NO_COPIES_WAIT)
    outputs = bus.read(out)
    assert [o["message_id"] for o in outputs] == [n["message_id"] for n in before + after]
    annotated = bus.read(f"{bus.annotate}.info")
    assert [o["message_id"] for o in annotated] == [n["message_id"] for n in before + after]
    (letter,) = bus.read(f"{bus.dead}.error")
    assert letter["payload"]["original_message_id"] == deep["message_id"]
    assert letter["payload"]["reason"].startswith("the output cannot be encoded as JSON")
    assert SECRET not in letter["payload"]["reason"]
    assert running.status is None and running.thread.is_alive()
    assert bus.depth(bus.pool) == 0
    assert SECRET not in caplog.text


def test_deleted_output_queue_is_declared_again_without_copies(bus: Bus, run_service) -> None:
    running = run_service(modes=("strip", "annotate"))
    first = _secret_notes(50)
    bus.publish_notes(first)
    out, ann = f"{bus.strip}.info", f"{bus.annotate}.info"
    bus.wait_for(lambda: bus.depth(out) == 50 and bus.depth(ann) == 50, what="the first 50")
    assert [o["message_id"] for o in bus.read(out)] == [n["message_id"] for n in first]
    bus.conn.channel().queue_delete(out)  # an operator, or an expires policy
    second = _secret_notes(50, start=50)
    bus.publish_notes(second)
    bus.wait_for(lambda: bus.depth(out) >= 50, 30, "the strip output queue declared again")
    bus.wait_for(lambda: bus.depth(bus.pool) == 0, what="an empty pool queue")
    time.sleep(NO_COPIES_WAIT)
    stripped = bus.read(out)
    annotated = bus.read(ann)
    assert [o["message_id"] for o in stripped] == [n["message_id"] for n in second]
    # the annotate outputs: every message once, no copies from the retries
    assert [o["message_id"] for o in annotated] == [n["message_id"] for n in first + second]
    assert SECRET not in json.dumps(stripped)
    assert running.service.counts["dead_lettered"] == 0
    assert running.service.counts["requeued"] == 0


def test_unroutable_output_is_dead_lettered_with_the_reason(bus: Bus, run_service) -> None:
    ann = f"{bus.annotate}.info"
    channel = bus.conn.channel()
    channel.exchange_declare(bus.exchange, "topic", durable=True, auto_delete=False)
    channel.queue_declare(ann, durable=True, auto_delete=False)
    channel.queue_bind(ann, bus.exchange, ann)  # the strip topic: no queue at all
    running = run_service(modes=("strip", "annotate"), declare_output_queues=False, max_attempts=2)
    notes = _secret_notes(3)
    bus.publish_notes(notes)
    bus.wait_for(lambda: bus.depth(f"{bus.dead}.error") == 3, what="three dead letters")
    bus.wait_for(lambda: bus.depth(bus.pool) == 0, what="an empty pool queue")
    time.sleep(NO_COPIES_WAIT)
    letters = bus.read(f"{bus.dead}.error")
    assert [x["payload"]["original_message_id"] for x in letters] == [
        n["message_id"] for n in notes
    ]
    reason = f"no queue is bound to routing key '{bus.strip}.info' on '{bus.exchange}'"
    assert {x["payload"]["reason"] for x in letters} == {
        f"output to '{bus.strip}.info' not accepted (2 attempts): {reason}"
    }
    assert [o["message_id"] for o in bus.read(ann)] == [n["message_id"] for n in notes]
    assert running.status is None


class Odd(NotificationFilter):
    """Hands over an output JSON cannot hold (a set) for the notification ``seq`` 1."""

    def outputs(self, notification):
        results = super().outputs(notification)
        if notification["payload"]["properties"].get("seq") == "1":
            results[0].notification["payload"] = {**results[0].notification["payload"], "x": {1}}
        return results


def test_a_value_json_cannot_hold_is_dead_lettered(bus: Bus, run_service, rules_file) -> None:
    holder = open_rules(RulesOptions(rules_file=str(rules_file)))
    config = bus.output_config()
    odd = Odd(holder.current, modes=config.modes, audience=audience(["member"]))
    running = run_service(nf=odd)
    notes = _secret_notes(3)
    bus.publish_notes(notes)
    bus.wait_for(lambda: bus.depth(f"{bus.dead}.error") == 1, what="the dead letter")
    bus.wait_for(lambda: bus.depth(f"{bus.strip}.info") == 2, what="the others")
    out = bus.read(f"{bus.strip}.info")
    assert [o["message_id"] for o in out] == [notes[0]["message_id"], notes[2]["message_id"]]
    assert running.status is None and running.thread.is_alive()
