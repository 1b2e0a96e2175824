"""The ``propguard`` notification driver's cost per notification, next to plain ``messagingv2``.

Run: ``.venv/bin/python benchmarks/bench_notify_driver.py`` (RabbitMQ on
127.0.0.1:5672, guest/guest; exchange and queues of its own, deleted after).

Two oslo.messaging ``Notifier`` objects send the same Glance ``image.update``
notification (20 properties) as glance-api does (``notifier.info({}, ...)``),
through the real rabbit driver (publisher confirms) to the real broker:

* ``messagingv2``: Glance's usual driver, raw payload;
* ``propguard``: ``driver = propguard`` (strip for ``member``, 10 of 20
  properties hidden), which hands the filtered notification to messagingv2.

The headline is the cost through the broker: the cases alternate in rounds
(the order flips every round), and each round's difference propguard minus
messagingv2 is kept; the median of those paired differences (and its
quartiles) over the median messagingv2 send is what the driver adds to a
notification in glance-api. Secondary, without a broker (the transport's send
replaced by a no-op): the driver's own CPU work, what
``PropguardDriver.notify`` adds to ``MessagingV2Driver.notify``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, os.pardir))

RULES = "[^x_secret_]\ncreate = admin\nread = admin\nupdate = admin\ndelete = admin\n\n[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n"
URL = "rabbit://guest:guest@127.0.0.1:5672/"


def make_conf(rules_file: str, exchange: str):
    from oslo_config import cfg
    from oslo_messaging import opts as om_opts

    from propguard import opts as propguard_opts
    from propguard.notifications import opts as notify_opts

    conf = cfg.ConfigOpts()
    for group, options in om_opts.list_opts():
        conf.register_opts(options, group=group)
    propguard_opts.register_opts(conf)
    notify_opts.register_opts(conf)
    conf([], project="pgbench", default_config_files=[], default_config_dirs=[])
    conf.set_override("control_exchange", exchange)
    conf.set_override("rules_file", rules_file, "propguard")
    conf.set_override("reload_on_sighup", False, "propguard")
    conf.set_override("audience_roles", ["member"], "propguard_notifications")
    return conf


def per_call(fn, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=300, help="notifications per case per round")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)

    import logging

    import amqp
    import oslo_messaging

    from propguard.notifications import samples

    logging.basicConfig(level=logging.WARNING)
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as handle:
        handle.write(RULES)
    tag = uuid.uuid4().hex[:8]
    exchange = f"pgbench-driver-{tag}"
    conf = make_conf(handle.name, exchange)
    payload = samples.image_payload(samples.bench_properties(20, 10))
    topics = {"messagingv2": f"pgbench_v2_{tag}", "propguard": f"pgbench_pg_{tag}"}

    # -- through RabbitMQ -------------------------------------------------------
    transport = oslo_messaging.get_notification_transport(conf, url=URL)
    notifiers = {
        name: oslo_messaging.Notifier(
            transport, publisher_id="image.bench", driver=name, topics=[topic]
        )
        for name, topic in topics.items()
    }
    for notifier in notifiers.values():  # connect, declare the exchange and default queues
        notifier.info({}, "image.update", payload)
    times: dict[str, list[float]] = {name: [] for name in notifiers}
    order = list(notifiers)
    for _ in range(args.rounds):
        for name in order:
            notifier = notifiers[name]
            t = per_call(lambda n=notifier: n.info({}, "image.update", payload), args.number)
            times[name].append(t)
        order.reverse()  # neither case always runs first (a warm or a loaded round)
    transport.cleanup()
    diffs = [p - v for p, v in zip(times["propguard"], times["messagingv2"], strict=True)]
    conn = amqp.Connection(host="127.0.0.1:5672")
    conn.connect()
    channel = conn.channel()
    sent = {}
    for name, topic in topics.items():
        sent[name] = channel.queue_declare(f"{topic}.info", passive=True).message_count
        channel.queue_delete(f"{topic}.info")
    channel.exchange_delete(exchange)
    conn.close()

    # -- the driver alone (no broker) -----------------------------------------------
    class NoSend:
        def __init__(self) -> None:
            self.conf = conf

        def _send_notification(self, *args, **kwargs) -> None:
            pass

    from oslo_messaging.notify.messaging import MessagingV2Driver

    from propguard.notifications.driver import PropguardDriver

    stub = NoSend()
    drivers = {
        "messagingv2": MessagingV2Driver(conf, topics=["t"], transport=stub),
        "propguard": PropguardDriver(conf, ["t"], stub),
    }
    message = samples.notification("image.update", payload, unique_id=False)
    alone = dict.fromkeys(drivers, float("inf"))
    for _ in range(args.rounds):
        for name, driver in drivers.items():
            t = per_call(lambda d=driver: d.notify({}, message, "INFO", None), 20000)
            alone[name] = min(alone[name], t)
    os.unlink(handle.name)

    print("image.update, 20 properties (10 hidden from the audience)")
    print(
        f"through RabbitMQ (publisher confirms), {args.rounds} alternating rounds x {args.number}:"
    )
    for name, values in times.items():
        print(
            f"  {name:12} median {statistics.median(values) * 1e6:8.1f} us/notification, "
            f"best {min(values) * 1e6:.1f}  ({sent[name]} delivered)"
        )
    base = statistics.median(times["messagingv2"])
    q1, med, q3 = statistics.quantiles(diffs, n=4)
    print(
        f"  added by propguard (paired per round): median {med * 1e6:.1f} us = {med / base:+.1%} "
        f"of a messagingv2 send (quartiles {q1 * 1e6:.1f} .. {q3 * 1e6:.1f} us, "
        f"{q1 / base:+.1%} .. {q3 / base:+.1%})"
    )
    print("driver alone (transport send stubbed), best of rounds x 20000:")
    for name, seconds in alone.items():
        print(f"  {name:12} {seconds * 1e6:8.2f} us/notification")
    own = alone["propguard"] - alone["messagingv2"]
    print(
        f"  propguard's own work: {own * 1e6:.2f} us/notification = "
        f"{own / base:.1%} of a messagingv2 send (CPU only, not what a send costs)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
