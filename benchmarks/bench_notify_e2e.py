"""End to end through RabbitMQ: the ``notify-filter`` service vs a bare oslo.messaging republisher.

Run: ``.venv/bin/python benchmarks/bench_notify_e2e.py`` (RabbitMQ on
127.0.0.1:5672, guest/guest; every round uses its own exchange and queues
and deletes them).

Each round fills a durable pool queue with a backlog of N Glance
``image.update`` notifications (20 properties, messagingv2 envelopes,
persistent), then starts one consumer and times it until all N outputs are
in its durable output queue (every output confirmed by the broker, every
input acknowledged):

* ``propguard``: :class:`~propguard.notifications.service.NotifyFilterService`
  (strip mode: decode, filter 10 of 20 properties away, publish with
  publisher confirms in batches, acknowledge after the confirms).
* ``bare oslo.messaging``: the anchor of the issue, an oslo.messaging
  notification listener (``allow_requeue=True``, pool, one thread) whose
  endpoint republishes every notification unchanged through a
  ``Notifier(driver="messagingv2", retry=-1)`` (the rabbit driver confirms
  each publish). Same durability (``amqp_durable_queues = true``).

The cases alternate (A, B, A, B...) so a slow spell of the machine hits both;
the best rate of each is kept and every round is printed. Targets (issue):
propguard at least 90% of the bare republisher's rate and at least 1,000
messages/s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir))

import amqp  # noqa: E402

from propguard.notifications import amqp as pg_amqp  # noqa: E402
from propguard.notifications import samples, wire  # noqa: E402
from propguard.notifications.opts import OutputConfig  # noqa: E402
from propguard.notifications.service import (  # noqa: E402
    PRIORITIES,
    NotifyFilterService,
    ServiceSettings,
)

BROKER = "127.0.0.1:5672"
URL = f"rabbit://guest:guest@{BROKER}/"
RULES = "[^x_secret_]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n\n[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n"


class Round:
    def __init__(self, count: int) -> None:
        tag = uuid.uuid4().hex[:8]
        self.exchange = f"pgbench-{tag}"
        self.topic = f"pgbench_in_{tag}"
        self.pool = f"pgbench_pool_{tag}"
        self.out = f"pgbench_out_{tag}"
        self.count = count
        self.conn = amqp.Connection(host=BROKER, userid="guest", password="guest")
        self.conn.connect()
        channel = self.conn.channel()
        channel.exchange_declare(self.exchange, "topic", durable=True, auto_delete=False)
        channel.queue_declare(self.pool, durable=True, auto_delete=False)
        pg_amqp.bind_all(
            channel, self.pool, self.exchange, [f"{self.topic}.{p}" for p in PRIORITIES]
        )
        channel.queue_declare(f"{self.out}.info", durable=True, auto_delete=False)
        channel.queue_bind(f"{self.out}.info", self.exchange, f"{self.out}.info")
        self.channel = channel

    def fill(self) -> int:
        props = samples.bench_properties(20, 10)
        body = wire.encode(samples.notification("image.update", samples.image_payload(props)))
        publisher = pg_amqp.ConfirmingPublisher(self.conn)
        for i in range(self.count):
            note = samples.notification("image.update", samples.image_payload(props))
            publisher.publish(wire.encode(note), self.exchange, f"{self.topic}.info")
            if i % 1000 == 999:
                assert not publisher.wait(60)
        assert not publisher.wait(60)
        publisher.channel.close()
        return len(body)

    def depth(self, queue: str) -> int:
        return self.channel.queue_declare(queue, passive=True).message_count

    def wait_done(self, started: float, timeout: float = 600) -> float:
        while self.depth(f"{self.out}.info") < self.count:
            if time.perf_counter() - started > timeout:
                raise TimeoutError("the consumer did not finish")
            time.sleep(0.01)
        return time.perf_counter() - started

    def close(self) -> None:
        channel = self.conn.channel()
        for queue in (self.pool, f"{self.out}.info", f"{self.topic}.info"):
            channel.queue_delete(queue)
        channel.exchange_delete(self.exchange)
        self.conn.close()


def run_propguard(rnd: Round, rules_file: str, batch_size: int) -> float:
    from propguard.rules.loading import RulesOptions, open_rules

    holder = open_rules(RulesOptions(rules_file=rules_file), reload_interval=5)
    outputs = OutputConfig.from_values(
        {"modes": ["strip"], "audience_roles": ["member"], "strip_topics": [rnd.out]}
    )
    settings = ServiceSettings(
        broker=pg_amqp.BrokerConfig.from_url(URL),
        exchange=rnd.exchange,
        topics=(rnd.topic,),
        pool=rnd.pool,
        batch_size=batch_size,
    )
    service = NotifyFilterService(settings, outputs.build(holder.current), outputs)
    thread = threading.Thread(target=service.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    elapsed = rnd.wait_done(started)
    service.stop()
    thread.join(30)
    assert service.counts["acked"] >= rnd.count, service.counts
    return elapsed


def run_bare(rnd: Round) -> float:
    import oslo_messaging
    from oslo_config import cfg
    from oslo_messaging import opts as om_opts

    conf = cfg.ConfigOpts()
    for group, options in om_opts.list_opts():
        conf.register_opts(options, group=group)
    conf([], project="pgbench", default_config_files=[], default_config_dirs=[])
    conf.set_override("control_exchange", rnd.exchange)
    conf.set_override("amqp_durable_queues", True, "oslo_messaging_rabbit")
    transport = oslo_messaging.get_notification_transport(conf, url=URL)
    notifier = oslo_messaging.Notifier(transport, driver="messagingv2", topics=[rnd.out], retry=-1)

    class Republish:
        def _send(self, priority, publisher_id, event_type, payload):
            getattr(notifier.prepare(publisher_id=publisher_id), priority)({}, event_type, payload)

        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            self._send("info", publisher_id, event_type, payload)

        def error(self, ctxt, publisher_id, event_type, payload, metadata):
            self._send("error", publisher_id, event_type, payload)

    listener = oslo_messaging.get_notification_listener(
        transport,
        [oslo_messaging.Target(topic=rnd.topic, exchange=rnd.exchange)],
        [Republish()],
        allow_requeue=True,
        pool=rnd.pool,
    )
    started = time.perf_counter()
    listener.start(override_pool_size=1)
    elapsed = rnd.wait_done(started)
    listener.stop()
    listener.wait()
    transport.cleanup()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10000, help="backlog per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per case")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args(argv)

    import logging
    import tempfile

    logging.basicConfig(level=logging.WARNING)
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as handle:
        handle.write(RULES)
    rates: dict[str, list[float]] = {"propguard": [], "bare oslo.messaging": []}
    size = 0
    for _ in range(args.rounds):
        for case in rates:
            rnd = Round(args.count)
            try:
                size = rnd.fill()
                if case == "propguard":
                    elapsed = run_propguard(rnd, handle.name, args.batch_size)
                else:
                    elapsed = run_bare(rnd)
            finally:
                rnd.close()
            rate = args.count / elapsed
            rates[case].append(rate)
            print(f"  {case:22} {args.count} messages in {elapsed:6.2f} s: {rate:8,.0f} msg/s")
    os.unlink(handle.name)
    best = {case: max(values) for case, values in rates.items()}
    print(
        f"\nimage.update, 20 properties, envelope {size} bytes; backlog {args.count}, best of {args.rounds}"
    )
    for case, rate in best.items():
        print(f"{case:22} {rate:8,.0f} msg/s")
    ratio = best["propguard"] / best["bare oslo.messaging"]
    print(f"propguard / bare republisher: {ratio:.2f}x (target >= 0.90; >= 1,000 msg/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
