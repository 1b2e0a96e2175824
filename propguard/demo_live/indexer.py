"""The demo's indexer: a queue that receives everything Glance publishes to the broker.

Why a tap on a private exchange rather than a listener on one topic: the
demo must show what *reaches the broker* at all, so the queue is bound with
``#`` to an exchange used by this run's Glance alone (its
``control_exchange``); anything the notification filter let through,
on any topic, lands here. Everything is removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from typing import Any

BROKER_HOST = "127.0.0.1:5672"
TRANSPORT_URL = f"rabbit://guest:guest@{BROKER_HOST}/"
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")


def broker_problem(timeout: float = 3.0) -> str | None:
    """None when RabbitMQ answers at 127.0.0.1:5672 with guest/guest, else why not."""
    import amqp

    conn = amqp.Connection(
        host=BROKER_HOST, userid="guest", password="guest", connect_timeout=timeout
    )
    try:
        conn.connect()
    except Exception as exc:  # noqa: BLE001 - any reason is reported, not raised
        return f"{type(exc).__name__}: {exc}"
    with contextlib.suppress(Exception):
        conn.close()
    return None


class Tap:
    """A private exchange (Glance's control_exchange in this run) and a queue bound to ``#``."""

    def __init__(self) -> None:
        import amqp

        suffix = uuid.uuid4().hex[:10]
        self.exchange = f"propguard-demo-{suffix}"
        self.topic = f"propguard_demo_{suffix}"
        self.conn = amqp.Connection(
            host=BROKER_HOST, userid="guest", password="guest", connect_timeout=5
        )
        self.conn.connect()
        self.channel = self.conn.channel()
        # As oslo.messaging declares it with its defaults (amqp_durable_queues = False).
        self.channel.exchange_declare(self.exchange, "topic", durable=False, auto_delete=False)
        self.queue, _, _ = self.channel.queue_declare("", exclusive=True, auto_delete=True)
        self.channel.queue_bind(self.queue, self.exchange, "#")

    def transport(self) -> dict[str, str]:
        """What glance-api.conf needs to publish here."""
        return {"transport_url": TRANSPORT_URL, "exchange": self.exchange, "topic": self.topic}

    def drain(self, quiet: float = 1.5, limit: float = 15.0) -> list[tuple[str, dict[str, Any]]]:
        """Every message so far, decoded from oslo.messaging's v2 envelope, once ``quiet`` s pass."""
        got: list[tuple[str, dict[str, Any]]] = []
        start = idle_since = time.monotonic()
        while time.monotonic() - idle_since < quiet and time.monotonic() - start < limit:
            message = self.channel.basic_get(self.queue, no_ack=True)
            if message is None:
                time.sleep(0.05)
                continue
            body = message.body
            text = body.decode() if isinstance(body, bytes | bytearray) else str(body)
            envelope = json.loads(text)
            inner = envelope.get("oslo.message")
            decoded = json.loads(inner) if isinstance(inner, str) else envelope
            got.append((message.delivery_info["routing_key"], decoded))
            idle_since = time.monotonic()
        return got

    def close(self) -> None:
        with contextlib.suppress(Exception):
            channel = self.conn.channel()
            # The default queues oslo.messaging's publisher declares, named after routing keys.
            for priority in PRIORITIES:
                channel.queue_delete(f"{self.topic}.{priority}")
            channel.exchange_delete(self.exchange)
        with contextlib.suppress(Exception):
            self.conn.close()
