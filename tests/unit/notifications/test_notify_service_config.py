"""The service's configuration, checks and confirm bookkeeping (no broker; see
``tests/functional/test_notify_service.py`` for the real RabbitMQ)."""

from __future__ import annotations

import argparse

import pytest
from oslo_config import cfg

from propguard.notifications import amqp as pg_amqp
from propguard.notifications import cli
from propguard.notifications import opts as notify_opts
from propguard.notifications.core import Mode
from propguard.notifications.service import NotifyFilterService, ServiceSettings, StartupError


def test_broker_url_parsing() -> None:
    config = pg_amqp.BrokerConfig.from_url(
        "rabbit://u1:p%40ss@h1:5673,u2:pw@h2/my%2Fvhost", heartbeat=10
    )
    assert [(h.host, h.port, h.userid, h.password) for h in config.hosts] == [
        ("h1", 5673, "u1", "p@ss"),
        ("h2", 5672, "u2", "pw"),
    ]
    assert {h.virtual_host for h in config.hosts} == {"my/vhost"}
    assert config.heartbeat == 10
    assert "p@ss" not in config.describe() and "pw" not in repr(config)
    assert pg_amqp.BrokerConfig.from_url("rabbit://h").hosts[0].virtual_host == "/"
    ipv6 = pg_amqp.BrokerConfig.from_url("rabbit://guest:guest@[::1]:5674/")
    assert (ipv6.hosts[0].host, ipv6.hosts[0].port) == ("::1", 5674)
    with pytest.raises(ValueError, match="rabbit:// only"):
        pg_amqp.BrokerConfig.from_url("kafka://h:9092")


def test_ssl_options() -> None:
    assert pg_amqp.ssl_options(False) is False
    opts = pg_amqp.ssl_options(True, "/ca.pem", "/c.pem", "/k.pem")
    assert opts["ca_certs"] == "/ca.pem" and opts["certfile"] == "/c.pem"


class _FakeChannel:
    def __init__(self) -> None:
        self.events: dict = {"basic_ack": set(), "basic_nack": set(), "basic_return": set()}

    def confirm_select(self) -> None:
        pass

    def basic_publish(self, *args, **kwargs) -> None:
        pass


class _FakeConn:
    def channel(self) -> _FakeChannel:
        return _FakeChannel()


@pytest.mark.parametrize(
    "acks",
    [
        [(3, True)],
        [(1, False), (2, False), (3, False)],
        [(3, False), (2, False), (1, False)],
        [(3, False), (2, True)],  # a single confirm above a later multiple one
        [(2, True), (3, False)],
        [(1, False), (3, True)],
    ],
)
def test_confirms_in_any_order(acks) -> None:
    publisher = pg_amqp.ConfirmingPublisher(_FakeConn())  # type: ignore[arg-type]
    for _ in range(3):
        publisher.publish(b"{}", "x", "k")
    for tag, multiple in acks:
        assert publisher._confirmed < 3
        publisher._on_ack(tag, multiple)
    assert publisher._confirmed == 3 and not publisher._settled
    assert publisher.wait(0.1) == {}


def test_nack_and_return_are_failures_by_tag() -> None:
    publisher = pg_amqp.ConfirmingPublisher(_FakeConn())  # type: ignore[arg-type]
    assert publisher.publish(b"{}", "x", "k1") == 1
    assert publisher.publish(b"{}", "x", "k2") == 2
    publisher._on_return(Exception("NO_ROUTE"), "x", "k1", _Returned("{}"))
    publisher._on_ack(1, False)
    publisher._on_nack(2, False)
    failures = publisher.wait(0.1)
    assert failures == {
        1: "no queue is bound to routing key 'k1' on 'x'",
        2: "nacked by the broker",
    }
    assert publisher.wait(0.1) == {}


class _Returned:
    def __init__(self, body) -> None:
        self.body = body


def test_only_the_returned_output_fails() -> None:
    """Three outputs to one key, one of them returned: only its tag is reported, so
    only it is published again (the others are in their queue already)."""
    publisher = pg_amqp.ConfirmingPublisher(_FakeConn())  # type: ignore[arg-type]
    for body in (b"a", b"b", b"c"):
        publisher.publish(body, "x", "k")
    publisher._on_ack(3, True)
    assert publisher.wait(0.1) == {}
    for body in (b"a", b"b", b"c"):
        publisher.publish(body, "x", "k")
    publisher._on_return(Exception("NO_ROUTE"), "x", "k", _Returned(b"b"))
    publisher._on_nack(4, False)  # a single nack of the round: tag 4 only
    publisher._on_ack(6, True)
    assert set(publisher.wait(0.1)) == {4, 5}
    publisher.publish(b"d", "x", "k")
    publisher._on_nack(7, True)  # multiple: the round only, not earlier rounds
    assert publisher.wait(0.1) == {7: "nacked by the broker"}


def _conf(text: str, tmp_path) -> cfg.ConfigOpts:
    path = tmp_path / "svc.conf"
    path.write_text(text)
    args = argparse.Namespace(config_file=[str(path)], config_dir=[])
    return cli.load_conf(args, service=True)


def test_settings_from_conf(tmp_path) -> None:
    conf = _conf(
        "[oslo_messaging_notifications]\ntransport_url = rabbit://a:b@h1:5672/v\n"
        "[propguard_notify_filter]\ntopics = n1,n2\npool = p\nqueue_type = quorum\n"
        "max_attempts = 5\nsingle_active_consumer = true\n",
        tmp_path,
    )
    settings = ServiceSettings.from_conf(conf)
    assert settings.topics == ("n1", "n2") and settings.pool == "p"
    assert settings.queue_type == "quorum" and settings.max_attempts == 5
    assert settings.single_active_consumer
    assert pg_amqp.queue_arguments("quorum", True) == {
        "x-queue-type": "quorum",
        "x-single-active-consumer": True,
    }
    assert settings.broker.hosts[0].virtual_host == "v"
    own = _conf("[propguard_notify_filter]\ntransport_url = rabbit://x:y@h2/\n", tmp_path)
    assert ServiceSettings.from_conf(own).broker.hosts[0].host == "h2"
    # oslo.messaging's own default, rabbit://: localhost, guest/guest
    default = ServiceSettings.from_conf(_conf("", tmp_path)).broker.hosts
    assert [(h.host, h.port, h.userid) for h in default] == [("localhost", 5672, "guest")]


def _outputs(**values) -> notify_opts.OutputConfig:
    base = {"modes": ["strip"], "strip_topics": ["out"], "reader_classes": {"m": "member"}}
    return notify_opts.OutputConfig.from_values({**base, **values})


def _service(outputs: notify_opts.OutputConfig, **settings) -> NotifyFilterService:
    s = ServiceSettings(broker=pg_amqp.BrokerConfig.from_url("rabbit://h/"), **settings)
    nf = outputs.build(lambda: None)  # the engine is never asked for here
    return NotifyFilterService(s, nf, outputs)


def test_refuses_to_filter_its_own_output() -> None:
    with pytest.raises(StartupError, match="out are also consumed"):
        _service(_outputs(), topics=("notifications", "out"))
    with pytest.raises(StartupError, match="notifications_view_m"):
        _service(
            _outputs(modes=["views"], views_topic="notifications_view_{view}"),
            topics=("notifications_view_m",),
        )
    with pytest.raises(StartupError, match="propguard_dead_letter"):
        _service(_outputs(), topics=("propguard_dead_letter",))


def test_strip_needs_a_topic() -> None:
    with pytest.raises(StartupError, match="strip_topics is empty"):
        _service(_outputs(strip_topics=[]))
    _service(_outputs(strip_topics=[], modes=["annotate"]))  # no strip: no topic needed


def test_output_config() -> None:
    config = _outputs(
        modes=["views", "annotate", "strip"], views_topic="v_{view}", annotate_topic="ann"
    )
    assert config.topics_for(Mode.STRIP, None, ("s1", "s2")) == ["s1", "s2"]
    assert config.topics_for(Mode.VIEWS, "m", ()) == ["v_m"]
    assert config.topics_for(Mode.ANNOTATE, None, ()) == ["ann"]
    with pytest.raises(ValueError, match="reader_classes"):
        _outputs(reader_classes={"bad name": "member"})
    with pytest.raises(ValueError, match="'views' needs reader_classes"):
        _outputs(modes=["views"], reader_classes={})
    with pytest.raises(ValueError, match="annotate_topic is empty"):
        _outputs(modes=["annotate"], annotate_topic="")


def test_list_opts_names_both_groups() -> None:
    groups = dict(notify_opts.list_opts())
    assert set(groups) == {"propguard_notifications", "propguard_notify_filter"}
    names = {opt.dest for opts in groups.values() for opt in opts}
    for name in ("modes", "audience_roles", "reader_classes", "strip_topics", "transport_url"):
        assert name in names
    secret = [o for o in groups["propguard_notify_filter"] if o.dest == "transport_url"]
    assert secret[0].secret


def test_partition_settings(tmp_path) -> None:
    conf = _conf(
        "[propguard_notify_filter]\ntransport_url = rabbit://h/\npool = p\npartitions = 4\n"
        "partition = 2\n",
        tmp_path,
    )
    settings = ServiceSettings.from_conf(conf)
    assert settings.input_queue == "p.partition.2" and not settings.router
    router = ServiceSettings(broker=settings.broker, pool="p", partitions=4)
    assert router.router and router.input_queue == "p"
    assert not ServiceSettings(broker=settings.broker).router
    with pytest.raises(StartupError, match="partition = 4 needs partitions > 4"):
        _service(_outputs(), partitions=4, partition=4)


def test_extra_event_types_are_allowed_with_their_shape_and_the_view() -> None:
    from propguard.notifications import samples
    from propguard.notifications.opts import OutputConfig
    from propguard.notifications.shapes import Shape
    from propguard.rules import parse_rules_text
    from propguard.rules.engine import compile_rules

    config = OutputConfig.from_values({"extra_event_types": {"image.future": "image"}})
    assert config.extra_events == (("image.future", Shape.IMAGE),)
    engine = compile_rules(
        parse_rules_text(
            "r", "[^x_]\ncreate = @\nread = admin\nupdate = @\ndelete = @\n"
            "[.*]\ncreate = @\nread = @\nupdate = @\ndelete = @\n", "roles"
        )
    )
    nf = config.build(engine)
    note = samples.notification("image.future", samples.image_payload({"x_secret": "s", "a": "1"}))
    (out,) = nf.outputs(note)
    assert out.notification["payload"]["properties"] == {"a": "1"}
    with pytest.raises(ValueError, match="unknown shape"):
        OutputConfig.from_values({"extra_event_types": {"image.future": "picture"}})
