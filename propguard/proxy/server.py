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

import dataclasses
import os
from importlib import resources
from typing import Any

from paste import deploy

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


def parse_config_files(config_files: tuple[str, ...]) -> None:
    """Parse ``--config-file`` into oslo.config's global CONF, which the filters read.

    keystonemiddleware reads ``[keystone_authtoken]``, propguard ``[propguard]``,
    oslo.middleware ``[oslo_middleware]`` from it, as they do inside glance-api.
    """
    from oslo_config import cfg

    cfg.CONF(args=[], project="propguard", default_config_files=list(config_files))


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
        "proc_name": "propguard-serve",
        # gunicorn 27's runtime control socket ($HOME/.gunicorn/gunicorn.ctl):
        # not needed, and shared by every gunicorn of the user.
        "control_socket_disable": True,
        # Glance's tokens and image headers can be long (Glance's own uWSGI
        # deployment raises buffer-size to 65535).
        "limit_request_field_size": 65535,
    }


def serve(options: ServeOptions) -> None:
    """Build the pipeline once to fail fast, then run gunicorn (each worker builds its own)."""
    from gunicorn.app.base import BaseApplication

    from propguard.proxy import worker

    parse_config_files(options.config_files)
    worker.configure(options.head_timeout, options.idle_timeout)
    load_pipeline(options)  # a bad ini, rules file or option stops here, before forking

    class _Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_settings(options).items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return load_pipeline(options)

    _Application().run()
