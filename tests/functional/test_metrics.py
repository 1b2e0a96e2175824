"""``/metrics`` of ``propguard serve`` with two gunicorn workers, scraped over HTTP.

The test does a known number of requests of each kind, over fresh
connections until both workers have served some (their counter files in the
multiprocess directory), and the scrape counts exactly that: decisions per
route template and outcome, hidden properties, upstream answers. Also: the
figures carry no caller-chosen name, the endpoint answers without a token,
and the exporter serves the same directory on its own listener.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from glance_api import IMAGE
from prometheus_client.parser import text_string_to_metric_families
from proxy_harness import ServerThread
from proxy_processes import ServeProcess, free_port, trusted_identity_ini
from test_proxy_http import RULES, SECRET, identity, request

from propguard.inprocess import InProcessGlance


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, headers, data = request(url, "GET", "/metrics")
    assert status == 200, data
    assert headers["Content-Type"].startswith("text/plain"), headers
    samples = {}
    for family in text_string_to_metric_families(data.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("metrics")
    rules = work / "rules.conf"
    rules.write_text(RULES)
    glance = InProcessGlance(work / "glance")
    glance.start()
    server = proxy = None
    try:  # a proxy that does not start must not leave this process's Glance running
        server = ServerThread(glance.app)
        ini = trusted_identity_ini(work / "serve.ini", rules)
        directory = work / "prom"  # not there yet: propguard serve makes it
        proxy = ServeProcess(
            server.url,
            ini,
            workers=2,
            log=work / "serve.log",
            env={"PROMETHEUS_MULTIPROC_DIR": str(directory)},
        )
        yield {"glance": glance, "glance_url": server.url, "proxy": proxy, "dir": directory}
    finally:
        if proxy is not None:
            proxy.stop()
        if server is not None:
            server.stop()
        glance.stop()


@pytest.fixture
def net(stack, allow_loopback_port) -> dict[str, Any]:
    allow_loopback_port(stack["proxy"].port)
    allow_loopback_port(int(stack["glance_url"].rsplit(":", 1)[1]))
    return stack


def served_by(directory: Path) -> set[str]:
    """The pids with a counter file: the workers that counted something."""
    return {
        name.rsplit("_", 1)[1][:-3] for name in os.listdir(directory) if name.startswith("counter_")
    }


def test_two_workers_count_what_the_test_did(net) -> None:
    glance, url, directory = net["glance"], net["proxy"].url, net["dir"]
    before = scrape(url)
    admin = identity(glance, ["admin", "member", "reader"], user="root")
    member = identity(glance, ["member", "reader"])
    body = json.dumps({**IMAGE, "x_secret": SECRET, "x_pub": "visible"}).encode()
    status, _, data = request(
        url, "POST", "/v2/images", {**admin, "Content-Type": "application/json"}, body
    )
    assert status == 201, data
    image_id = json.loads(data)["id"]
    shows = 0
    workers = set(map(str, net["proxy"].worker_pids()))
    # Fresh connections until both workers have counted (bounded).
    while shows < 200 and not workers <= served_by(directory):
        status, _, data = request(url, "GET", f"/v2/images/{image_id}", member)
        assert status == 200 and SECRET.encode() not in data
        shows += 1
    assert workers <= served_by(directory), "one worker served everything"
    shows += 1
    status, _, data = request(url, "GET", f"/v2/images/{image_id}", member)
    assert status == 200
    patch = json.dumps([{"op": "replace", "path": "/x_secret", "value": "mine"}]).encode()
    headers = {**member, "Content-Type": "application/openstack-images-v2.1-json-patch"}
    refusals = 3
    for _ in range(refusals):
        status, _, data = request(url, "PATCH", f"/v2/images/{image_id}", headers, patch)
        assert status == 409, data

    after = scrape(url)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("propguard_decisions_total", route="images", method="POST", outcome="passed") == 1
    assert (
        delta("propguard_decisions_total", route="image", method="GET", outcome="hidden") == shows
    )
    assert (
        delta("propguard_decisions_total", route="image", method="PATCH", outcome="refused")
        == refusals
    )
    assert delta("propguard_hidden_properties_total", route="image") == shows  # x_secret each time
    # Upstream: every forwarded request answered (the PATCHes' stored-image probes included).
    answered = delta("propguard_upstream_response_seconds_count", method="GET", status="2xx")
    assert answered == shows + refusals, answered
    assert delta("propguard_upstream_errors_total", kind="unreachable") == 0
    text = request(url, "GET", "/metrics")[2].decode()
    # Bounded labels: no property name, image id, user or value in the exposition.
    for leak in ("x_secret", "x_pub", SECRET, image_id, "demo-user-id", "root"):
        assert leak not in text, leak


def test_metrics_need_no_token_and_other_paths_still_do(net) -> None:
    url = net["proxy"].url
    assert request(url, "GET", "/metrics")[0] == 200
    assert request(url, "GET", "/v2/images")[0] in (401, 403)


def test_the_exporter_serves_the_directory_on_its_own_listener(net, allow_loopback_port) -> None:
    port = free_port()
    allow_loopback_port(port)
    exporter = subprocess.Popen(
        [sys.executable, "-m", "propguard.metrics", "--multiproc-dir", str(net["dir"]),
         "--bind", f"127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert exporter.stdout is not None
        exporter.stdout.readline()  # listening
        deadline = time.monotonic() + 20
        from_exporter = scrape(f"http://127.0.0.1:{port}")
        from_serve = scrape(net["proxy"].url)
        assert time.monotonic() < deadline
        name = "propguard_decisions_total"
        labels = {"route": "image", "method": "GET", "outcome": "hidden"}
        assert value(from_exporter, name, **labels) == value(from_serve, name, **labels) > 0
    finally:
        exporter.terminate()
        exporter.wait(10)


UWSGI_APP = '''
import json
from propguard.middleware import filter_factory

IMAGE = {"id": "b2d2a0a4-0000-4000-8000-000000000001", "name": "i", "x_secret": "v", "x_pub": "p"}

def glance_like(environ, start_response):
    """Answers every GET of an image with the same document, as Glance would."""
    body = json.dumps(IMAGE).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]

application = filter_factory(
    {}, rules_file=RULES_FILE, trust_identity_headers="true", reload_on_sighup="false",
    name_collation="binary",
)(glance_like)
'''


def test_a_uwsgi_glance_with_two_processes_is_counted_through_the_exporter(
    tmp_path, allow_loopback_port, monkeypatch
) -> None:
    """propguard inside a uWSGI app with two processes, PROMETHEUS_MULTIPROC_DIR in its
    environment, scraped through ``python -m propguard.metrics`` on its own port."""
    from test_proxy_uwsgi import uwsgi_binary

    rules = tmp_path / "rules.conf"
    rules.write_text(RULES)
    (tmp_path / "uwsgi_app.py").write_text(f"RULES_FILE = {str(rules)!r}\n" + UWSGI_APP)
    directory = tmp_path / "prom"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    port, exporter_port = free_port(), free_port()
    allow_loopback_port(port)
    allow_loopback_port(exporter_port)
    glance = subprocess.Popen(
        [uwsgi_binary(), "--http-socket", f"127.0.0.1:{port}", "--wsgi-file",
         str(tmp_path / "uwsgi_app.py"), "--master", "--processes", "2", "--need-app",
         "--die-on-term", "--lazy-apps"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "uwsgi.log", "wb"), cwd=tmp_path,  # noqa: SIM115
    )  # fmt: skip
    exporter = subprocess.Popen(
        [sys.executable, "-m", "propguard.metrics", "--multiproc-dir", str(directory),
         "--bind", f"127.0.0.1:{exporter_port}"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    member = {
        "X-Identity-Status": "Confirmed",
        "X-Roles": "member,reader",
        "X-User-Id": "u1",
        "X-Project-Id": "p1",
    }
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status = request(
                    url, "GET", "/v2/images/b2d2a0a4-0000-4000-8000-000000000001", member
                )[0]
                break
            except OSError:
                assert glance.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "uwsgi.log"
                ).read_text()
                time.sleep(0.1)
        assert status == 200
        shows = 1
        while shows < 400 and len(served_by(directory)) < 2:
            status, _, data = request(
                url, "GET", "/v2/images/b2d2a0a4-0000-4000-8000-000000000001", member
            )
            assert status == 200 and b"x_secret" not in data
            shows += 1
        assert len(served_by(directory)) >= 2, "one uWSGI process served everything"
        assert exporter.stdout is not None
        exporter.stdout.readline()
        samples = scrape(f"http://127.0.0.1:{exporter_port}")
        labels = {"route": "image", "method": "GET", "outcome": "hidden"}
        assert value(samples, "propguard_decisions_total", **labels) == shows
        assert value(samples, "propguard_hidden_properties_total", route="image") == shows
    finally:
        exporter.terminate()
        glance.terminate()
        exporter.wait(10)
        glance.wait(15)
