"""``propguard notify-filter``: the listener service, at-least-once.

Glance's notifications in (exchange ``glance``, topics ``notifications``, every
priority, through the durable pool queue ``propguard``), each filtered by the
core, each output republished in the messagingv2 wire format to its topic on
the same exchange, then acknowledged.

Delivery guarantee: **at least once**. A message is acknowledged only after
every one of its outputs was confirmed by the broker (publisher confirms,
``mandatory``: an output no queue takes counts as a failure). If the service
is killed, loses its connection or the broker restarts before that, the
broker delivers the message again and its outputs may be published twice:
each output keeps the original ``message_id`` and ``timestamp`` and carries a
``_unique_id`` derived from the original's and the output (so
oslo.messaging listeners drop a duplicate they still remember), and an
indexer de-duplicates by ``message_id`` (plus ``propguard_view`` for views).
Nothing is ever published unfiltered, and nothing is lost: the pool queue
must be durable or quorum (checked at start, as is the exchange's
durability; ``accept_loss_on_broker_restart`` overrides), messages are
persistent.

Poison messages (not JSON, not an envelope, not a notification, unknown
priority, a payload the core refuses) go at once to the dead-letter topic
with the reason, and so does a message whose filtering raised anything else
``max_attempts`` times (counted by the quorum queue's ``x-delivery-count``,
otherwise by ``message_id`` in this process); meanwhile it is requeued. The
queue head is never blocked and a message never loops forever.
A message whose output cannot be encoded (JSON nested deeper than orjson
writes) is dead-lettered at once. An output the broker returns (its queue
was deleted) or nacks is published again alone, after its queue is declared
again, so the other outputs get no copies; still refused after
``max_attempts`` rounds, its message is dead-lettered with the reason.

Several instances: ``single_active_consumer`` (standbys take over at once,
in order) and ``partitions``/``partition`` (a router forwards each message
unchanged to ``<pool>.partition.<k>`` by image id; one filter per partition
keeps each image's events in order).

Order is kept (one consumer, messages handled in delivery order). Several
instances on one pool keep it with ``single_active_consumer`` (one consumes,
the others stand by and take over at once). While the broker confirms a
batch, the next one is already decoded, filtered and encoded (not published:
that waits for the batch in flight to be done). SIGTERM/SIGINT: the batch in
flight and the one prepared beside it are finished (published, confirmed,
acknowledged), the rest is left to the broker, exit 0.
Rules reload as in the filter (file change, SIGHUP, last good rules kept).
Logs name message ids, event types, routing keys and reasons, never a
property name or value.

Why py-amqp and not an oslo.messaging listener: see :mod:`propguard.notifications.amqp`.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import logging
import signal
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import amqp

from propguard import metrics
from propguard.notifications import amqp as pg_amqp
from propguard.notifications import wire
from propguard.notifications.core import (
    UNIQUE_ID_KEY,
    FilterError,
    Mode,
    NotificationFilter,
)
from propguard.notifications.opts import SERVICE_GROUP, OutputConfig
from propguard.view import ImageView

LOG = logging.getLogger(__name__)

PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")
DEAD_LETTER_EVENT = "propguard.dead_letter"
PUBLISHER_ID = "propguard.notify-filter"
#: Bound of the per-process attempt counter (classic queues).
ATTEMPTS_MEMORY = 10000


class StartupError(Exception):
    """The service must not run as configured (message names the option to change)."""


@dataclass(frozen=True)
class ServiceSettings:
    """``[propguard_notify_filter]``, resolved."""

    broker: pg_amqp.BrokerConfig
    exchange: str = "glance"
    topics: tuple[str, ...] = ("notifications",)
    pool: str = "propguard"
    queue_type: str = "classic"
    single_active_consumer: bool = False
    partitions: int = 0
    partition: int | None = None
    accept_loss_on_broker_restart: bool = False
    declare_output_queues: bool = True
    dead_letter_topic: str = "propguard_dead_letter"
    max_attempts: int = 3
    prefetch: int = 200
    batch_size: int = 100
    confirm_timeout: float = 30.0
    retry_interval_max: float = 30.0

    @classmethod
    def from_conf(cls, conf: Any) -> ServiceSettings:
        group = conf[SERVICE_GROUP]
        url = group.transport_url
        if not url:
            url = conf.oslo_messaging_notifications.transport_url or conf.transport_url
        if not url:
            raise StartupError(f"[{SERVICE_GROUP}] transport_url is not set")
        rabbit = conf.oslo_messaging_rabbit
        broker = pg_amqp.BrokerConfig.from_url(
            url,
            heartbeat=group.heartbeat,
            ssl=pg_amqp.ssl_options(
                rabbit.ssl, rabbit.ssl_ca_file, rabbit.ssl_cert_file, rabbit.ssl_key_file
            ),
        )
        return cls(
            broker=broker,
            exchange=group.exchange,
            topics=tuple(group.topics),
            pool=group.pool,
            queue_type=group.queue_type,
            single_active_consumer=group.single_active_consumer,
            partitions=group.partitions,
            partition=group.partition,
            accept_loss_on_broker_restart=group.accept_loss_on_broker_restart,
            declare_output_queues=group.declare_output_queues,
            dead_letter_topic=group.dead_letter_topic,
            max_attempts=group.max_attempts,
            prefetch=group.prefetch,
            batch_size=group.batch_size,
            confirm_timeout=group.confirm_timeout,
            retry_interval_max=group.retry_interval_max,
        )

    @property
    def router(self) -> bool:
        """Partitioned, and this instance forwards the pool queue to the partitions."""
        return self.partitions > 0 and self.partition is None

    def partition_queue(self, k: int) -> str:
        """Queue (and routing key on the exchange) of partition ``k``."""
        return f"{self.pool}.partition.{k}"

    @property
    def input_queue(self) -> str:
        """The queue this instance consumes: the pool queue, or its partition's."""
        if self.partitions > 0 and self.partition is not None:
            return self.partition_queue(self.partition)
        return self.pool

    def check(self) -> None:
        if self.partition is not None and not 0 <= self.partition < self.partitions:
            raise StartupError(
                f"[{SERVICE_GROUP}] partition = {self.partition} needs partitions > "
                f"{self.partition} (partitions = {self.partitions})"
            )


def partition_key(notification: dict[str, Any]) -> str:
    """What a notification is partitioned by: its image's id (``image_id`` of member and
    send events, ``id`` of image events; tasks and metadefs: their ``id`` or
    ``namespace``); ``""`` when there is none (e.g. an error string payload)."""
    payload = notification.get("payload")
    if not isinstance(payload, dict):
        return ""
    for name in ("image_id", "id", "namespace"):
        value = payload.get(name)
        if isinstance(value, str):
            return value
    return ""


def partition_of(key: str, partitions: int) -> int:
    """Stable across processes and restarts (unlike ``hash()``)."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % partitions


#: A message's outcome once prepared: (acknowledge?, attempt key, [(routing key, body)]).
Prepared = tuple[bool, str | None, list[tuple[str, bytes]]]


class Delivery:
    """One consumed message, as the service needs it."""

    __slots__ = ("body", "headers", "routing_key", "tag")

    def __init__(self, message: amqp.Message) -> None:
        body = message.body
        self.body: bytes = body if isinstance(body, bytes) else bytes(body, "utf-8")
        self.tag: int = message.delivery_info["delivery_tag"]
        self.routing_key: str = message.delivery_info.get("routing_key", "")
        self.headers: dict = message.properties.get("application_headers") or {}


class _Attempts:
    """Failed filtering attempts per message (classic queues), bounded."""

    def __init__(self) -> None:
        self._counts: collections.OrderedDict[str, int] = collections.OrderedDict()

    def add(self, key: str) -> int:
        count = self._counts.pop(key, 0) + 1
        self._counts[key] = count
        while len(self._counts) > ATTEMPTS_MEMORY:
            self._counts.popitem(last=False)
        return count

    def forget(self, key: str) -> None:
        self._counts.pop(key, None)


class NotifyFilterService:
    """Consume, filter, publish with confirms, acknowledge. See the module docstring."""

    def __init__(
        self,
        settings: ServiceSettings,
        nf: NotificationFilter,
        outputs: OutputConfig,
        *,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        if not outputs.strip_topics and Mode.STRIP in nf.modes:
            raise StartupError(
                "[propguard_notifications] strip_topics is empty: the service needs the topic "
                "its 'strip' output goes to"
            )
        settings.check()
        self.settings = settings
        self.filter = nf
        self.outputs = outputs
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._attempts = _Attempts()
        self._pending: collections.deque[Delivery] = collections.deque()
        #: The next batch's first messages, prepared while the broker confirmed the batch in
        #: flight (:meth:`_prepare_ahead`), in delivery order.
        self._ready: collections.deque[tuple[Delivery, Prepared]] = collections.deque()
        self._conn: amqp.Connection | None = None
        self._consumer: amqp.Channel | None = None
        self._publisher: pg_amqp.ConfirmingPublisher | None = None
        self._declared: set[str] = set()
        self._routes: dict[tuple[Mode, str | None, str], list[str]] = {}
        self._partition_keys = [settings.partition_queue(k) for k in range(settings.partitions)]
        self._partition_set = frozenset(self._partition_keys)
        #: Declared (again) whatever declare_output_queues says: without them nothing moves.
        self._own_queues = self._partition_set | {f"{settings.dead_letter_topic}.error"}
        self._router = settings.router
        #: Counters: consumed, published, acked, requeued, dead_lettered, reconnects.
        self.counts: collections.Counter[str] = collections.Counter()
        metrics.watch_notifications(self)  # counts exported on /metrics
        self.connected = threading.Event()
        self._check_loops()

    # -- configuration checks ----------------------------------------------------

    def _output_topics(self) -> set[str]:
        topics = set(self.outputs.strip_topics) | {self.settings.dead_letter_topic}
        for mode in self.filter.modes:
            if mode is Mode.VIEWS:
                for rc in self.filter.reader_classes:
                    topics.update(self.outputs.topics_for(mode, rc.name, ()))
            elif mode is Mode.ANNOTATE:
                topics.update(self.outputs.topics_for(mode, None, ()))
        return topics

    def _check_loops(self) -> None:
        looped = self._output_topics() & set(self.settings.topics)
        if looped:
            raise StartupError(
                f"output topic(s) {', '.join(sorted(looped))} are also consumed "
                f"([{SERVICE_GROUP}] topics): the service would filter its own output"
            )

    # -- lifecycle ------------------------------------------------------------

    def stop(self) -> None:
        """Ask the service to stop after the batch in flight (and the one prepared beside it;
        signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop gracefully (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: self.stop())

    def run(self) -> int:
        """Serve until :meth:`stop`; returns the exit status (0, or 1 on a startup error)."""
        pause = 1.0
        while not self.stopping:
            try:
                self._connect()
                pause = 1.0
                self._serve()
            except StartupError as exc:
                LOG.error("propguard notify-filter: %s", exc)
                self._disconnect()
                return 1
            except (*pg_amqp.CONNECTION_ERRORS, TimeoutError, Exception) as exc:
                # Anything but a connection error is a bug of this service: it must not end
                # consumption either. The connection is dropped (unacknowledged messages are
                # redelivered) and made again. Its text is not logged: it might quote data.
                self._disconnect()
                if self.stopping:
                    break
                self.counts["reconnects"] += 1
                known = isinstance(exc, (*pg_amqp.CONNECTION_ERRORS, TimeoutError))
                LOG.warning(
                    "propguard notify-filter: %s (%s%s); retrying in %.0f s (unacknowledged "
                    "messages are redelivered)",
                    f"connection to {self.settings.broker.describe()} lost or refused"
                    if known
                    else "internal error",
                    type(exc).__name__,
                    f": {exc}" if known else "",
                    pause,
                )
                self._sleep(pause)
                pause = min(pause * 2, self.settings.retry_interval_max)
        self._disconnect()
        LOG.info("propguard notify-filter: stopped (%s)", dict(self.counts))
        return 0

    # -- broker topology ------------------------------------------------------

    def _connect(self) -> None:
        s = self.settings
        conn, host = pg_amqp.connect(s.broker)
        self._conn = conn
        self._pending.clear()
        self._ready.clear()  # their delivery tags die with the connection
        self._declared = set()
        channel = conn.channel()
        # Created (if absent) as Glance's oslo.messaging would: durable unless the
        # operator accepted oslo.messaging's transient default.
        channel, durable = pg_amqp.declare_exchange(
            channel, conn, s.exchange, durable=not s.accept_loss_on_broker_restart
        )
        if not durable:
            self._loss_risk(
                f"exchange {s.exchange!r} is not durable: after a broker restart, notifications "
                "published before this service binds its queue again are lost (set "
                "amqp_durable_queues = true or rabbit_quorum_queue = true in "
                "[oslo_messaging_rabbit] of glance-api and delete the exchange once)"
            )
        queue = s.input_queue
        channel, state = pg_amqp.declare_queue(
            channel, conn, queue, s.queue_type, s.single_active_consumer
        )
        if state == "not-durable":
            self._loss_risk(
                f"pool queue {queue!r} exists and is not durable: a broker restart drops its "
                "backlog (delete it so that it is declared durable, or choose another pool)"
            )
            channel.queue_declare(queue, passive=True)
        elif state == "other-type":
            raise StartupError(
                f"pool queue {queue!r} exists with other arguments than queue_type = "
                f"{s.queue_type}, single_active_consumer = "
                f"{str(s.single_active_consumer).lower()}: set [{SERVICE_GROUP}] queue_type "
                "and single_active_consumer as the queue is, or delete it (once drained)"
            )
        if queue == s.pool:
            keys = [f"{topic}.{priority}" for topic in s.topics for priority in PRIORITIES]
        else:  # a partition: the router forwards to it
            keys = [queue]
        pg_amqp.bind_all(channel, queue, s.exchange, keys)
        if s.router:
            for k in range(s.partitions):
                channel = self._declare_output_queue(channel, s.partition_queue(k))
        self._declare_output_queue(channel, f"{s.dead_letter_topic}.error")
        channel.basic_qos(0, s.prefetch, False)
        channel.auto_decode = False
        channel.basic_consume(queue, callback=self._on_message, no_ack=False)
        self._consumer = channel
        self._publisher = pg_amqp.ConfirmingPublisher(conn)
        self.connected.set()
        LOG.info(
            "propguard notify-filter: %s %s (queue %r, %s%s) on %s:%s",
            f"routing to {s.partitions} partitions" if s.router else "consuming",
            ", ".join(s.topics) if queue == s.pool else f"partition {s.partition}",
            queue,
            s.queue_type,
            ", single active consumer: active or standby" if s.single_active_consumer else "",
            host.host,
            host.port,
        )

    def _loss_risk(self, message: str) -> None:
        if not self.settings.accept_loss_on_broker_restart:
            raise StartupError(
                f"{message}; or set [{SERVICE_GROUP}] accept_loss_on_broker_restart = true"
            )
        LOG.warning("propguard notify-filter: accepted risk: %s", message)

    def _declare_output_queue(self, channel: amqp.Channel, routing_key: str) -> amqp.Channel:
        """The queue messagingv2 would declare for ``routing_key`` (kept if it exists otherwise)."""
        if routing_key in self._declared:
            return channel
        assert self._conn is not None
        channel, state = pg_amqp.declare_queue(
            channel,
            self._conn,
            routing_key,
            self.settings.queue_type,
            self.settings.single_active_consumer and routing_key in self._partition_set,
        )
        if state != "ok":
            LOG.info(
                "propguard notify-filter: output queue %r exists (%s); using it as it is",
                routing_key,
                state,
            )
        channel.queue_bind(routing_key, self.settings.exchange, routing_key)
        self._declared.add(routing_key)
        return channel

    def _disconnect(self) -> None:
        self.connected.clear()
        pg_amqp.close_quietly(self._conn)
        self._conn = self._consumer = self._publisher = None
        self._pending.clear()
        self._ready.clear()  # their delivery tags die with the connection

    # -- the loop -------------------------------------------------------------

    def _on_message(self, message: amqp.Message) -> None:
        self._pending.append(Delivery(message))

    def _serve(self) -> None:
        conn = self._conn
        assert conn is not None
        next_tick = time.monotonic() + 1.0
        while not self.stopping:
            if time.monotonic() >= next_tick:
                conn.heartbeat_tick()
                next_tick = time.monotonic() + 1.0
            if not self._pending and not self._ready:
                try:
                    conn.drain_events(timeout=0.5)
                except TimeoutError:
                    continue
            while len(self._ready) + len(self._pending) < self.settings.batch_size:
                self._prepare_arrived()  # while the rest of the batch arrives
                try:
                    conn.drain_events(timeout=0.002)
                except TimeoutError:
                    break
            batch = self._next_batch()
            if batch:  # not when what arrived was no message (a late confirm)
                self._handle(batch)
        if self._ready and self._conn is not None:  # prepared beside the last batch: finished too
            self._handle(self._next_batch(prepared_only=True))
        self._finish()

    def _next_batch(self, prepared_only: bool = False) -> list[tuple[Delivery, Prepared]]:
        """Up to ``batch_size`` messages in delivery order, each with its outputs: those
        prepared ahead first, then the others, prepared now."""
        size = self.settings.batch_size
        ready, pending = self._ready, self._pending
        batch = [ready.popleft() for _ in range(min(len(ready), size))]
        while not prepared_only and len(batch) < size and pending:
            delivery = pending.popleft()
            batch.append((delivery, self._prepare_safely(delivery)))
        return batch

    def _prepare_ahead(self) -> None:
        """While the broker confirms the batch in flight, prepare (decode, filter, encode)
        the next batch's messages as they arrive: the filter's work overlaps the
        broker's instead of adding to it (so does preparing each message as it arrives
        while a batch forms). Nothing of them is published, acknowledged or
        rejected before the batch in flight is done, so order and delivery are unchanged.
        """
        conn = self._conn
        assert conn is not None
        while len(self._ready) < self.settings.batch_size and not self.stopping:
            if not self._pending:
                try:
                    conn.drain_events(timeout=0.001)
                except TimeoutError:
                    return  # nothing more has arrived: wait for the confirms
            self._prepare_arrived()

    def _prepare_arrived(self) -> None:
        """Prepare the messages that have arrived, up to a batch's worth, in order."""
        ready, pending = self._ready, self._pending
        size = self.settings.batch_size
        while pending and len(ready) < size:
            delivery = pending.popleft()
            ready.append((delivery, self._prepare_safely(delivery)))

    def _finish(self) -> None:
        """Graceful stop: cancel the consumer; unhandled prefetched messages go back."""
        if self._consumer is not None:
            try:
                self._consumer.basic_cancel(self._consumer.consumer_tags[0])
            except (*pg_amqp.CONNECTION_ERRORS, IndexError, AttributeError):
                pass

    def _handle(self, prepared: list[tuple[Delivery, Prepared]]) -> None:
        """Publish every output of a prepared batch, wait once for the confirms, acknowledge.

        An output the broker returns (its queue was deleted: by an operator, or
        an ``expires`` policy) or nacks is published again, alone, after its
        queue is declared again: the outputs already confirmed are not
        repeated. One still failing after ``max_attempts`` rounds sends its
        message to the dead-letter topic with the reason; the others of the
        batch are acknowledged as usual.
        """
        assert self._publisher is not None and self._consumer is not None
        batch = [delivery for delivery, _ in prepared]
        self.counts["consumed"] += len(batch)
        decisions: list[tuple[Delivery, bool, str | None]] = []  # (delivery, ack?, attempt key)
        outputs: list[tuple[int, str, bytes]] = []  # (index in batch, routing key, body)
        for index, (delivery, (ack, key, bodies)) in enumerate(prepared):
            for routing_key, body in bodies:
                outputs.append((index, routing_key, body))
            decisions.append((delivery, ack, key))
        failed = self._publish_all(outputs, ahead=True) if outputs else {}
        if failed:
            attempts = self.settings.max_attempts
            letters = [
                (index, *self._dead_letter(batch[index], reason, attempts, _note_of(batch[index])))
                for index, reason in failed.items()
            ]
            for index in self._publish_all(letters):  # not even the dead letter: try again later
                delivery, _, key = decisions[index]
                decisions[index] = (delivery, False, key)
        if all(ack for _, ack, _ in decisions):
            self._consumer.basic_ack(batch[-1].tag, multiple=True)
            self.counts["acked"] += len(batch)
        else:
            for delivery, ack, _ in decisions:
                if ack:
                    self._consumer.basic_ack(delivery.tag)
                    self.counts["acked"] += 1
                else:
                    self._consumer.basic_reject(delivery.tag, requeue=True)
                    self.counts["requeued"] += 1
        for _, ack, key in decisions:
            if ack and key is not None:
                self._attempts.forget(key)

    def _publish_all(
        self, outputs: list[tuple[int, str, bytes]], ahead: bool = False
    ) -> dict[int, str]:
        """Publish ``(index, routing key, body)``; returns the reason by index of those
        still not delivered after ``max_attempts`` rounds (only failed ones are repeated).
        ``ahead``: prepare the next batch while the first round's confirms come."""
        publisher = self._publisher
        assert publisher is not None
        exchange = self.settings.exchange
        pending = outputs
        failed: dict[int, str] = {}
        attempt = 0
        while pending:
            attempt += 1
            tags = []
            for _, routing_key, body in pending:
                if routing_key not in self._declared:
                    self._ensure_output_queue(routing_key)
                tags.append(publisher.publish(body, exchange, routing_key))
            if ahead and attempt == 1:
                self._prepare_ahead()
            failures = publisher.wait(self.settings.confirm_timeout)
            self.counts["published"] += len(pending) - len(failures)
            if not failures:
                break
            retry = []
            for output, tag in zip(pending, tags, strict=True):
                reason = failures.get(tag)
                if reason is not None:
                    if reason.startswith(pg_amqp.ConfirmingPublisher.NO_ROUTE):
                        self._declared.discard(output[1])  # deleted: declare it again
                    retry.append((output, reason))
            self.counts["republished"] += len(retry)
            reasons = "; ".join(sorted({reason for _, reason in retry}))
            if attempt >= self.settings.max_attempts:
                for (index, routing_key, _), reason in retry:
                    failed.setdefault(
                        index,
                        f"output to {routing_key!r} not accepted ({attempt} attempts): {reason}",
                    )
                LOG.error(
                    "propguard notify-filter: %d output(s) not accepted by the broker after %d "
                    "attempts (%s); their message(s) go to the dead-letter topic",
                    len(retry),
                    attempt,
                    reasons,
                )
                break
            LOG.warning(
                "propguard notify-filter: %d output(s) not accepted by the broker (%s); "
                "publishing them again (attempt %d of %d)",
                len(retry),
                reasons,
                attempt + 1,
                self.settings.max_attempts,
            )
            if not (
                self.settings.declare_output_queues
                and all(
                    reason.startswith(pg_amqp.ConfirmingPublisher.NO_ROUTE) for _, reason in retry
                )
            ):
                self._sleep(0.5 * attempt)  # a declaration fixes a missing queue; else wait
            pending = [output for output, _ in retry]
        return failed

    def _ensure_output_queue(self, routing_key: str) -> None:
        wanted = self.settings.declare_output_queues or routing_key in self._own_queues
        if wanted and routing_key not in self._declared:
            assert self._conn is not None
            channel = self._conn.channel()
            try:
                channel = self._declare_output_queue(channel, routing_key)
            except amqp.exceptions.ChannelError as exc:  # e.g. refused: the publish will tell
                self._declared.add(routing_key)
                LOG.error(
                    "propguard notify-filter: output queue %r cannot be declared (%s)",
                    routing_key,
                    type(exc).__name__,
                )
                return
            channel.close()

    # -- one message ----------------------------------------------------------

    def _prepare_safely(
        self, delivery: Delivery
    ) -> tuple[bool, str | None, list[tuple[str, bytes]]]:
        """:meth:`_prepare`, and anything it raises is a failed attempt of this message
        (requeued, then dead-lettered): never an end of the service."""
        try:
            return self._prepare(delivery)
        except Exception as exc:
            reason = f"handling failed ({type(exc).__name__})"
        key = _body_key(delivery.body)
        attempts = self._attempt(delivery, key)
        if attempts >= self.settings.max_attempts:
            return True, key, [self._dead_letter(delivery, reason, attempts, None)]
        LOG.warning(
            "propguard notify-filter: message on %r requeued, attempt %d of %d: %s",
            delivery.routing_key,
            attempts,
            self.settings.max_attempts,
            reason,
        )
        return False, key, []

    def _forward(self, delivery: Delivery) -> tuple[bool, str | None, list[tuple[str, bytes]]]:
        """The router's work: the body unchanged to the partition of its image id (one that
        cannot be decoded to partition 0, whose filter dead-letters it)."""
        try:
            key = partition_key(wire.decode(delivery.body).notification)
        except wire.DecodeError:
            key = ""
        k = partition_of(key, self.settings.partitions)
        return True, None, [(self._partition_keys[k], delivery.body)]

    def _prepare(self, delivery: Delivery) -> tuple[bool, str | None, list[tuple[str, bytes]]]:
        """(acknowledge?, attempt key, [(routing key, body)]) for one delivery.

        Logging happens outside the ``except`` blocks: a logger that appends
        the exception in flight (oslo.log does) must not print its text.
        """
        if self._router:
            return self._forward(delivery)
        reason = None
        try:
            decoded = wire.decode(delivery.body)
            note = decoded.notification
            priority = (note.get("priority") or "").lower()
            if priority not in PRIORITIES:
                raise wire.DecodeError("notification has no known 'priority'")
        except wire.DecodeError as exc:
            reason = str(exc)
        if reason is not None:
            return True, None, [self._dead_letter(delivery, reason, 1, None)]
        key = note.get("message_id") or _body_key(delivery.body)
        if UNIQUE_ID_KEY not in note:
            note[UNIQUE_ID_KEY] = key
        deterministic = False
        try:
            outputs = self.filter.outputs(note)
        except FilterError as exc:  # the notification itself is wrong: no retry helps
            reason, deterministic = str(exc), True
        except Exception as exc:  # a bug or a transient failure: bounded attempts
            reason = f"filtering failed ({type(exc).__name__})"
        if reason is not None:
            attempts = 1 if deterministic else self._attempt(delivery, key)
            if deterministic or attempts >= self.settings.max_attempts:
                return True, key, [self._dead_letter(delivery, reason, attempts, note)]
            LOG.warning(
                "propguard notify-filter: message %s (%s) requeued, attempt %d of %d: %s",
                note.get("message_id"),
                note.get("event_type"),
                attempts,
                self.settings.max_attempts,
                reason,
            )
            return False, key, []
        bodies = []
        try:
            for output in outputs:
                body = wire.encode(output.notification, True)
                for routing_key in self._route(output.mode, output.view, priority):
                    bodies.append((routing_key, body))
        except wire.EncodeError as exc:  # deterministic: no retry helps
            reason = str(exc)
        if reason is not None:
            return True, key, [self._dead_letter(delivery, reason, 1, note)]
        return True, key, bodies

    def _route(self, mode: Mode, view: str | None, priority: str) -> list[str]:
        route = (mode, view, priority)
        keys = self._routes.get(route)
        if keys is None:
            topics = self.outputs.topics_for(mode, view, self.outputs.strip_topics)
            keys = self._routes[route] = [f"{topic}.{priority}" for topic in topics]
        return keys

    def _attempt(self, delivery: Delivery, key: str) -> int:
        count = delivery.headers.get("x-delivery-count")
        if isinstance(count, int):  # quorum queue: deliveries before this one
            return count + 1
        return self._attempts.add(key)

    def _dead_letter(
        self, delivery: Delivery, reason: str, attempts: int, note: dict[str, Any] | None
    ) -> tuple[str, bytes]:
        self.counts["dead_lettered"] += 1
        note = note or {}
        original_id = note.get("message_id")
        if not note:
            LOG.error(
                "propguard notify-filter: undecodable message on %r dead-lettered: %s",
                delivery.routing_key,
                reason,
            )
        else:
            LOG.error(
                "propguard notify-filter: message %s (%s) dead-lettered after %d attempt(s): %s",
                original_id,
                note.get("event_type"),
                attempts,
                reason,
            )
        payload: dict[str, Any] = {
            "reason": reason,
            "attempts": attempts,
            "exchange": self.settings.exchange,
            "routing_key": delivery.routing_key,
            "queue": self.settings.input_queue,
            "original_message_id": original_id,
            "original_event_type": note.get("event_type"),
            "original_timestamp": note.get("timestamp"),
        }
        try:
            payload["body"] = delivery.body.decode("utf-8")
        except UnicodeDecodeError:
            payload["body_base64"] = base64.b64encode(delivery.body).decode()
        stable = original_id or _body_key(delivery.body)
        letter = {
            "message_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"propguard-dead-letter:{stable}")),
            "publisher_id": PUBLISHER_ID,
            "event_type": DEAD_LETTER_EVENT,
            "priority": "ERROR",
            "payload": payload,
            "timestamp": _utcnow(),
            UNIQUE_ID_KEY: f"{stable}.dead_letter",
        }
        return f"{self.settings.dead_letter_topic}.error", wire.encode(letter, True)


def _note_of(delivery: Delivery) -> dict[str, Any] | None:
    """The delivery's notification, for a dead letter's fields (``None`` if undecodable)."""
    try:
        return wire.decode(delivery.body).notification
    except wire.DecodeError:
        return None


def _body_key(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def _utcnow() -> str:
    """oslo.messaging's timestamp format (``str(utcnow())``)."""
    from datetime import UTC, datetime

    return str(datetime.now(UTC).replace(tzinfo=None))


def main(
    conf: Any,
    outputs: OutputConfig,
    holder: Any,
    view: ImageView | None = None,
    *,
    shadow: Any = None,
    on_divergence: Any = None,
) -> int:
    """Entry of ``propguard notify-filter`` (service mode); returns the exit status.
    ``shadow``, ``on_divergence``: shadow rules (:mod:`propguard.notifications.shadow`)."""
    from oslo_log import log as oslo_log

    try:
        oslo_log.setup(conf, "propguard-notify-filter")
    except Exception:  # options not registered on this conf: plain logging
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = ServiceSettings.from_conf(conf)
        nf = outputs.build(holder.current, view, shadow=shadow, on_divergence=on_divergence)
        service = NotifyFilterService(settings, nf, outputs)
    except (StartupError, ValueError) as exc:
        LOG.error("propguard notify-filter: %s", exc)
        return 2
    service.install_signal_handlers()
    group = conf[SERVICE_GROUP]
    if group.metrics_bind:
        try:
            metrics.serve_in_background(
                group.metrics_bind, list(group.metrics_allowed_source_ranges)
            )
        except (OSError, ValueError) as exc:
            LOG.error("propguard notify-filter: metrics_bind %s: %s", group.metrics_bind, exc)
            return 2
        LOG.info("propguard notify-filter: metrics on http://%s/metrics", group.metrics_bind)
    return service.run()


__all__ = [
    "DEAD_LETTER_EVENT",
    "NotifyFilterService",
    "ServiceSettings",
    "StartupError",
    "main",
]
