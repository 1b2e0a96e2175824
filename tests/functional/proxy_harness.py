"""propguard serve's pipeline and a real Glance, each on a real HTTP server on loopback.

Not a test module: imported as ``proxy_harness`` by ``conftest.py`` (the
``glance_transport`` parameter of ``guarded_glance``) and the proxy tests.

Why in this process: the tests mint tokens in keystonemiddleware's
``AuthTokenFixture`` (class-wide, in this process), which both auth_token
layers must accept: the proxy's own (in ``serve.ini``) and Glance's, which
validates the same token again. So the proxy pipeline (the shipped
``serve.ini`` with the test's options filled in) and Glance are each served
by a cheroot server thread (cheroot streams chunked bodies and sets
``wsgi.input_terminated``, as gunicorn does); the dedicated proxy tests run
``propguard serve`` itself (gunicorn) in a subprocess.

:class:`HttpClientApp` is the test client's side: a WSGI app that sends
the environ it is given over HTTP, unchanged, so the suites' webob/webtest
requests go client → HTTP → proxy → HTTP → Glance.
"""

from __future__ import annotations

import configparser
import http.client
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cheroot import wsgi as cheroot_wsgi
from paste import deploy

from propguard.glance.collation import folding_for_connection
from propguard.inprocess import InProcessGlance, authtoken_defaults
from propguard.proxy.server import shipped_ini


class ServerThread:
    """A cheroot WSGI server on ``127.0.0.1:<free port>`` in a daemon thread."""

    def __init__(
        self, app: Callable, threads: int = 8, allow: Callable[[int], None] | None = None
    ) -> None:
        self.server = cheroot_wsgi.Server(("127.0.0.1", 0), app, numthreads=threads, timeout=30)
        self.server.expiration_interval = 0.05  # stop() waits up to one interval
        self.server.prepare()
        self.port: int = self.server.bind_addr[1]
        if allow is not None:  # no_network: this test's own server
            allow(self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.stop()
        self._thread.join(10)


class HttpClientApp:
    """WSGI app that sends each request to ``url`` over HTTP and returns the answer as received.

    The request line, headers (``Host`` included) and body are the
    environ's; a body without ``CONTENT_LENGTH`` but with
    ``wsgi.input_terminated`` goes chunked. Nothing is added but framing.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterator[bytes]:
        from urllib.parse import quote

        path = quote(environ.get("PATH_INFO", "").encode("latin-1"), safe="/:@!$&'()*+,;=-._~")
        target = (environ.get("SCRIPT_NAME", "") + path) or "/"
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        connection.putrequest(
            environ["REQUEST_METHOD"], target, skip_host=True, skip_accept_encoding=True
        )
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                connection.putheader(key[5:].replace("_", "-").title(), value)
        if environ.get("CONTENT_TYPE"):
            connection.putheader("Content-Type", environ["CONTENT_TYPE"])
        stream = environ.get("wsgi.input")
        length = environ.get("CONTENT_LENGTH")
        chunked = not length and bool(environ.get("wsgi.input_terminated"))
        if length:
            connection.putheader("Content-Length", length)
        elif chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        if length and not length.isdigit():  # a test of unusable Content-Length: sent as is
            connection.send(stream.read())
        elif length:
            remaining = int(length)
            while remaining > 0:
                chunk = stream.read(min(remaining, 65536))
                if not chunk:
                    break
                connection.send(chunk)
                remaining -= len(chunk)
        elif chunked:
            while chunk := stream.read(65536):
                connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        body = response.read()
        connection.close()
        headers = [(k, v) for k, v in response.getheaders() if k.lower() != "transfer-encoding"]
        start_response(f"{response.status} {response.reason}", headers)
        return iter([body])


def proxy_ini(
    path: Path,
    *,
    upstream: str,
    propguard_options: Mapping[str, str],
    authtoken_options: Mapping[str, str],
    pipeline: str | None = None,
) -> Path:
    """The shipped ``serve.ini`` with the test's options in its sections, written to ``path``.

    The pipeline and every filter's factory stay the shipped ones; only
    options are added (``pipeline``: another ``[pipeline:api]`` line).
    ``propguard_options`` must name ``name_collation``: a proxy cannot read
    Glance's database, and ``auto`` refuses to start there.
    """
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # type: ignore[assignment]
    parser.read(shipped_ini())
    for key, value in propguard_options.items():
        parser.set("filter:propguard", key, str(value).replace("%", "%%"))
    for key, value in authtoken_options.items():
        parser.set("filter:authtoken", key, str(value).replace("%", "%%"))
    parser.set("app:proxy", "upstream", upstream)
    parser.set("app:proxy", "trusted_proxies", "")
    if pipeline is not None:
        parser.set("pipeline:api", "pipeline", pipeline)
    with open(path, "w") as handle:
        parser.write(handle)
    return path


def operator_collation(options: Mapping[str, str], database_url: str | None) -> dict[str, str]:
    """``options`` with ``name_collation`` as an operator sets it for this Glance's database.

    The in-pipeline tests leave it ``auto`` (the filter reads Glance's
    ``[database] connection``); a proxy cannot, so its ini names it: ``binary``
    for sqlite, the collation of Glance's schema on MariaDB.
    """
    if options.get("name_collation", "auto") != "auto":
        return dict(options)
    fold = folding_for_connection(database_url or "sqlite://")
    return {**options, "name_collation": fold.name}


class ProxiedGlance:
    """Glance on one server thread, the ``serve.ini`` pipeline in front on another.

    :meth:`attach` points the InProcessGlance's ``app`` at the proxy (over
    HTTP), so everything a suite sends through ``glance.app``,
    ``glance.request`` or ``glance.webtest_app()`` crosses both servers.
    """

    def __init__(
        self,
        glance: InProcessGlance,
        workdir: Path,
        propguard_options: Mapping[str, str],
        allow: Callable[[int], None] | None = None,
    ) -> None:
        self.glance = glance
        self.glance_app = glance.app
        self.glance_server = ServerThread(self.glance_app, allow=allow)
        ini = proxy_ini(
            workdir / "serve.ini",
            upstream=self.glance_server.url,
            propguard_options=operator_collation(propguard_options, glance.database_url),
            authtoken_options={**authtoken_defaults(), **glance.authtoken_options},
        )
        try:  # a rules file that does not load stops the proxy here, as at `propguard serve`
            self.proxy_app = deploy.loadapp(f"config:{ini}", name="main")
        except BaseException:
            self.glance_server.stop()
            raise
        self.proxy_server = ServerThread(self.proxy_app, allow=allow)
        self._urllib3_level = logging.getLogger("urllib3").level

    @property
    def ports(self) -> tuple[int, int]:
        return self.glance_server.port, self.proxy_server.port

    def attach(self) -> None:
        self.glance.app = HttpClientApp("127.0.0.1", self.proxy_server.port)
        # urllib3's DEBUG lines name upstream URLs; the suites' log checks are about propguard.
        logging.getLogger("urllib3").setLevel(logging.INFO)

    def stop(self) -> None:
        logging.getLogger("urllib3").setLevel(self._urllib3_level)
        self.proxy_server.stop()
        self.glance_server.stop()
        self.glance.app = self.glance_app


def serve_command(
    upstream: str,
    bind: str,
    paste_ini: str | os.PathLike[str] | None = None,
    workers: int = 1,
    threads: int = 8,
) -> list[str]:
    """The ``propguard serve`` command line the subprocess tests and the benchmark run."""
    import sys

    command = [
        sys.executable,
        "-m",
        "propguard.cli",
        "serve",
        "--upstream",
        upstream,
        "--bind",
        bind,
        "--workers",
        str(workers),
        "--threads",
        str(threads),
    ]
    if paste_ini is not None:
        command += ["--paste-ini", os.fspath(paste_ini)]
    return command


def start_proxied(
    request: Any,
    glance_factory: Callable[..., InProcessGlance],
    propguard: tuple[str, str, dict[str, str]],
    *,
    filters_after: Any = (),
    **glance_kwargs: Any,
) -> InProcessGlance:
    """``guarded_glance`` through the proxy: Glance without propguard, the proxy with it.

    ``filters_after`` go into Glance's pipeline (after its auth_token, where
    they were right after propguard). The returned Glance's ``app`` is the
    HTTP client of the proxy; ``extra_filters`` also lists propguard (with
    the options the proxy's filter has), for helpers such as ``propguard_conf``.
    """
    glance = glance_factory(extra_filters=list(filters_after), **glance_kwargs)
    _name, _factory, options = propguard
    allow = request.getfixturevalue("allow_loopback_port")  # torn down after guarded_glance
    allow(0)  # the servers look up 127.0.0.1:0 to bind a free port
    proxied = ProxiedGlance(glance, Path(glance.workdir), options, allow)
    request.addfinalizer(proxied.stop)
    proxied.attach()
    glance.extra_filters.append(propguard)
    glance.proxied = proxied  # type: ignore[attr-defined]
    return glance
