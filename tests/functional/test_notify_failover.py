"""Two ``notify-filter`` instances on one pool, the active one killed mid-stream (issue 24,
point 6), against the machine's real RabbitMQ.

With ``single_active_consumer = true`` the pool queue carries RabbitMQ's
``x-single-active-consumer`` argument: the first instance consumes, the
second stands by. SIGKILL of the first mid-stream: the broker requeues what
it had not acknowledged and hands the queue to the standby at once. At the
output: nothing lost, every message's first copy in publish order (so each
image's events in order); copies of the messages in flight at the kill are
allowed and counted (at least once).
"""

from __future__ import annotations

import signal
from pathlib import Path

import test_notify_service as svc
from test_notify_service import SECRET, Bus, Subprocess

from propguard.notifications import samples

bus = svc.bus
rules_file = svc.rules_file
children = svc.children

COUNT = 4000
IMAGES = 10


def _notes(count: int) -> list[dict]:
    """``count`` updates of ``IMAGES`` images, interleaved; ``seq`` numbers each image's events."""
    return [
        samples.notification(
            "image.update",
            samples.image_payload(
                {"x_secret": SECRET, "hw_disk_bus": "virtio", "seq": str(i // IMAGES)},
                image_id=f"image-{i % IMAGES}",
            ),
        )
        for i in range(count)
    ]


def _start(bus: Bus, children: list, tmp_path: Path, rules_file: Path, name: str) -> Subprocess:
    config = bus.config_file(
        tmp_path / f"{name}.conf", rules_file, f"rabbit://guest:guest@{svc.BROKER}/"
    )
    with config.open("a") as handle:
        handle.write("single_active_consumer = true\n")
    child = Subprocess(config)
    children.append(child)
    return child


def test_standby_takes_over_in_order(bus: Bus, children, tmp_path, rules_file) -> None:
    first = _start(bus, children, tmp_path, rules_file, "first")
    bus.wait_for(lambda: bus.consumers(bus.pool) == 1, 30, "the first instance")
    _start(bus, children, tmp_path, rules_file, "second")
    bus.wait_for(lambda: bus.consumers(bus.pool) == 2, 30, "the standby")
    notes = _notes(COUNT)
    out = f"{bus.strip}.info"
    bus.publish_notes(notes[: COUNT // 2])
    bus.wait_for(lambda: bus.depth(out) >= COUNT // 5, what="a fifth of the stream")
    assert first.kill(signal.SIGKILL) == -signal.SIGKILL
    at_kill = bus.depth(out)
    assert at_kill < COUNT // 2, "killed after its part of the stream: nothing shown"
    bus.publish_notes(notes[COUNT // 2 :])  # Glance goes on publishing
    bus.wait_for(
        lambda: bus.depth(bus.pool) == 0 and bus.depth(out) >= COUNT, what="the standby's share"
    )
    outputs = bus.read(out)
    duplicates = svc._check_all_arrived(bus, notes, outputs)
    for image in range(IMAGES):
        seqs = [
            int(o["payload"]["properties"]["seq"])
            for o in outputs
            if o["payload"]["id"] == f"image-{image}"
        ]
        firsts = list(dict.fromkeys(seqs))
        assert firsts == sorted(firsts) == list(range(COUNT // IMAGES))
    assert bus.consumers(bus.pool) == 1
    print(f"active killed at {at_kill}/{COUNT} outputs; {duplicates} copies after the takeover")


run_service = svc.run_service


def test_refuses_a_pool_queue_without_single_active_consumer(bus: Bus, run_service) -> None:
    bus.prepare_pool()  # an existing pool queue, declared without the argument
    running = run_service(single_active_consumer=True)
    running.thread.join(10)
    assert running.status == 1
