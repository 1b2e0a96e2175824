"""Partitioning by image id (issue 24, point 6), against the machine's real RabbitMQ.

One router (``partitions = 2``, no ``partition``) forwards each message of the
pool queue unchanged to ``<pool>.partition.<k>``, ``k`` from the image id;
two filter instances (``partition = 0`` and ``1``) filter one partition each.
At the output: every message once, each image's events in order (the
global order across images is not kept: that is the point of partitions).
A message that cannot be decoded is forwarded to partition 0, whose filter
dead-letters it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import test_notify_service as svc
from test_notify_failover import IMAGES, _notes
from test_notify_service import SECRET, Bus

from propguard.notifications import wire
from propguard.notifications.service import partition_key, partition_of

bus = svc.bus
rules_file = svc.rules_file
run_service = svc.run_service

PARTITIONS = 2
COUNT = 2000


@pytest.fixture
def partition_queues(bus: Bus) -> Iterator[list[str]]:
    names = [f"{bus.pool}.partition.{k}" for k in range(PARTITIONS)]
    yield names
    channel = bus.conn.channel()
    for name in names:
        channel.queue_delete(name)


def test_each_image_in_order_over_two_partitions(
    bus: Bus, partition_queues: list[str], run_service
) -> None:
    router = run_service(partitions=PARTITIONS, single_active_consumer=True)
    filters = [
        run_service(partitions=PARTITIONS, partition=k, single_active_consumer=True)
        for k in range(PARTITIONS)
    ]
    notes = _notes(COUNT)
    bodies = [("info", wire.encode(n)) for n in notes]
    bodies.insert(COUNT // 2, ("info", b'{"not": "closed'))
    bus.publish(bodies)
    out = f"{bus.strip}.info"
    bus.wait_for(lambda: bus.depth(out) >= COUNT, what="every output")
    bus.wait_for(lambda: bus.depth(f"{bus.dead}.error") == 1, what="the dead letter")
    bus.wait_for(
        lambda: all(bus.depth(q) == 0 for q in [bus.pool, *partition_queues]),
        what="empty queues",
    )
    outputs = bus.read(out)
    assert sorted(o["message_id"] for o in outputs) == sorted(n["message_id"] for n in notes)
    assert SECRET not in json.dumps(outputs)
    for image in range(IMAGES):
        seqs = [
            int(o["payload"]["properties"]["seq"])
            for o in outputs
            if o["payload"]["id"] == f"image-{image}"
        ]
        assert seqs == list(range(COUNT // IMAGES))
    assert router.service.counts["consumed"] == COUNT + 1
    per_partition = [f.service.counts["consumed"] for f in filters]
    expected = [0] * PARTITIONS
    for image in range(IMAGES):
        expected[partition_of(f"image-{image}", PARTITIONS)] += COUNT // IMAGES
    expected[0] += 1  # the undecodable message
    assert per_partition == expected and all(per_partition)
    (letter,) = bus.read(f"{bus.dead}.error")
    assert letter["payload"]["queue"] == partition_queues[0]


def test_partition_key() -> None:
    assert partition_key({"payload": {"id": "i1", "name": "x"}}) == "i1"
    assert partition_key({"payload": {"image_id": "i2", "member_id": "m"}}) == "i2"
    assert partition_key({"payload": "an error"}) == ""
    assert partition_of("i1", 4) == partition_of("i1", 4) in range(4)
