"""``propguard serve`` against direct access, in the same run.

Run: ``.venv/bin/python benchmarks/bench_proxy.py`` (after ``./scripts/test.sh``);
``--size-mib``, ``--rate-mbit``, ``--requests`` change the defaults; ``--quick``
(256 MiB, 3 rounds, 200 requests) is the run of the docs' table; the full
run moves 4 times as many bytes. ``--small-only``, ``--fresh-tokens N`` and
``--instructions N`` run one part alone; ``--baseline DIR`` adds, to the
small requests and instructions, a proxy running another checkout's
propguard in the same rounds (before/after a change on the same load).

1. Small requests: ``GET /v2/images/{id}`` (20 extra properties) to a real
   Glance 33 served by cheroot in its own process (as in a deployment: not
   in the client's), directly and through ``propguard serve`` (gunicorn
   gthread, 1 worker; pipeline ``canonical request_id propguard proxy``,
   propguard with the production-like rules of the functional tests),
   alternating, keep-alive clients; medians and the added milliseconds.
   Then the proxy's own cost: the same request to an upstream that answers
   Glance's captured document at once (so Glance's CPU does not compete),
   with the proxy worker's CPU per request (user + system, all threads)
   and a bare TCP relay in the same rounds (the floor of any relay).
2. Streaming, 1 GiB up (Content-Length and chunked) and down, against an
   upstream that only counts or generates bytes (gunicorn gthread in its own
   process), so that the proxy's cost is what is measured and not Glance's
   hashing: unthrottled on loopback (target: report; aim 70% of direct), and
   with the upstream limited to ``--rate-mbit`` (default 1000 Mbit/s, a
   1 Gbit/s-class image-store link; target >= 90% of direct). The proxy
   worker's peak RSS growth is printed for each transfer (target < 32 MiB).
   The chunked upload also runs through a second proxy whose worker uses
   gunicorn's own ``ChunkedReader`` (``--reader-ab``), in the same rounds:
   the end-to-end effect of :class:`StreamingChunkedReader`.

3. ``--fresh-tokens N`` (alone): a fresh Keystone token's first request
   directly to Glance, through the proxy (both ``auth_token`` validate),
   through the proxy to a Glance that trusts its identity headers (one
   validation), and through the proxy to a Glance sharing one memcached
   token cache with it (one validation, a cache hit in Glance); real
   Keystone and Glances under uWSGI (see :func:`fresh_tokens`). Needs
   memcached: ``scripts/install-bench-deps.sh`` installs it (apt-get).

Everything shares this machine's cores (client, proxy, upstream), which
penalises the proxy more on loopback than on a real network.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "functional"))
MIB = 1024 * 1024
BLOCK = bytes(range(256)) * 4096

UPSTREAM = r"""
import sys, time
from gunicorn.app.base import BaseApplication

PORT, RATE = int(sys.argv[1]), float(sys.argv[2])  # bytes/s, 0: unlimited
BLOCK = bytes(range(256)) * 4096


class Pace:
    def __init__(self):
        self.start, self.sent = time.monotonic(), 0

    def __call__(self, n):
        self.sent += n
        if RATE:
            ahead = self.sent / RATE - (time.monotonic() - self.start)
            if ahead > 0:
                time.sleep(ahead)


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "PUT":
        stream, pace, total = environ["wsgi.input"], Pace(), 0
        while chunk := stream.read(1 << 20):
            total += len(chunk)
            pace(len(chunk))
        start_response("204 No Content", [("X-Bytes", str(total))])
        return []
    query = dict(p.split("=") for p in environ.get("QUERY_STRING", "size=0").split("&"))
    size = int(query["size"])

    def body():
        pace, left = Pace(), size
        while left:
            chunk = BLOCK[: min(len(BLOCK), left)]
            left -= len(chunk)
            pace(len(chunk))
            yield chunk

    headers = [("Content-Type", "application/octet-stream")]
    if "chunked" not in query:
        headers.append(("Content-Length", str(size)))
    start_response("200 OK", headers)
    return body()


class Upstream(BaseApplication):
    def load_config(self):
        for key, value in {"bind": [f"127.0.0.1:{PORT}"], "worker_class": "gthread",
                           "workers": 1, "threads": 4, "errorlog": "/dev/null"}.items():
            self.cfg.set(key, value)

    def load(self):
        return app


Upstream().run()
"""


GLANCE = r"""
import json, sys, tempfile, time, warnings
from pathlib import Path
sys.path.insert(0, sys.argv[1])
warnings.simplefilter("ignore")
from glance_api import IMAGE
from proxy_harness import ServerThread
from webob import Request
from propguard.inprocess import InProcessGlance

glance = InProcessGlance(Path(tempfile.mkdtemp()) / "glance")
glance.start()
token = glance.user_token(["member", "reader"])
properties = {f"x_prop_{i}": f"value {i}" for i in range(20)}
headers = {"X-Auth-Token": token, "Content-Type": "application/json"}
body = json.dumps({**IMAGE, **properties}).encode()
created = Request.blank("/v2/images", method="POST", body=body, headers=headers)
image_id = json.loads(created.get_response(glance.app).body)["id"]
shown = Request.blank(f"/v2/images/{image_id}", headers=headers).get_response(glance.app)
server = ServerThread(glance.app)
print(json.dumps({"port": server.port, "token": token, "id": image_id,
                  "document": shown.body.decode()}), flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
"""

STATIC = r"""
import socket, sys, threading

document = sys.stdin.buffer.read()
head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
        b"x-openstack-request-id: req-00000000-0000-0000-0000-000000000000\r\n\r\n" % len(document))
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))


def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            data = conn.recv(65536)
            if not data:
                return
            buffer += data
        buffer = buffer.split(b"\r\n\r\n", 1)[1]
        conn.sendall(head + document)


while True:
    threading.Thread(target=serve, args=(listener.accept()[0],), daemon=True).start()
"""

#: The floor with the pipeline: the same request parsed by gunicorn's parser and
#: answered by the same paste pipeline, in one thread, without a server (no
#: event loop, no thread hand-off, no client socket). CPU time per request.
FLOOR = r"""
import json, logging, os, statistics, sys, tempfile, time
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()  # as in the worker
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.message import Request
from gunicorn.http.unreader import IterUnreader
from propguard.proxy import server

ini, upstream, target, headers = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
server.parse_config_files(())
logging.disable(logging.WARNING)
app = server.load_pipeline(server.ServeOptions(upstream=upstream, paste_ini=ini))
cfg = Config()
for key, value in server.gunicorn_settings(server.ServeOptions(upstream=upstream)).items():
    if key in ("limit_request_field_size", "forwarded_allow_ips", "proxy_allow_ips"):
        cfg.set(key, value)
lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
head = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:9293\r\n{lines}\r\n".encode()
peer, local = ("127.0.0.1", 50000), ("127.0.0.1", 9293)


class Sink:
    def sendall(self, data):
        pass


def parse():
    return Request(cfg, IterUnreader([head]), peer, 1)


def whole():
    resp, environ = wsgi.create(parse(), Sink(), peer, local, cfg)
    body = app(environ, resp.start_response)
    for piece in body:
        resp.write(piece)
    getattr(body, "close", lambda: None)()
    resp.close()
    assert resp.status_code == 200, resp.status


def cpu(function, n=200, batches=9):
    for _ in range(50):
        function()
    runs = []
    for _ in range(batches):
        started = time.thread_time()
        for _ in range(n):
            function()
        runs.append((time.thread_time() - started) / n)
    return statistics.median(runs)


print(json.dumps({"parse": cpu(parse), "whole": cpu(whole)}))
"""

#: Put first on a second proxy's PYTHONPATH: its worker keeps gunicorn's ChunkedReader.
OLD_READER = """
import propguard.proxy.worker as worker
worker.StreamingChunkedReader = worker.gbody.ChunkedReader
"""


def blocks(size: int) -> Iterator[bytes]:
    for offset in range(0, size, len(BLOCK)):
        yield BLOCK[: min(len(BLOCK), size - offset)]


def upload(port: int, size: int, chunked: bool, headers: dict[str, str]) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {**headers, "Content-Type": "application/octet-stream"}
    if not chunked:
        headers["Content-Length"] = str(size)
    started = time.perf_counter()
    connection.request("PUT", "/v2/images/x/file", blocks(size), headers, encode_chunked=chunked)
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    assert response.status == 204 and int(response.headers["X-Bytes"]) == size, response.status
    return elapsed


def download(port: int, size: int, headers: dict[str, str], chunked: bool = False) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    query = f"size={size}&chunked=1" if chunked else f"size={size}"
    connection.request("GET", f"/v2/images/x/file?{query}", headers=headers)
    response = connection.getresponse()
    received = 0
    while chunk := response.read(MIB):
        received += len(chunk)
    elapsed = time.perf_counter() - started
    connection.close()
    assert response.status == 200 and received == size, (response.status, received)
    return elapsed


def start_upstream(rate: float) -> tuple[subprocess.Popen, int]:
    from proxy_processes import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(port), str(rate)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return process, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("upstream did not start")


IDENTITY = {
    "X-Identity-Status": "Confirmed",
    "X-Roles": "member,reader",
    "X-User-Id": "demo-user-id",
    "X-Project-Id": "demo-project-id",
}


def proxy_ini(work: Path, rules: Path, base: Path | None = None, name: str = "serve.ini") -> Path:
    from proxy_processes import trusted_identity_ini

    return trusted_identity_ini(work / name, rules, base)


class Baseline:
    """``propguard serve`` from another checkout (``--baseline DIR``), run in the same rounds.

    Its own ``serve.ini`` and code (``PYTHONPATH=DIR``): before and after a
    change on the same load, which a shared machine cannot give in two runs.
    """

    def __init__(self, directory: str, work: Path, rules: Path) -> None:
        root = Path(directory).resolve()
        self.env = {"PYTHONPATH": str(root)}
        self.ini = proxy_ini(
            work, rules, root / "propguard" / "proxy" / "serve.ini", "baseline-serve.ini"
        )


TRANSFERS = (
    ("upload, Content-Length", lambda p, n, h: upload(p, n, False, h)),
    ("upload, chunked", lambda p, n, h: upload(p, n, True, h)),
    ("download, Content-Length", lambda p, n, h: download(p, n, h)),
    ("download, chunked", lambda p, n, h: download(p, n, h, chunked=True)),
)


def streaming(
    ini: Path, size: int, rate: float, label: str, rounds: int, reader_ab: bool = True
) -> list[tuple]:
    """Every transfer ``rounds`` times, direct and proxied alternating; medians.

    Unpaced (``rate`` 0), a bare TCP relay's download runs in the same rounds
    (the floor of any relay that copies bytes through Python). With
    ``reader_ab``, the chunked upload also goes through a proxy whose worker
    keeps gunicorn's ``ChunkedReader`` (same rounds).
    """
    import os

    from proxy_processes import RssSampler, ServeProcess

    upstream, port = start_upstream(rate)
    proxy = ServeProcess(f"http://127.0.0.1:{port}", ini, threads=4)
    old = None
    shim = tempfile.TemporaryDirectory()
    if reader_ab:
        (Path(shim.name) / "sitecustomize.py").write_text(OLD_READER)
        path = os.pathsep.join(filter(None, [shim.name, os.environ.get("PYTHONPATH")]))
        old = ServeProcess(f"http://127.0.0.1:{port}", ini, threads=4, env={"PYTHONPATH": path})
    relay = TcpRelay(port) if not rate else None
    times: dict[str, dict[str, list[float]]] = {}
    growth = 0.0
    try:
        (worker,) = proxy.worker_pids()
        upload(proxy.port, MIB, False, IDENTITY)  # warm-up
        for _ in range(rounds):
            for name, run in TRANSFERS:
                entry = times.setdefault(name, {"direct": [], "proxy": []})
                entry["direct"].append(run(port, size, IDENTITY))
                peak = RssSampler(worker)
                entry["proxy"].append(run(proxy.port, size, IDENTITY))
                growth = max(growth, peak.growth() / MIB)
                if old is not None and name == "upload, chunked":
                    entry = times.setdefault(OLD_NAME, {"direct": [], "proxy": []})
                    entry["direct"].append(times[name]["direct"][-1])
                    entry["proxy"].append(run(old.port, size, IDENTITY))
            if relay is not None:
                entry = times.setdefault("download, bare TCP relay", {"direct": [], "proxy": []})
                entry["direct"].append(download(port, size, {}))
                entry["proxy"].append(download(relay.port, size, {}))
    finally:
        if relay is not None:
            relay.close()
        proxy.stop()
        if old is not None:
            old.stop()
        shim.cleanup()
        upstream.terminate()
        upstream.wait()
    rows = []
    for name, entry in times.items():
        direct = statistics.median(entry["direct"])
        proxied = statistics.median(entry["proxy"])
        rows.append((label, name, direct, proxied, growth, rate))
        per_round = " ".join(
            f"{d / p:.0%}" for d, p in zip(entry["direct"], entry["proxy"], strict=True)
        )
        print(
            f"  {label:<24} {name:<34} direct {size / MIB / direct:6.0f} MiB/s  "
            f"{'relay' if 'relay' in name else 'proxy'} {size / MIB / proxied:6.0f} MiB/s  "
            f"ratio {direct / proxied:5.0%} (rounds: {per_round})",
            flush=True,
        )
    print(f"  {label:<24} proxy worker RSS growth, worst: {growth:.1f} MiB", flush=True)
    return rows


OLD_NAME = "upload, chunked, gunicorn reader"


class TcpRelay:
    """The floor for any relay that copies bytes through Python: a bare TCP relay
    (no HTTP, no filter), one thread per direction, 1 MiB ``recv_into``/``sendall``."""

    def __init__(self, upstream_port: int) -> None:
        import socket

        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def pump(source, sink) -> None:
        buffer = memoryview(bytearray(MIB))
        try:
            while n := source.recv_into(buffer):
                sink.sendall(buffer[:n])
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(2)

    def close(self) -> None:
        self.listener.close()


def small_requests(work: Path, ini: Path, requests: int, baseline: Baseline | None = None) -> None:
    """Median latency direct and through the proxy: real Glance, then the proxy's own cost.

    With ``baseline``, a second proxy from another checkout answers in the same
    rounds ("baseline" rows, its worker's CPU too).
    """
    import psutil
    from proxy_processes import ServeProcess, free_port

    glance = subprocess.Popen(
        [sys.executable, "-c", GLANCE, str(HERE.parent / "tests" / "functional")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    static = relay = proxy = static_proxy = None
    extra: list = []

    def baseline_proxy(upstream: str) -> dict[str, int]:
        if baseline is None:
            return {}
        extra.append(ServeProcess(upstream, baseline.ini, threads=4, env=baseline.env))
        return {"proxy (baseline)": extra[-1].port}

    try:
        info = json.loads(glance.stdout.readline())
        headers = {**IDENTITY, "X-Auth-Token": info["token"]}
        target = f"/v2/images/{info['id']}"
        upstream = f"http://127.0.0.1:{info['port']}"
        proxy = ServeProcess(upstream, ini, threads=4)
        ports = {"direct": info["port"], "proxy": proxy.port, **baseline_proxy(upstream)}
        times = alternate(ports, target, headers, requests)
        report("real Glance (own process)", times, requests)
        port = free_port()
        static = subprocess.Popen([sys.executable, "-c", STATIC, str(port)], stdin=subprocess.PIPE)
        static.stdin.write(info["document"].encode())
        static.stdin.close()
        wait_port(port)
        static_proxy = ServeProcess(f"http://127.0.0.1:{port}", ini, threads=4)
        relay = TcpRelay(port)
        ports = {
            "direct": port,
            "proxy": static_proxy.port,
            **baseline_proxy(f"http://127.0.0.1:{port}"),
            "bare TCP relay": relay.port,
        }
        workers = {"proxy": psutil.Process(static_proxy.worker_pids()[0])}
        if baseline is not None:
            workers["proxy (baseline)"] = psutil.Process(extra[-1].worker_pids()[0])
        before = {kind: worker.cpu_times() for kind, worker in workers.items()}
        times = alternate(ports, target, headers, requests)
        after = {kind: worker.cpu_times() for kind, worker in workers.items()}
        report("static upstream (the proxy's own cost)", times, requests)
        count = requests + WARMUP
        for kind in workers:
            user = (after[kind].user - before[kind].user) / count * 1e3
            system = (after[kind].system - before[kind].system) / count * 1e3
            print(
                f"    {kind} worker CPU per request: user {user:.3f} ms, system {system:.3f} ms,"
                f" total {user + system:.3f} ms",
                flush=True,
            )
        pipeline_floor(ini, port, target, headers)
    finally:
        for process in (proxy, static_proxy, *extra):
            if process is not None:
                process.stop()
        if relay is not None:
            relay.close()
        for child in (static, glance):
            if child is not None:
                child.kill()
                child.wait()


WARMUP = 20


def pipeline_floor(ini: Path, port: int, target: str, headers: dict[str, str]) -> None:
    """Print the CPU per request of gunicorn's parser and the paste pipeline without a server."""
    output = subprocess.run(
        [sys.executable, "-c", FLOOR, str(ini), f"http://127.0.0.1:{port}", target,
         json.dumps(headers)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    floor = json.loads(output.strip().splitlines()[-1])
    print(
        f"    without a server (one thread, CPU per request): gunicorn's request parser "
        f"{floor['parse'] * 1e3:.3f} ms; parser, environ, pipeline and response writes "
        f"{floor['whole'] * 1e3:.3f} ms (the rest of the worker's CPU is its server: "
        "event loop, thread hand-off, client socket, access log)",
        flush=True,
    )


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def alternate(
    ports: dict[str, int], target: str, headers: dict[str, str], requests: int
) -> dict[str, list[float]]:
    """``GET target`` on a keep-alive connection to each port in turn; seconds per request."""
    conns = {k: http.client.HTTPConnection("127.0.0.1", p, timeout=60) for k, p in ports.items()}
    times: dict[str, list[float]] = {kind: [] for kind in conns}
    for i in range(requests + WARMUP):
        for kind, connection in conns.items():
            started = time.perf_counter()
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            response.read()
            if i >= WARMUP:
                times[kind].append(time.perf_counter() - started)
            assert response.status == 200, (kind, response.status)
    for connection in conns.values():
        connection.close()
    return times


def report(label: str, times: dict[str, list[float]], requests: int) -> None:
    direct = statistics.median(times["direct"]) * 1000
    print(f"  {label}, GET /v2/images/{{id}} (20 properties), median of {requests}:", flush=True)
    for kind, values in times.items():
        if kind == "direct":
            continue
        median = statistics.median(values) * 1000
        print(
            f"    direct {direct:.2f} ms, {kind} {median:.2f} ms "
            f"(+{median - direct:.2f} ms, ratio {median / direct:.2f}x)",
            flush=True,
        )


class _SharedTokenCache:
    """``ks`` whose ``authtoken_options`` add the shared memcached cache's options."""

    def __init__(self, ks: object, options: dict[str, str]) -> None:
        self._ks = ks
        self._options = options

    def __getattr__(self, name: str) -> object:
        return getattr(self._ks, name)

    def authtoken_options(self, user: str) -> dict[str, str]:
        return {**self._ks.authtoken_options(user), **self._options}  # type: ignore[attr-defined]


def start_memcached(port: int) -> subprocess.Popen:
    """A private memcached on loopback (TCP only), for the shared token cache.

    Installed by ``scripts/install-bench-deps.sh`` (Debian's ``memcached``).
    """
    import os
    import shutil

    binary = shutil.which("memcached") or "/usr/sbin/memcached"
    if not os.path.exists(binary):
        raise SystemExit("memcached is not installed: run scripts/install-bench-deps.sh")
    argv = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", "-t", "2"]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]  # memcached refuses to run as root
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return process


def memcached_stats(port: int) -> dict[str, int]:
    """``get_hits``, ``get_misses`` and ``cmd_set`` of the memcached on ``port``."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            data += sock.recv(65536)
    stats = {}
    for line in data.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("get_hits", "get_misses", "cmd_set"):
            stats[parts[1]] = int(parts[2])
    return stats


def fresh_tokens(work: Path, rules: Path, rounds: int) -> None:
    """A fresh Keystone token's first request: direct, through the proxy (both
    validate), through the proxy to a Glance that trusts its identity headers
    (one validation), and with one memcached token cache shared by the proxy's
    and Glance's ``auth_token`` (the second finds what the first stored).

    Real Keystone (sqlite, fernet, uWSGI) and Glances under uWSGI, started as
    ``propguard demo`` starts them. The first three pairs use
    keystonemiddleware's in-process token cache; the memcached pair has the
    same ``memcached_servers``, ``memcache_security_strategy = ENCRYPT`` and
    ``memcache_secret_key`` in both (the cache key is derived from the token
    and that secret only, so both find the same entry), on a private memcached
    started here (``scripts/install-bench-deps.sh`` installs it). memcached's
    own counters (gets that hit or missed, sets) are printed per token: one
    miss, one set and one hit per fresh token when the cache is shared. Each
    request uses a token issued just before it and not yet seen by anyone;
    the order rotates every round.
    """
    import secrets

    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    from propguard.demo_live import glance as glance_mod
    from propguard.demo_live import main as demo_main
    from propguard.demo_live.keystone import start_keystone
    from propguard.demo_live.supervisor import Supervisor, free_port

    def say(text: str) -> None:
        print(f"    {text}", flush=True)

    options = {"rules_file": str(rules), "name_collation": "binary"}
    cache_port = free_port()
    memcached = start_memcached(cache_port)
    shared = {
        "memcached_servers": f"127.0.0.1:{cache_port}",
        "memcache_security_strategy": "ENCRYPT",
        "memcache_secret_key": secrets.token_urlsafe(32),
    }
    try:
        with Supervisor(str(work / "logs")) as sup:
            (work / "logs").mkdir(exist_ok=True)
            ks = start_keystone(sup, str(work / "keystone"), free_port(), say)
            cached_ks = _SharedTokenCache(ks, shared)
            glances = {}
            for name, trusting, keystone in (
                ("glance", False, ks),
                ("glance-trusting", True, ks),
                ("glance-memcached", False, cached_ks),
            ):
                glances[name] = glance_mod.start_glance(
                    sup, str(work / name), free_port(), say,
                    authtoken=None if trusting else keystone.authtoken_options("glance"),
                    placement="sidecar", jwt={} if trusting else None,
                    propguard_options=options, notifications=None, name=name,
                )  # fmt: skip
            proxies = {
                name: demo_main._start_proxy(
                    sup,
                    str(work / f"proxy-{name}"),
                    free_port(),
                    info.url,
                    cached_ks if name == "glance-memcached" else ks,
                    "",
                    options,
                    False,
                    say,
                    lambda _fraction: None,
                )  # fmt: skip
                for name, info in glances.items()
            }
            _fresh_token_rounds(ks, glances, proxies, cache_port, rounds, v3, session)
    finally:
        memcached.terminate()
        memcached.wait()


def _fresh_token_rounds(ks, glances, proxies, cache_port, rounds, v3, session) -> None:
    def fresh() -> str:
        auth = v3.Password(
            auth_url=ks.url, username="alice", password=ks.passwords["alice"],
            user_domain_id="default", project_name="demo", project_domain_id="default",
        )  # fmt: skip
        return session.Session(auth=auth).get_token()

    def timed(url: str, method: str, path: str, token: str, body: bytes | None = None):
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"X-Auth-Token": token, "Content-Type": "application/json"}
        started = time.perf_counter()
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        connection.close()
        assert response.status < 300, (url, response.status, data[:200])
        return elapsed, data

    body = json.dumps({"name": "bench", "disk_format": "raw", "container_format": "bare"})
    images = {}
    for name, url in proxies.items():
        images[name] = json.loads(timed(url, "POST", "/v2/images", fresh(), body.encode())[1])["id"]
    targets = {
        "direct (Glance validates)": (glances["glance"].url, images["glance"]),
        "proxy -> Glance (both validate)": (proxies["glance"], images["glance"]),
        "proxy -> trusting Glance (proxy validates)": (
            proxies["glance-trusting"],
            images["glance-trusting"],
        ),
        "direct, Glance on memcached": (
            glances["glance-memcached"].url,
            images["glance-memcached"],
        ),
        "proxy -> Glance, one shared memcached": (
            proxies["glance-memcached"],
            images["glance-memcached"],
        ),
    }
    first: dict[str, list[float]] = {k: [] for k in targets}
    again: dict[str, list[float]] = {k: [] for k in targets}
    cache: dict[str, dict[str, list[int]]] = {k: {} for k in targets}
    names = list(targets)
    for i in range(rounds):
        shift = i % len(names)
        for kind in names[shift:] + names[:shift]:
            url, image = targets[kind]
            token = fresh()
            for label, times in (("first", first), ("again", again)):
                before = memcached_stats(cache_port)
                times[kind].append(timed(url, "GET", f"/v2/images/{image}", token)[0])
                after = memcached_stats(cache_port)
                for stat, value in after.items():
                    cache[kind].setdefault(f"{label} {stat}", []).append(value - before[stat])
    print(f"  fresh Keystone token, GET /v2/images/{{id}}, medians of {rounds} tokens:")
    for kind in names:
        counted = ""
        if "memcached" in kind:
            counted = "; memcached per token (first/again): " + ", ".join(
                f"{stat} {sum(cache[kind][f'first {stat}']) / rounds:.1f}/"
                f"{sum(cache[kind][f'again {stat}']) / rounds:.1f}"
                for stat in ("get_misses", "cmd_set", "get_hits")
            )
        print(
            f"    {kind:<44} first request {statistics.median(first[kind]) * 1e3:7.1f} ms, "
            f"same token again {statistics.median(again[kind]) * 1e3:6.1f} ms{counted}",
            flush=True,
        )


def instructions(work: Path, ini: Path, counts: tuple[int, int], baseline: Baseline | None) -> None:
    """Instructions per small GET in the proxy worker (callgrind ``Ir``, all its threads).

    The figure neither the machine's load nor its speed changes (CPU time
    does: the same code took 0.9 ms per request on one day and 2.3 ms on a
    slower, busier one). ``propguard serve`` runs under ``valgrind
    --tool=callgrind`` twice, answering ``counts[0]`` and then ``counts[1]``
    requests (keep-alive, the static upstream of the small-request section);
    the difference divided by the extra requests leaves start-up and
    shutdown out. Needs valgrind (Debian's ``valgrind``); a few minutes.
    """
    import glob
    import os
    import shutil
    import signal

    import psutil
    from proxy_processes import free_port

    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    document = json.dumps(
        {"id": "3d0f9a3c-1111-4222-8333-444455556666", "name": "bench", "status": "active",
         **{f"x_prop_{i}": f"value {i}" for i in range(20)}}
    ).encode()  # fmt: skip
    port = free_port()
    static = subprocess.Popen([sys.executable, "-c", STATIC, str(port)], stdin=subprocess.PIPE)
    static.stdin.write(document)
    static.stdin.close()
    wait_port(port)
    target = "/v2/images/3d0f9a3c-1111-4222-8333-444455556666"
    runs = [("proxy", ini, {})]
    if baseline is not None:
        runs.append(("proxy (baseline)", baseline.ini, baseline.env))
    try:
        for label, paste_ini, env in runs:
            totals = []
            for count in counts:
                out = Path(tempfile.mkdtemp(dir=work))
                bind = free_port()
                serve = subprocess.Popen(
                    ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p",
                     sys.executable, "-m", "propguard.cli", "serve", "--upstream",
                     f"http://127.0.0.1:{port}", "--bind", f"127.0.0.1:{bind}", "--workers", "1",
                     "--threads", "4", "--paste-ini", str(paste_ini)],
                    env={**os.environ, **env},
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
                deadline = time.monotonic() + 900
                while True:
                    with contextlib.suppress(OSError, http.client.HTTPException):
                        probe = http.client.HTTPConnection("127.0.0.1", bind, timeout=300)
                        probe.request("GET", "/healthcheck")
                        if probe.getresponse().status == 200:
                            break
                    if time.monotonic() > deadline or serve.poll() is not None:
                        raise RuntimeError("propguard serve under valgrind did not start")
                    time.sleep(1)
                connection = http.client.HTTPConnection("127.0.0.1", bind, timeout=300)
                for _ in range(count):
                    connection.request("GET", target, headers=IDENTITY)
                    response = connection.getresponse()
                    response.read()
                    assert response.status == 200, response.status
                connection.close()
                workers = [child.pid for child in psutil.Process(serve.pid).children()]
                serve.send_signal(signal.SIGTERM)
                serve.wait(600)
                total = 0
                for pid in workers:
                    for name in glob.glob(f"{out}/cg.{pid}*"):
                        with open(name) as handle:
                            for line in handle:
                                if line.startswith(("summary:", "totals:")):
                                    total = max(total, int(line.split()[1]))
                totals.append(total)
            per_request = (totals[1] - totals[0]) / (counts[1] - counts[0])
            print(
                f"    {label} worker: {per_request / 1e6:.3f} M instructions per request "
                f"(callgrind Ir, {counts[1] - counts[0]} requests)",
                flush=True,
            )
    finally:
        static.kill()
        static.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument(
        "--rate-mbit", type=float, action="append", help="upstream caps (default: 1000, 5000)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--quick", action="store_true", help="256 MiB, 3 rounds, 200 requests (the docs' table)"
    )
    parser.add_argument(
        "--no-reader-ab",
        dest="reader_ab",
        action="store_false",
        help="skip the chunked upload through a proxy with gunicorn's ChunkedReader",
    )
    parser.add_argument("--small-only", action="store_true", help="only the small requests")
    parser.add_argument(
        "--instructions",
        type=int,
        metavar="N",
        default=0,
        help="only: instructions per small request in the proxy worker, N requests under "
        "valgrind's callgrind (with --baseline, the baseline's too)",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="small requests: also through a proxy running DIR's propguard (another checkout), "
        "alternated in the same rounds",
    )
    parser.add_argument(
        "--fresh-tokens",
        type=int,
        metavar="N",
        default=0,
        help="only: N fresh Keystone tokens each direct, proxied, proxied to a trusting "
        "Glance, and with a memcached token cache shared by proxy and Glance "
        "(scripts/install-bench-deps.sh installs memcached)",
    )
    args = parser.parse_args()
    if args.quick:
        args.size_mib, args.rounds, args.requests = 256, 3, 200
    warnings.simplefilter("ignore")
    from test_proxy_http import RULES

    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rules = work / "rules.conf"
        rules.write_text(RULES)
        ini = proxy_ini(work, rules)
        if args.fresh_tokens:
            fresh_tokens(work, rules, args.fresh_tokens)
            return 0
        if args.instructions:
            print("instructions per small GET in the proxy worker (valgrind):", flush=True)
            baseline = Baseline(args.baseline, work, rules) if args.baseline else None
            instructions(work, ini, (20, 20 + args.instructions), baseline)
            return 0
        print("small requests (real Glance, propguard filtering the image JSON):", flush=True)
        baseline = Baseline(args.baseline, work, rules) if args.baseline else None
        small_requests(work, ini, args.requests, baseline)
        if args.small_only:
            return 0
        print(
            f"streaming {args.size_mib} MiB, {args.rounds} rounds alternating direct and "
            "proxied, medians (upstream counts/generates bytes):",
            flush=True,
        )
        rows = streaming(ini, size, 0, "loopback, unpaced", args.rounds, args.reader_ab)
        unpaced = {r[1]: size / r[3] for r in rows}
        for mbit in args.rate_mbit or [1000.0, 5000.0]:
            cap = mbit * 1e6 / 8
            rows += streaming(
                ini, size, cap, f"upstream {mbit:.0f} Mbit/s", args.rounds, args.reader_ab
            )
            for name in [n for n, _ in TRANSFERS] + ([OLD_NAME] if args.reader_ab else []):
                print(
                    f"  {'':<24} {name:<26} headroom: unpaced proxy {unpaced[name] / MIB:.0f} "
                    f"MiB/s = {unpaced[name] / cap:.1f}x the {mbit:.0f} Mbit/s cap",
                    flush=True,
                )
        print("ratios are of the same run (this machine is shared: absolute figures vary)")
        for label in dict.fromkeys(r[0] for r in rows):
            ratios = [
                r[2] / r[3]
                for r in rows
                if r[0] == label and "relay" not in r[1] and r[1] != OLD_NAME
            ]
            print(f"{label}: proxied at {min(ratios):.0%}..{max(ratios):.0%} of direct")
    return 0


if __name__ == "__main__":
    sys.exit(main())
