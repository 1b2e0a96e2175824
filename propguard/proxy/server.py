"""Running the ``serve.ini`` pipeline on gunicorn with ``gthread`` workers.

Why gunicorn gthread (measured in the project's reference, §B.2): it streams
chunked request bodies (``wsgi.input_terminated``) and Content-Length bodies
without buffering, has no body-size limit of its own, and its threaded
worker keeps notifying the arbiter while a request runs, so a 1 GiB upload
is not killed after ``--timeout`` as a *sync* worker's is. waitress was
rejected (it buffers whole uploads to disk before calling the app and 413s
exactly 1 GiB), uWSGI needs ``uwsgi.chunked_read()`` (propguard supports it,
see :func:`propguard.bodies.input_stream`) but is configured outside Python.

The worker is gthread with the request head read by the event loop and idle
deadlines on client sockets (:mod:`propguard.proxy.worker`): slow clients
cost a connection slot, not a thread.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import shutil
import tempfile
from importlib import resources
from typing import Any

from gunicorn import glogging
from paste import deploy

LOG = logging.getLogger(__name__)
ACCESS_LOG = logging.getLogger("propguard.access")

#: The pipeline shipped with propguard (``propguard serve`` without ``--paste-ini``).
SHIPPED_INI = "serve.ini"


def shipped_ini() -> str:
    """Path of the ``serve.ini`` installed with the package."""
    return str(resources.files("propguard.proxy").joinpath(SHIPPED_INI))


@dataclasses.dataclass(frozen=True)
class ServeOptions:
    upstream: str
    bind: str = "127.0.0.1:9293"
    paste_ini: str = ""
    pipeline: str = "main"
    config_files: tuple[str, ...] = ()
    workers: int = 2
    threads: int = 16
    trusted_proxies: tuple[str, ...] = ()
    timeout: int = 60
    graceful_timeout: int = 30
    keepalive: int = 75
    access_log: str | None = None
    #: Seconds for a request's head and its small body (or first 256 KiB) to arrive: then 408.
    head_timeout: float = 20.0
    #: Seconds any single read or write on a client socket may wait (not a total).
    idle_timeout: float = 60.0
    #: oslo.log's log_file and debug (``--log-file``, ``--debug``); None: from --config-file.
    log_file: str | None = None
    debug: bool | None = None


#: How ``propguard serve`` hands ``--upstream``/``--trusted-proxy`` to the proxy app
#: (inherited by gunicorn's workers). Not paste's global conf: every filter
#: would get them, and keystonemiddleware warns about options it does not know.
UPSTREAM_ENV = "PROPGUARD_SERVE_UPSTREAM"
TRUSTED_ENV = "PROPGUARD_SERVE_TRUSTED_PROXIES"


def load_pipeline(options: ServeOptions) -> Any:
    """The WSGI app of the paste pipeline, built by paste.deploy (as glance-api builds its own)."""
    os.environ[UPSTREAM_ENV] = options.upstream
    os.environ[TRUSTED_ENV] = ",".join(options.trusted_proxies)
    ini = os.path.abspath(options.paste_ini or shipped_ini())
    return deploy.loadapp(f"config:{ini}", name=options.pipeline)


def parse_config_files(
    config_files: tuple[str, ...], log_file: str | None = None, debug: bool | None = None
) -> None:
    """Parse ``--config-file`` into oslo.config's global CONF, which the filters read,
    and set up oslo.log from it (``[DEFAULT] log_file``, ``debug``, formats), as an
    OpenStack service does; ``--log-file``/``--debug`` override the files.

    keystonemiddleware reads ``[keystone_authtoken]``, propguard ``[propguard]``,
    oslo.middleware ``[oslo_middleware]`` from it, as they do inside glance-api.
    """
    from oslo_config import cfg
    from oslo_log import log

    log.register_options(cfg.CONF)
    cfg.CONF(args=[], project="propguard", default_config_files=list(config_files))
    if log_file:
        cfg.CONF.set_override("log_file", log_file)
    if debug is not None:
        cfg.CONF.set_override("debug", debug)
    log.setup(cfg.CONF, "propguard")


class GunicornLogger(glogging.Logger):
    """gunicorn's log through oslo.log's handlers, and one access line per request.

    gunicorn's error log (start, worker boots, timeouts) propagates to the
    root logger oslo.log configured, with its level and time; the access line
    is logged as ``propguard.access`` with the request id (oslo.log's request
    context, so it shows as ``[- req-...]`` in the context format).
    ``--access-log PATH`` still writes gunicorn's own access format there.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in list(self.error_log.handlers):
            self.error_log.removeHandler(handler)
        self.error_log.propagate = True

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if ACCESS_LOG.isEnabledFor(logging.INFO):
            own = environ.get("openstack.request_id")
            answered = next(
                (v for k, v in resp.headers if k.lower() == "x-openstack-request-id"), None
            )
            # A dict, not a RequestContext: constructing one would store it as
            # the thread's current context, stamping later lines with this id.
            ids = {
                "request_id": own or answered or "-",
                "global_request_id": environ.get("openstack.global_request_id") or "-",
            }
            ACCESS_LOG.info(
                '%s "%s %s" status: %s len: %s time: %.6f%s',
                environ.get("REMOTE_ADDR", "-"),
                environ.get("REQUEST_METHOD", "-"),
                environ.get("RAW_URI") or environ.get("PATH_INFO", ""),
                str(resp.status).split(None, 1)[0],
                getattr(resp, "sent", "-"),
                request_time.total_seconds(),
                # Glance's own id, which the client got, when the answer is Glance's.
                f" upstream_request_id: {answered}" if answered and answered != own else "",
                extra={"context": ids},
            )
        super().access(resp, req, environ, request_time)


class _SaidOnce(logging.Filter):
    """Drops what the master already logged while building the same pipeline.

    The master builds the pipeline once to fail fast, then each worker builds
    its own: their start-up warnings would be printed once per process.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, int, str]] = set()
        #: "record" (the master's build), "suppress" (a worker's build), "off".
        self.mode = "record"

    def filter(self, record: logging.LogRecord) -> bool:
        if self.mode == "off":
            return True
        key = (record.name, record.levelno, record.getMessage())
        if self.mode == "record":
            self.seen.add(key)
            return True
        return key not in self.seen


def metrics_directory() -> str:
    """``PROMETHEUS_MULTIPROC_DIR`` for this run: the operator's (emptied), or a fresh one.

    Set before ``prometheus_client`` is imported, so every worker writes its
    counters there and ``/metrics`` sums them (propguard.metrics).
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.unlink(os.path.join(directory, name))
    else:
        directory = tempfile.mkdtemp(prefix="propguard-metrics-")
        atexit.register(shutil.rmtree, directory, True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


def gunicorn_settings(options: ServeOptions) -> dict[str, Any]:
    """gunicorn settings; the worker is always ``gthread``, bounded (see the module docstring)."""
    return {
        "bind": [options.bind],
        "workers": options.workers,
        "threads": options.threads,
        # gthread, with the request head read by the event loop (see worker.py).
        "worker_class": "propguard.proxy.worker.GuardedThreadWorker",
        # Idle-worker heartbeat only: gthread notifies while requests run.
        "timeout": options.timeout,
        "graceful_timeout": options.graceful_timeout,
        "keepalive": options.keepalive,
        # wsgi.url_scheme from X-Forwarded-Proto only for the proxies we trust
        # (gunicorn's default trusts 127.0.0.1).
        "forwarded_allow_ips": ",".join(options.trusted_proxies) or "",
        "proxy_allow_ips": "",
        "accesslog": options.access_log,
        "errorlog": "-",
        # gunicorn's own lines through oslo.log's handlers, one access line per request.
        "logger_class": "propguard.proxy.server.GunicornLogger",
        # A worker that ended leaves no live gauge behind in the metrics directory.
        "child_exit": _child_exit,
        "proc_name": "propguard-serve",
        # gunicorn 27's runtime control socket ($HOME/.gunicorn/gunicorn.ctl):
        # not needed, and shared by every gunicorn of the user.
        "control_socket_disable": True,
        # Glance's tokens and image headers can be long (Glance's own uWSGI
        # deployment raises buffer-size to 65535).
        "limit_request_field_size": 65535,
    }


def _child_exit(server: Any, worker: Any) -> None:
    from propguard import metrics

    metrics.forget_process(worker.pid)


def serve(options: ServeOptions) -> None:
    """Build the pipeline once to fail fast, then run gunicorn (each worker builds its own)."""
    from gunicorn.app.base import BaseApplication

    from propguard.proxy import worker

    metrics_directory()
    parse_config_files(options.config_files, options.log_file, options.debug)
    worker.configure(options.head_timeout, options.idle_timeout)
    said = _SaidOnce()
    for handler in logging.getLogger().handlers:
        handler.addFilter(said)
    load_pipeline(options)  # a bad ini, rules file or option stops here, before forking
    said.mode = "off"
    from propguard import metrics

    metrics.forget_process()  # the master serves no request

    class _Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_settings(options).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            said.mode = "suppress"  # the master said it already
            try:
                return load_pipeline(options)
            finally:
                said.mode = "off"

    _Application().run()
