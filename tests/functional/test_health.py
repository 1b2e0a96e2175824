"""``/readiness`` turns red when the upstream, the JWKS keys or the relations store fail.

The upstream case runs ``propguard serve`` (two gunicorn workers) over HTTP
in front of a real HTTP upstream that is then stopped; ``/healthcheck``
(liveness) stays 200 throughout. The JWKS and relations cases build the
shipped ``[app:readiness]`` in this process, beside a real
:class:`~propguard.jwt.jwks.RemoteJWKS` (its fetch and clock controlled by
the test) and a real relations :class:`~propguard.relations.recorder.Recorder`
and outbox whose database is down.
"""

from __future__ import annotations

import configparser
import gc
import json

import pytest
import webob
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from proxy_harness import ServerThread
from proxy_processes import ServeProcess, write_ini
from test_proxy_http import request

from propguard.health import readiness_app_factory
from propguard.jwt.jwks import RemoteJWKS
from propguard.proxy.server import shipped_ini
from propguard.relations.outbox import Outbox
from propguard.relations.recorder import Recorder
from propguard.relations.store import StoreUnavailable


def shipped_readiness(**override: str):
    """The ``[app:readiness]`` of the shipped serve.ini, with ``override``."""
    parser = configparser.RawConfigParser()
    parser.read(shipped_ini())
    conf = dict(parser.items("app:readiness"))
    conf.pop("paste.app_factory")
    conf["disable_by_file_path"] = "/nonexistent/propguard-hc-disable"
    conf.update(override)
    return readiness_app_factory({}, **conf)


def ready(app) -> tuple[int, str]:
    response = webob.Request.blank("/readiness", accept="application/json").get_response(app)
    return response.status_code, response.text


def ok_app(environ, start_response):
    start_response("300 Multiple Choices", [("Content-Type", "application/json")])
    return [b'{"versions": []}']


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    work = tmp_path_factory.mktemp("health")
    upstream = ServerThread(ok_app)
    ini = write_ini(work / "serve.ini", pipeline="request_id proxy")
    proxy = ServeProcess(upstream.url, ini, workers=2, log=work / "serve.log")
    try:
        yield upstream, proxy
    finally:
        proxy.stop()
        upstream.stop()


def test_readiness_follows_the_upstream_liveness_does_not(served, allow_loopback_port) -> None:
    upstream, proxy = served
    allow_loopback_port(proxy.port)
    allow_loopback_port(upstream.port)
    status, _, body = request(proxy.url, "GET", "/readiness")
    assert status == 200, body
    upstream.stop()
    for _ in range(4):  # whichever worker answers
        status, _, body = request(proxy.url, "GET", "/readiness")
        assert status == 503, body
        assert request(proxy.url, "GET", "/healthcheck")[0] == 200


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def jwks_document() -> dict:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update(kid="k1", alg="RS256", use="sig")
    return {"keys": [jwk]}


def test_readiness_fails_when_the_jwks_keys_are_past_max_stale(jwks_document) -> None:
    app = shipped_readiness(backends="propguard_jwks")
    clock = Clock()
    answers = [(jwks_document, None)]

    def fetch():
        if not answers:
            raise OSError("connection refused")
        return answers.pop()

    remote = RemoteJWKS(
        "https://idp.example/jwks", ["RS256"], max_stale=600, fetch=fetch, clock=clock
    )
    try:
        assert ready(app)[0] == 503  # never fetched: every token would be refused
        assert remote.refresh()
        assert ready(app)[0] == 200
        clock.now += 599
        assert not remote.refresh()  # the JWKS endpoint fails; keys kept
        assert ready(app)[0] == 200
        clock.now += 2  # past max_stale
        status, body = ready(app)
        assert status == 503 and "JWKS STALE" in body, body
    finally:
        del remote
        gc.collect()


class DownStore:
    """A relations database that is away (the recorder queues in the outbox)."""

    def apply(self, events):
        raise StoreUnavailable("database down")

    def ping(self):
        raise StoreUnavailable("database down")


def test_readiness_fails_when_the_relations_outbox_is_over_its_threshold(tmp_path) -> None:
    app = shipped_readiness(backends="propguard_relations", outbox_max_bytes="2000")
    recorder = Recorder(DownStore(), Outbox(str(tmp_path / "outbox")), synchronous=True)
    try:
        assert ready(app)[0] == 200
        recorder.record([{"event": "deleted", "image_id": "i0", "at": "2026-01-01T00:00:00"}])
        # Older than outbox_max_lag (300 s): the store has been away too long.
        status, body = ready(app)
        assert status == 503 and "RELATIONS OUTBOX BACKLOG" in body, body
    finally:
        recorder.close()
        del recorder
        gc.collect()


def test_readiness_fails_when_the_relations_outbox_is_too_large(tmp_path) -> None:
    app = shipped_readiness(backends="propguard_relations", outbox_max_bytes="500")
    recorder = Recorder(DownStore(), Outbox(str(tmp_path / "outbox")), synchronous=True)
    try:
        from propguard.relations.events import now

        for n in range(10):
            recorder.record([{"event": "deleted", "image_id": f"i{n}", "at": now()}])
            if n == 0:
                assert ready(app)[0] == 200  # one fresh event: the store may come back
        status, body = ready(app)
        assert status == 503 and "RELATIONS OUTBOX BACKLOG" in body, body
    finally:
        recorder.close()
        del recorder
        gc.collect()
