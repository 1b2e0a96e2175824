"""The notify-filter service's own /metrics listener (``metrics_bind``), on the real RabbitMQ."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import test_notify_service as svc
from test_notify_service import SECRET, Bus, Subprocess

from propguard.notifications import samples, wire

bus = svc.bus
rules_file = svc.rules_file
children = svc.children


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return answer.read().decode()


def _sample(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_service_counts_on_its_own_listener(
    bus: Bus, children, tmp_path: Path, rules_file, allow_loopback_port
) -> None:
    port = _free_port()
    allow_loopback_port(port)
    config = bus.config_file(tmp_path / "nf.conf", rules_file, f"rabbit://guest:guest@{svc.BROKER}/")
    with config.open("a") as handle:
        handle.write(f"metrics_bind = 127.0.0.1:{port}\n")
    child = Subprocess(config)
    children.append(child)
    good = [
        samples.notification("image.update", samples.image_payload({"x_secret": SECRET}))
        for _ in range(3)
    ]
    refused = samples.notification("Image.Update", samples.image_payload({"x_secret": SECRET}))
    bus.wait_for(lambda: bus.consumers(bus.pool) == 1, 60, "the service to consume")
    bus.publish([("info", wire.encode(n)) for n in [*good, refused]])
    bus.wait_for(lambda: bus.depth(f"{bus.dead}.error") == 1, what="the dead letter")
    bus.wait_for(lambda: bus.depth(f"{bus.strip}.info") == 3, what="the outputs")

    def counted() -> str:
        text = _scrape(port)
        return text if _sample(text, "propguard_notify_messages_total", event="acked") >= 4 else ""

    bus.wait_for(lambda: bool(counted()), 30, "the counts on /metrics")
    text = counted()
    assert _sample(text, "propguard_notify_messages_total", event="consumed") == 4
    assert _sample(text, "propguard_notify_messages_total", event="dead_lettered") == 1
    assert SECRET not in text and "x_secret" not in text
