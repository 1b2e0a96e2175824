"""End to end through RabbitMQ: the ``notify-filter`` service vs bare republishers.

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
* ``bare py-amqp``: the like-for-like anchor. A py-amqp consumer (same
  prefetch) that republishes every body unchanged (no decode, no filter, no
  encode) with the service's publisher (persistent, ``mandatory``), waits for
  the publisher confirms once per batch of ``--batch-size`` and acknowledges
  the batch with one multiple ack: the service's delivery protocol without
  its work. ``propguard / bare py-amqp`` is what the filter costs.
* ``bare oslo.messaging``: the first anchor of the issue, an oslo.messaging
  notification listener (``allow_requeue=True``, pool, one thread) whose
  endpoint republishes every notification unchanged through a
  ``Notifier(driver="messagingv2", retry=-1)`` (the rabbit driver confirms
  each publish). Same durability (``amqp_durable_queues = true``).

Each case runs in a process of its own. The cases alternate (A, B, C, A, B, C...) so a slow spell of the machine hits
all; every round is printed, with the ratio of propguard to the bare py-amqp
republisher of the same round. Reported: the best rate of each case, the
median of the per-round ratios, and the filter's cost per message (the
difference of the per-message times of propguard and bare py-amqp, medians).
Targets (issue): propguard at least 0.9x the bare py-amqp republisher, and
at least 1,000 messages/s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
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


#: CPU seconds of the last consumer thread (``time.thread_time``): the client's own work,
#: far less disturbed by other load on the machine than the wall-clock rate.
LAST_CPU: list[float] = [0.0]


def _cpu_timed(target):
    def run() -> None:
        start = time.thread_time()
        try:
            target()
        finally:
            LAST_CPU[0] = time.thread_time() - start

    return run


class Round:
    def __init__(self, count: int, tag: str | None = None) -> None:
        """A new round's exchange and queues; with ``tag``, those of an existing one."""
        declare = tag is None
        tag = tag or uuid.uuid4().hex[:8]
        self.tag = tag
        self.exchange = f"pgbench-{tag}"
        self.topic = f"pgbench_in_{tag}"
        self.pool = f"pgbench_pool_{tag}"
        self.out = f"pgbench_out_{tag}"
        self.count = count
        self.conn = amqp.Connection(host=BROKER, userid="guest", password="guest")
        self.conn.connect()
        channel = self.conn.channel()
        self.channel = channel
        if not declare:
            return
        channel.exchange_declare(self.exchange, "topic", durable=True, auto_delete=False)
        channel.queue_declare(self.pool, durable=True, auto_delete=False)
        pg_amqp.bind_all(
            channel, self.pool, self.exchange, [f"{self.topic}.{p}" for p in PRIORITIES]
        )
        channel.queue_declare(f"{self.out}.info", durable=True, auto_delete=False)
        channel.queue_bind(f"{self.out}.info", self.exchange, f"{self.out}.info")

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
    thread = threading.Thread(target=_cpu_timed(service.run), daemon=True)
    started = time.perf_counter()
    thread.start()
    elapsed = rnd.wait_done(started)
    service.stop()
    thread.join(30)
    assert service.counts["acked"] >= rnd.count, service.counts
    return elapsed


def run_bare_amqp(rnd: Round, batch_size: int, prefetch: int = 200) -> float:
    """Consume, republish unchanged, one confirm wait and one multiple ack per batch."""
    conn, _ = pg_amqp.connect(pg_amqp.BrokerConfig.from_url(URL))
    consumer = conn.channel()
    consumer.basic_qos(0, prefetch, False)
    consumer.auto_decode = False
    pending: list[amqp.Message] = []
    consumer.basic_consume(rnd.pool, callback=pending.append, no_ack=False)
    publisher = pg_amqp.ConfirmingPublisher(conn)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            if not pending:
                try:
                    conn.drain_events(timeout=0.5)
                except TimeoutError:
                    continue
            while len(pending) < batch_size:
                try:
                    conn.drain_events(timeout=0.002)
                except TimeoutError:
                    break
            batch = pending[:batch_size]
            del pending[:batch_size]
            for message in batch:
                publisher.publish(message.body, rnd.exchange, f"{rnd.out}.info")
            assert not publisher.wait(30)
            consumer.basic_ack(batch[-1].delivery_info["delivery_tag"], multiple=True)

    thread = threading.Thread(target=_cpu_timed(loop), daemon=True)
    started = time.perf_counter()
    thread.start()
    elapsed = rnd.wait_done(started)
    stop.set()
    thread.join(30)
    pg_amqp.close_quietly(conn)
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


def _run_case(case: str, tag: str, count: int, rules: str, batch_size: int, pipe) -> None:
    """In a fresh process (spawned): one case on the round ``tag``; sends (elapsed, CPU s).

    Each case runs in its own process so that nothing one leaves behind (oslo.messaging's
    threads, caches, a fragmented heap) weighs on the next.
    """
    import logging

    logging.basicConfig(level=logging.WARNING)
    rnd = Round(count, tag)
    try:
        if case == "propguard":
            elapsed = run_propguard(rnd, rules, batch_size)
        elif case == "bare py-amqp":
            elapsed = run_bare_amqp(rnd, batch_size)
        else:
            elapsed = run_bare(rnd)
    finally:
        rnd.conn.close()
    pipe.send((elapsed, LAST_CPU[0]))
    pipe.close()


def _in_child(case: str, rnd: Round, rules: str, batch_size: int) -> tuple[float, float]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_run_case, args=(case, rnd.tag, rnd.count, rules, batch_size, sender)
    )
    child.start()
    sender.close()
    try:
        result = receiver.recv()
    finally:
        child.join(60)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10000, help="backlog per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per case")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="seconds of rest after filling a backlog (the broker persists it, and deletes "
        "the previous round's queues) before a case is timed",
    )
    parser.add_argument(
        "--no-oslo", action="store_true", help="leave out the oslo.messaging republisher"
    )
    args = parser.parse_args(argv)

    import logging
    import tempfile

    logging.basicConfig(level=logging.WARNING)
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as handle:
        handle.write(RULES)
    cases = ["propguard", "bare py-amqp", "bare oslo.messaging"]
    if args.no_oslo:
        cases.remove("bare oslo.messaging")
    rates: dict[str, list[float]] = {case: [] for case in cases}
    cpu: dict[str, list[float]] = {"propguard": [], "bare py-amqp": []}
    size = 0
    for number in range(args.rounds):
        order = cases if number % 2 == 0 else cases[1::-1] + cases[2:]  # A B C, B A C...
        for case in order:
            rnd = Round(args.count)
            try:
                size = rnd.fill()
                time.sleep(args.settle)  # let the broker write the backlog before timing
                elapsed, cpu_seconds = _in_child(case, rnd, handle.name, args.batch_size)
            finally:
                rnd.close()
            rate = args.count / elapsed
            rates[case].append(rate)
            line = f"  {case:22} {args.count} messages in {elapsed:6.2f} s: {rate:8,.0f} msg/s"
            if case in cpu:
                cpu[case].append(cpu_seconds / args.count * 1e6)
                line += f", consumer thread CPU {cpu[case][-1]:5.1f} us/msg"
            print(line)
        ratio = rates["propguard"][-1] / rates["bare py-amqp"][-1]
        print(f"  round {number + 1}: propguard / bare py-amqp {ratio:.2f}x")
    os.unlink(handle.name)
    ratios = [p / b for p, b in zip(rates["propguard"], rates["bare py-amqp"], strict=True)]
    costs = [
        1e6 / p - 1e6 / b for p, b in zip(rates["propguard"], rates["bare py-amqp"], strict=True)
    ]
    print(
        f"\nimage.update, 20 properties, envelope {size} bytes; backlog {args.count}, "
        f"{args.rounds} rounds, batch {args.batch_size}"
    )
    print(f"{'case':22} {'best':>8} {'median':>8}  msg/s")
    for case, values in rates.items():
        print(f"{case:22} {max(values):8,.0f} {statistics.median(values):8,.0f}")
    print(
        f"propguard / bare py-amqp, per round: {' '.join(f'{r:.2f}' for r in ratios)}; "
        f"median {statistics.median(ratios):.2f}x (target >= 0.90)"
    )
    print(
        f"the filter's cost on top of the bare republisher: median "
        f"{statistics.median(costs):.1f} us per message"
    )
    cpu_costs = [p - b for p, b in zip(cpu["propguard"], cpu["bare py-amqp"], strict=True)]
    print(
        f"consumer thread CPU per message: propguard median "
        f"{statistics.median(cpu['propguard']):.1f} us, bare py-amqp "
        f"{statistics.median(cpu['bare py-amqp']):.1f} us; the filter's CPU on top: median "
        f"{statistics.median(cpu_costs):.1f} us per message"
    )
    if "bare oslo.messaging" in rates:
        ratio = max(rates["propguard"]) / max(rates["bare oslo.messaging"])
        print(f"propguard / bare oslo.messaging (best): {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
