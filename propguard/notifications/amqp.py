"""AMQP 0-9-1 plumbing of the listener service (py-amqp), with no filtering knowledge.

The service speaks to RabbitMQ through py-amqp directly rather than through
an oslo.messaging listener: it needs the message's AMQP headers (a quorum
queue's ``x-delivery-count``), the undecodable messages oslo.messaging's
rabbit driver rejects before any endpoint sees them, acknowledgements it
sends itself after publisher confirms, and a durability check of the pool
queue that oslo.messaging's consumer silently falls back from (it re-declares
a queue non-durable when the exchange is). Configuration stays
oslo.messaging's: the same ``transport_url``, exchange, topics, pool name and
``<topic>.<priority>`` routing keys; messages are the messagingv2 wire format.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import amqp
from amqp import exceptions as amqp_exc

#: Errors after which the connection (not just one message) is unusable.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    amqp_exc.ConnectionError,
    amqp_exc.RecoverableConnectionError,
    amqp_exc.IrrecoverableConnectionError,
    amqp_exc.ChannelError,
    amqp_exc.RecoverableChannelError,
    amqp_exc.IrrecoverableChannelError,
)

#: AMQP message properties of oslo.messaging's notifications (rabbit driver).
MESSAGE_PROPERTIES = {
    "content_type": "application/json",
    "content_encoding": "utf-8",
    "delivery_mode": 2,
    "priority": 0,
}


@dataclass(frozen=True)
class Host:
    host: str
    port: int
    userid: str
    password: str = field(repr=False)
    virtual_host: str


@dataclass(frozen=True)
class BrokerConfig:
    hosts: tuple[Host, ...]
    ssl: bool | dict[str, Any] = False
    heartbeat: int = 60
    connect_timeout: float = 5.0

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> BrokerConfig:
        """From oslo.messaging's ``rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost``."""
        parts = urlsplit(url)
        if parts.scheme not in ("rabbit", "amqp", "kombu"):
            raise ValueError(
                f"transport_url scheme {parts.scheme!r} is not supported (rabbit:// only)"
            )
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        hosts = []
        for entry in parts.netloc.split(","):
            creds, _, hostport = entry.rpartition("@")
            user, _, password = creds.partition(":")
            host, port = _host_port(hostport)
            # As oslo.messaging's rabbit driver: no host is localhost, guest/guest.
            user, password = unquote(user) or "guest", unquote(password) or "guest"
            hosts.append(Host(host or "localhost", port, user, password, vhost))
        return cls(tuple(hosts), **kwargs)

    def describe(self) -> str:
        """For logs: hosts and virtual host, never the password."""
        names = ",".join(f"{h.userid}@{h.host}:{h.port}" for h in self.hosts)
        return f"{names}/{self.hosts[0].virtual_host}"


def _host_port(hostport: str) -> tuple[str, int]:
    if hostport.startswith("["):  # [ipv6]:port
        host, _, rest = hostport[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 5672
    host, _, port = hostport.partition(":")
    return host, int(port) if port else 5672


def ssl_options(
    enabled: bool, ca_file: str = "", cert_file: str = "", key_file: str = ""
) -> bool | dict:
    """py-amqp's ``ssl`` argument from oslo.messaging's ``[oslo_messaging_rabbit]`` ssl options."""
    if not enabled:
        return False
    options: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED}
    if ca_file:
        options["ca_certs"] = ca_file
    if cert_file:
        options["certfile"] = cert_file
    if key_file:
        options["keyfile"] = key_file
    return options


def connect(config: BrokerConfig, start: int = 0) -> tuple[amqp.Connection, Host]:
    """A connection to the first reachable host, trying them in order from ``start``."""
    error: BaseException | None = None
    hosts = config.hosts[start:] + config.hosts[:start]
    for host in hosts:
        conn = amqp.Connection(
            host=f"{host.host}:{host.port}",
            userid=host.userid,
            password=host.password,
            virtual_host=host.virtual_host,
            heartbeat=config.heartbeat,
            connect_timeout=config.connect_timeout,
            ssl=config.ssl,
        )
        try:
            conn.connect()
        except CONNECTION_ERRORS as exc:
            error = exc
            close_quietly(conn)
            continue
        return conn, host
    assert error is not None
    raise error


def close_quietly(conn: amqp.Connection | None) -> None:
    if conn is None:
        return
    try:
        conn.close()
    except Exception:  # already broken: drop the socket
        with contextlib.suppress(Exception):
            conn.collect()


def queue_arguments(queue_type: str, single_active_consumer: bool = False) -> dict[str, Any]:
    arguments: dict[str, Any] = {"x-queue-type": "quorum"} if queue_type == "quorum" else {}
    if single_active_consumer:
        arguments["x-single-active-consumer"] = True
    return arguments


class ConfirmingPublisher:
    """A confirm-mode channel that publishes many messages and waits once for all confirms.

    Every message is published ``mandatory``: one no queue takes is *returned*
    by the broker, and :meth:`wait` reports it as a failure, as it does a
    nack, **by delivery tag**, so that the caller publishes again only what
    failed (never a copy of what an output queue already holds). ``wait``
    raises ``TimeoutError`` when confirms do not come in time (the connection
    is then to be dropped: nothing may be acknowledged).
    """

    #: Reason of a returned message (the routing key is appended).
    NO_ROUTE = "no queue is bound to routing key"

    def __init__(self, conn: amqp.Connection) -> None:
        self.conn = conn
        self.channel = conn.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)
        self.channel.events["basic_return"].add(self._on_return)
        self._first_tag = 1  # first tag of the round (since the last wait)
        self._next_tag = 1
        self._confirmed = 0  # every tag <= this is settled
        self._settled: set[int] = set()
        self._nacked: list[tuple[int, bool]] = []
        self._returned: list[tuple[str, str, bytes]] = []
        self._routing_keys: list[str] = []  # of the round, by tag - _first_tag
        self._bodies: list[bytes] = []

    def _settle(self, tag: int, multiple: bool) -> None:
        """Record a confirm. The broker may confirm out of order (messages routed to
        queues that persist at different times): single confirms above the
        contiguous mark wait in ``_settled`` until the gap below them closes."""
        if multiple:
            if tag > self._confirmed:
                self._confirmed = tag
            self._settled = {t for t in self._settled if t > tag}
        else:
            self._settled.add(tag)
        while self._confirmed + 1 in self._settled:
            self._confirmed += 1
            self._settled.discard(self._confirmed)

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._settle(tag, multiple)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._nacked.append((tag, multiple))
        self._settle(tag, multiple)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        body = getattr(message, "body", b"")
        if isinstance(body, str):
            body = body.encode("utf-8")
        self._returned.append((exchange, routing_key, bytes(body or b"")))

    def publish(self, body: bytes, exchange: str, routing_key: str) -> int:
        """Publish persistently and ``mandatory``; returns the delivery tag."""
        message = amqp.Message(body, **MESSAGE_PROPERTIES)
        self.channel.basic_publish(
            message, exchange=exchange, routing_key=routing_key, mandatory=True
        )
        self._routing_keys.append(routing_key)
        self._bodies.append(body)
        tag = self._next_tag
        self._next_tag = tag + 1
        return tag

    def wait(self, timeout: float) -> dict[int, str]:
        """Wait for every confirm of the round; returns the failures, reason by delivery tag
        (empty: all confirmed and routed)."""
        deadline = time.monotonic() + timeout
        while self._confirmed < self._next_tag - 1:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"publisher confirms did not arrive in time ({self._next_tag - 1} "
                    f"published, {self._confirmed} confirmed)"
                )
            try:
                self.conn.drain_events(timeout=min(left, 1.0))
            except TimeoutError:
                self.conn.heartbeat_tick()
        failed: dict[int, str] = {}
        if self._nacked or self._returned:
            failed = self._failures()
        self._first_tag = self._next_tag
        self._routing_keys = []
        self._bodies = []
        return failed

    def _failures(self) -> dict[int, str]:
        first, last = self._first_tag, self._next_tag - 1
        failed: dict[int, str] = {}
        for tag, multiple in self._nacked:
            for t in range(first if multiple else tag, tag + 1):
                if first <= t <= last:
                    failed[t] = "nacked by the broker"
        for exchange, routing_key, body in self._returned:
            reason = f"{self.NO_ROUTE} {routing_key!r} on {exchange!r}"
            for index, key in enumerate(self._routing_keys):
                if key == routing_key and self._bodies[index] == body:
                    failed[first + index] = reason
        self._nacked, self._returned = [], []
        return failed


def declare_exchange(
    channel: amqp.Channel, conn: amqp.Connection, name: str, durable: bool
) -> tuple[amqp.Channel, bool]:
    """Declare topic exchange ``name``; returns a usable channel and whether it is durable.

    A durable declaration of an existing transient exchange fails with
    PRECONDITION_FAILED (and closes the channel): that is how its durability
    is learnt, the broker's answer to a passive declaration does not say.
    """
    try:
        channel.exchange_declare(name, "topic", durable=durable, auto_delete=False)
        return channel, durable
    except amqp_exc.PreconditionFailed:
        channel = conn.channel()
        channel.exchange_declare(name, "topic", durable=not durable, auto_delete=False)
        return channel, not durable


def declare_queue(
    channel: amqp.Channel,
    conn: amqp.Connection,
    name: str,
    queue_type: str,
    single_active_consumer: bool = False,
) -> tuple[amqp.Channel, str]:
    """Declare the durable (or quorum) queue ``name``.

    Returns the channel and ``"ok"``, or ``"not-durable"`` when the queue
    already exists as a transient one (then the channel is a new one, the
    queue left as it is), or ``"other-type"`` when it exists with other
    arguments (e.g. classic instead of quorum, or without single active consumer).
    """
    arguments = queue_arguments(queue_type, single_active_consumer)
    try:
        channel.queue_declare(name, durable=True, auto_delete=False, arguments=arguments)
        return channel, "ok"
    except amqp_exc.PreconditionFailed as exc:
        channel = conn.channel()
        if "durable" in str(exc):
            return channel, "not-durable"
        return channel, "other-type"


def bind_all(channel: amqp.Channel, queue: str, exchange: str, routing_keys: Iterable[str]) -> None:
    for key in routing_keys:
        channel.queue_bind(queue, exchange, key)


def retrying(
    attempt: Callable[[], Any],
    *,
    stop: Callable[[], bool],
    on_error: Callable[[BaseException, float], None],
    interval_max: float,
    sleep: Callable[[float], Any] = time.sleep,
) -> Any:
    """Call ``attempt`` until it succeeds (connection errors only), pausing 1, 2, 4... s."""
    pause = 1.0
    while True:
        try:
            return attempt()
        except CONNECTION_ERRORS as exc:
            if stop():
                raise
            on_error(exc, pause)
            sleep(pause)
            pause = min(pause * 2, interval_max)
