"""End to end through RabbitMQ: the ``notify-filter`` service vs bare republishers.

Run: ``.venv/bin/python benchmarks/bench_notify_e2e.py`` (RabbitMQ on
127.0.0.1:5672, guest/guest; every round uses its own exchange and queues
and deletes them).

Each case of a round gets a durable pool queue filled with a backlog of N
Glance ``image.update`` notifications (20 properties, messagingv2 envelopes,
persistent), then one consumer in a process of its own, timed until all N
outputs are in its durable output queue (every output confirmed by the
broker, every input acknowledged):

* ``propguard``: :class:`~propguard.notifications.service.NotifyFilterService`
  (strip mode, one audience, so one output per message like the anchors:
  decode, filter 10 of 20 properties away, encode, publish with publisher
  confirms awaited once per batch, one multiple ack per batch after them).
* ``bare py-amqp``: the like-for-like anchor. A py-amqp consumer with the
  service's prefetch that republishes every body unchanged (no decode, no
  filter, no encode) through the service's own publisher
  (:class:`~propguard.notifications.amqp.ConfirmingPublisher`: persistent,
  ``mandatory``) to one output queue, waits for the confirms once per batch
  of ``--batch-size`` (batches formed as the service forms them) and
  acknowledges the batch with one multiple ack: the service's delivery
  protocol without its work.
* ``bare oslo.messaging`` (unless ``--no-oslo``): an oslo.messaging notification
  listener (``allow_requeue=True``, pool, one thread) whose endpoint
  republishes every notification through a ``Notifier(driver="messagingv2",
  retry=-1)`` (the rabbit driver awaits each publish's confirm). Same
  durability (``amqp_durable_queues = true``).
* ``propguard@<tree>`` (``--compare-tree``): the service of another checkout
  (e.g. main before a change), in the same rounds: before/after in one run.

Differences that remain, by design: propguard's outputs are smaller than its
inputs (the stripped properties are gone; the broker writes less), and it
declares its queues when it starts (excluded from the timing, as the anchors'
set-up is).

Measured per case and round: the rate (messages / wall-clock seconds, from
the consumer being ready to the last output in its queue), and CPU per
message of the consumer's **process** (``getrusage``, user + system: the
socket system calls are part of a republisher's cost), of its consumer
thread, and of the broker's process (``/proc``; it also serves other clients
of a shared broker). The cases alternate (their order rotates every round)
so a slow spell of the machine hits all. Per round: the ratio of the rates
and the ratio of the process CPU per message (bare / propguard: the rate
ratio when the consumer's CPU is the bottleneck, which load disturbs far less
than the wall clock). Every round also measures, in this process, the
per-message CPU of what the filter does (decode + filter + encode) and of the
floor of any filter that must read and rewrite the message (orjson
``loads`` of the envelope and of its message, ``dumps`` of both again).

Targets (issue): propguard at least 0.9x the bare py-amqp republisher, and at
least 1,000 messages/s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
#: A child of ``--compare-tree`` imports propguard from that tree.
TREE = os.environ.get("PROPGUARD_BENCH_TREE") or os.path.join(HERE, os.pardir)
sys.path.insert(0, TREE)

import amqp  # noqa: E402
import orjson  # noqa: E402

from propguard.notifications import amqp as pg_amqp  # noqa: E402
from propguard.notifications import samples, wire  # noqa: E402

BROKER = "127.0.0.1:5672"
URL = f"rabbit://guest:guest@{BROKER}/"
RULES = "[^x_secret_]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n\n[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n"
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")
BARE = "bare py-amqp"
OSLO = "bare oslo.messaging"
PROPGUARD = "propguard"


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

    def wait_done(self, started: float, timeout: float = 900) -> float:
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


# -- the consumers (each in a child process) -------------------------------------------


class Consumer:
    """Started in a thread; ``ready`` once it consumes; ``stop`` ends it."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class PropguardConsumer(Consumer):
    def __init__(self, rnd: Round, rules_file: str, batch_size: int, prefetch: int) -> None:
        super().__init__()
        from propguard.notifications.opts import OutputConfig
        from propguard.notifications.service import NotifyFilterService, ServiceSettings
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
            prefetch=prefetch,
        )
        self.service = NotifyFilterService(settings, outputs.build(holder.current), outputs)
        self.ready = self.service.connected

    def run(self) -> None:
        self.service.run()

    def stop(self) -> None:
        self.service.stop()


class BareConsumer(Consumer):
    """Consume, republish unchanged, one confirm wait and one multiple ack per batch."""

    def __init__(self, rnd: Round, batch_size: int, prefetch: int) -> None:
        super().__init__()
        self.rnd, self.batch_size, self.prefetch = rnd, batch_size, prefetch
        self._stop = threading.Event()

    def run(self) -> None:
        rnd, batch_size = self.rnd, self.batch_size
        conn, _ = pg_amqp.connect(pg_amqp.BrokerConfig.from_url(URL))
        consumer = conn.channel()
        consumer.basic_qos(0, self.prefetch, False)
        consumer.auto_decode = False
        pending: list[amqp.Message] = []
        consumer.basic_consume(rnd.pool, callback=pending.append, no_ack=False)
        publisher = pg_amqp.ConfirmingPublisher(conn)
        self.ready.set()
        while not self._stop.is_set():
            if not pending:
                try:
                    conn.drain_events(timeout=0.5)
                except TimeoutError:
                    continue
            while len(pending) < batch_size:  # the service forms its batches so
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
        pg_amqp.close_quietly(conn)

    def stop(self) -> None:
        self._stop.set()


class OsloConsumer(Consumer):
    def __init__(self, rnd: Round) -> None:
        super().__init__()
        self.rnd = rnd
        self._done = threading.Event()

    def run(self) -> None:
        import oslo_messaging
        from oslo_config import cfg
        from oslo_messaging import opts as om_opts

        rnd = self.rnd
        conf = cfg.ConfigOpts()
        for group, options in om_opts.list_opts():
            conf.register_opts(options, group=group)
        conf([], project="pgbench", default_config_files=[], default_config_dirs=[])
        conf.set_override("control_exchange", rnd.exchange)
        conf.set_override("amqp_durable_queues", True, "oslo_messaging_rabbit")
        transport = oslo_messaging.get_notification_transport(conf, url=URL)
        notifier = oslo_messaging.Notifier(
            transport, driver="messagingv2", topics=[rnd.out], retry=-1
        )

        class Republish:
            def _send(self, priority, publisher_id, event_type, payload):
                getattr(notifier.prepare(publisher_id=publisher_id), priority)(
                    {}, event_type, payload
                )

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
        listener.start(override_pool_size=1)
        self.ready.set()
        self._done.wait()
        listener.stop()
        listener.wait()
        transport.cleanup()

    def stop(self) -> None:
        self._done.set()


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(args: argparse.Namespace) -> int:
    """One case on an existing round: ``ready`` on stdout once consuming, then, after
    ``stop`` on stdin, the CPU seconds used since ready (process, consumer thread)."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    rnd = Round(args.count, args.tag)
    consumer: Consumer
    if args.child == BARE:
        consumer = BareConsumer(rnd, args.batch_size, args.prefetch)
    elif args.child == OSLO:
        consumer = OsloConsumer(rnd)
    else:
        consumer = PropguardConsumer(rnd, args.rules_file, args.batch_size, args.prefetch)
    consumer.thread.start()
    if not consumer.ready.wait(60):
        raise SystemExit("the consumer did not start")
    clock = time.pthread_getcpuclockid(consumer.thread.ident)
    process0, thread0 = _process_cpu(), time.clock_gettime(clock)
    print("ready", flush=True)
    sys.stdin.readline()
    process1, thread1 = _process_cpu(), time.clock_gettime(clock)
    consumer.stop()
    consumer.thread.join(30)
    rnd.conn.close()
    print(json.dumps({"process": process1 - process0, "thread": thread1 - thread0}), flush=True)
    return 0


# -- the parent: rounds, floors, report ------------------------------------------------


def _broker_pid() -> int | None:
    """The local RabbitMQ node (``beam.smp``), if there is one."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as handle:
                    if handle.read().strip() == "beam.smp":
                        return int(entry)
            except OSError:
                continue
    return None


def _cpu_of(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(case: str, args: argparse.Namespace, rules_file: str, broker: int | None) -> dict:
    """Fill a round, run ``case`` on it in a process of its own; its measures."""
    env = dict(os.environ)
    name = case
    if case.startswith(f"{PROPGUARD}@"):
        env["PROPGUARD_BENCH_TREE"] = case.split("@", 1)[1]
        name = PROPGUARD
    count = args.oslo_count if case == OSLO else args.count
    rnd = Round(count)
    try:
        size = rnd.fill()
        time.sleep(args.settle)  # let the broker write the backlog before timing
        command = [sys.executable, os.path.abspath(__file__), "--child", name, "--tag", rnd.tag]
        command += ["--count", str(count), "--batch-size", str(args.batch_size)]
        command += ["--prefetch", str(args.prefetch), "--rules-file", rules_file]
        proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"{case}: the consumer did not start ({line!r})")
            broker0 = _cpu_of(broker)
            started = time.perf_counter()
            elapsed = rnd.wait_done(started)
            broker1 = _cpu_of(broker)
            proc.stdin.write("stop\n")
            proc.stdin.flush()
            cpu = json.loads(proc.stdout.readline())
        finally:
            if proc.wait(60) != 0:
                raise RuntimeError(f"{case}: the consumer exited with {proc.returncode}")
    finally:
        rnd.close()
    return {
        "rate": count / elapsed,
        "elapsed": elapsed,
        "count": count,
        "process_us": cpu["process"] / count * 1e6,
        "thread_us": cpu["thread"] / count * 1e6,
        "broker_us": (broker1 - broker0) / count * 1e6,
        "size": size,
    }


def floors(rules_file: str, number: int = 2000, repeat: int = 5) -> dict[str, float]:
    """CPU microseconds per message (best of ``repeat``) of the filter's own work and of
    the orjson floor, on the bodies the rounds carry."""
    from propguard.notifications.core import UNIQUE_ID_KEY
    from propguard.notifications.opts import OutputConfig
    from propguard.rules.loading import RulesOptions, open_rules

    holder = open_rules(RulesOptions(rules_file=rules_file), reload_interval=5)
    outputs = OutputConfig.from_values(
        {"modes": ["strip"], "audience_roles": ["member"], "strip_topics": ["out"]}
    )
    nf = outputs.build(holder.current)
    props = samples.bench_properties(20, 10)
    bodies = [
        wire.encode(samples.notification("image.update", samples.image_payload(props)))
        for _ in range(number)
    ]

    def filter_work() -> None:
        for body in bodies:
            note = wire.decode(body).notification
            if UNIQUE_ID_KEY not in note:
                note[UNIQUE_ID_KEY] = note["message_id"]
            for output in nf.outputs(note):
                wire.encode(output.notification, True)

    def orjson_floor() -> None:
        for body in bodies:
            note = orjson.loads(orjson.loads(body)["oslo.message"])
            orjson.dumps({"oslo.version": "2.0", "oslo.message": orjson.dumps(note).decode()})

    best = {"decode+filter+encode": float("inf"), "orjson decode+encode": float("inf")}
    for _ in range(repeat):
        for label, work in (
            ("decode+filter+encode", filter_work),
            ("orjson decode+encode", orjson_floor),
        ):
            start = time.process_time()
            work()
            best[label] = min(best[label], (time.process_time() - start) / number * 1e6)
    return best


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _span(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}" if values else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10000, help="backlog per round")
    parser.add_argument("--rounds", type=int, default=9, help="rounds per case")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--prefetch", type=int, default=200)
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
    parser.add_argument("--oslo-count", type=int, default=0, help="its backlog (default --count)")
    parser.add_argument(
        "--compare-tree",
        metavar="PATH",
        action="append",
        default=[],
        help="also run the service of the propguard checkout at PATH (before/after); repeatable",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    parser.add_argument("--rules-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    args.oslo_count = args.oslo_count or args.count

    import logging

    logging.basicConfig(level=logging.WARNING)
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as handle:
        handle.write(RULES)
    rules_file = handle.name
    cases = [PROPGUARD, BARE]
    cases += [f"{PROPGUARD}@{os.path.abspath(tree)}" for tree in args.compare_tree]
    if not args.no_oslo:
        cases.append(OSLO)
    filtered = [c for c in cases if c.startswith(PROPGUARD)]
    broker = _broker_pid()
    results: dict[str, list[dict]] = {case: [] for case in cases}
    floor: dict[str, list[float]] = {"decode+filter+encode": [], "orjson decode+encode": []}
    size = 0
    for number in range(args.rounds):
        shift = number % len(cases)
        order = cases[shift:] + cases[:shift]
        print(f"round {number + 1} (load {os.getloadavg()[0]:.1f}):")
        for case in order:
            result = run_case(case, args, rules_file, broker)
            size = result["size"]
            results[case].append(result)
            print(
                f"  {case:24} {result['count']:6} in {result['elapsed']:6.2f} s "
                f"{result['rate']:7,.0f} msg/s; CPU us/msg: process {result['process_us']:6.1f}, "
                f"thread {result['thread_us'] if case != OSLO else float('nan'):6.1f}, "
            f"broker {result['broker_us']:6.1f}"
            )
        for label, value in floors(rules_file).items():
            floor[label].append(value)
        bare = results[BARE][-1]
        for case in filtered:
            mine = results[case][-1]
            print(
                f"  {case} / {BARE}: rate {mine['rate'] / bare['rate']:.2f}x, "
                f"process CPU {bare['process_us'] / mine['process_us']:.2f}x"
            )
        print(
            "  in this process, CPU us/msg: "
            + ", ".join(f"{k} {v[-1]:.1f}" for k, v in floor.items())
        )
    os.unlink(rules_file)

    print(
        f"\nimage.update, 20 properties (10 stripped), envelope {size} bytes; backlog "
        f"{args.count}, {args.rounds} rounds, batch {args.batch_size}, prefetch {args.prefetch}; "
        f"load average at the end {os.getloadavg()[0]:.1f} (2 cores)"
    )
    print(
        f"{'case':24} {'msg/s median':>12} {'(range)':>15}  CPU us/msg medians: "
        f"{'process':>8} {'thread':>7} {'broker':>7}"
    )
    for case, rows in results.items():
        rates = [r["rate"] for r in rows]
        print(
            f"{case:24} {_median(rates):12,.0f} {_span(rates, '{:,.0f}'):>15}  "
            f"{'':19}{_median([r['process_us'] for r in rows]):8.1f} "
            f"{_median([r['thread_us'] for r in rows]) if case != OSLO else float('nan'):7.1f} "
            f"{_median([r['broker_us'] for r in rows]):7.1f}"
        )
    bare_rows = results[BARE]
    for case in filtered:
        rows = results[case]
        rate_ratios = [p["rate"] / b["rate"] for p, b in zip(rows, bare_rows, strict=True)]
        cpu_ratios = [
            b["process_us"] / p["process_us"] for p, b in zip(rows, bare_rows, strict=True)
        ]
        extra = [p["process_us"] - b["process_us"] for p, b in zip(rows, bare_rows, strict=True)]
        print(
            f"{case} / {BARE}, per round: rate {' '.join(f'{r:.2f}' for r in rate_ratios)}; "
            f"median {_median(rate_ratios):.2f}x (target >= 0.90)"
        )
        print(
            f"{'':{len(case) + len(BARE) + 3}}  process CPU (bare / propguard) "
            f"{' '.join(f'{r:.2f}' for r in cpu_ratios)}; median {_median(cpu_ratios):.2f}x"
        )
        print(
            f"{'':{len(case) + len(BARE) + 3}}  the filter's process CPU on top of the bare "
            f"republisher: median {_median(extra):.1f} us/msg (rounds {_span(extra, '{:.1f}')})"
        )
    bare_cpu = _median([r["process_us"] for r in bare_rows])
    work = _median(floor["decode+filter+encode"])
    least = _median(floor["orjson decode+encode"])
    print(
        "CPU us/msg in the parent (medians of each round's best): decode+filter+encode "
        f"{work:.1f}, "
        f"orjson decode+encode {least:.1f}; with the bare republisher's {bare_cpu:.1f}, the "
        f"process CPU ratio can be at best {bare_cpu / (bare_cpu + work):.2f}x with this filter's "
        f"work and {bare_cpu / (bare_cpu + least):.2f}x for any filter that decodes and encodes"
    )
    if OSLO in results:
        best_oslo = max(r["rate"] for r in results[OSLO])
        best_pg = max(r["rate"] for r in results[PROPGUARD])
        print(f"{PROPGUARD} / {OSLO} (best rates): {best_pg / best_oslo:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
