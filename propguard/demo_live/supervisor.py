"""Start the demo's services as child processes, and stop every one of them, always.

Why a module of its own: a demo that leaves a Keystone or a uWSGI master
behind after Ctrl-C holds its port and fails the next run. Each service runs
in its own process group (``start_new_session``) so stopping it stops its
workers too; ``stop_all`` runs on normal exit, on an exception, from
``atexit`` and from SIGINT/SIGTERM/SIGHUP handlers. A port already taken and
a service that does not come up are reported with the name of the service,
its command and the end of its log.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

HOST = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service could not be started: the message says which, why and what its log says."""


@dataclass
class Service:
    name: str
    argv: list[str]
    log_path: str
    port: int | None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when something already listens on (or holds) ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: str, lines: int = 25) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join("    | " + line for line in text.splitlines()[-lines:])


#: The signals that stop the demo (and everything it started).
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


@dataclass
class Supervisor:
    """Owns the demo's child processes."""

    logdir: str
    out: TextIO = sys.stdout
    services: list[Service] = field(default_factory=list)
    #: One-shot commands running now (a db sync...), killed with the services.
    commands: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _handlers_installed: bool = False
    _previous: dict[int, object] = field(default_factory=dict)

    # -- lifecycle ----------------------------------------------------------

    def install_handlers(self) -> None:
        """Stop everything on exit and on SIGINT/SIGTERM/SIGHUP (then exit 130/143/129)."""
        if self._handlers_installed:
            return
        self._handlers_installed = True
        atexit.register(self.stop_all)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        print(f"\npropguard demo: {name}: stopping the services it started", file=self.out)
        self.stop_all()
        print("propguard demo: every service the demo started is stopped", file=self.out)
        raise SystemExit(128 + signum)

    def restore_handlers(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()
        if self._handlers_installed:
            atexit.unregister(self.stop_all)
            self._handlers_installed = False

    def __enter__(self) -> Supervisor:
        self.install_handlers()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
        self.restore_handlers()

    # -- services -----------------------------------------------------------

    def check_ports(self, ports: Mapping[str, int]) -> None:
        """Refuse to start anything when one of the ports is taken (names the service)."""
        taken = [f"{HOST}:{port} ({name})" for name, port in ports.items() if port_in_use(port)]
        if taken:
            raise ServiceError(
                "port already in use: "
                + ", ".join(taken)
                + ". Stop what listens there (e.g. `ss -ltnp | grep PORT`) or choose other "
                "ports: --ports auto, or --keystone-port/--glance-port/--proxy-port."
            )

    def run(self, name: str, argv: Sequence[str], env: Mapping[str, str], timeout: float) -> None:
        """Run a one-shot command (a db sync, a bootstrap); its output goes to its log."""
        log_path = os.path.join(self.logdir, f"{name}.log")
        with open(log_path, "ab") as log:
            # Ctrl-C between the fork and the bookkeeping would leave the
            # command running: the stop signals wait until it is recorded
            # (the child gets the usual mask back before it runs).
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                process = subprocess.Popen(
                    list(argv),
                    env=dict(env),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, previous),
                )
                self.commands.append(process)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            try:
                returncode = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                self._kill_command(process)
                raise ServiceError(
                    f"{name} did not finish in {timeout:.0f} s: {' '.join(argv)}\n"
                    f"  the end of {log_path}:\n{log_tail(log_path)}"
                ) from exc
            finally:
                if process in self.commands and process.poll() is not None:
                    self.commands.remove(process)
        if returncode != 0:
            raise ServiceError(
                f"{name} failed (exit {returncode}): {' '.join(argv)}\n"
                f"  the end of {log_path}:\n{log_tail(log_path)}"
            )

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        port: int,
        ready_path: str = "/",
        timeout: float = 60.0,
        progress: Callable[[float], None] | None = None,
    ) -> Service:
        """Start a server and wait until it answers HTTP on ``port`` (any status below 500)."""
        if port_in_use(port):
            raise ServiceError(f"port {HOST}:{port} ({name}) is already in use")
        log_path = os.path.join(self.logdir, f"{name}.log")
        service = Service(name, list(argv), log_path, port)
        log = open(log_path, "ab")  # noqa: SIM115 - the child keeps writing to it
        try:
            service.process = subprocess.Popen(
                service.argv,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stopped with its workers
            )
        finally:
            log.close()
        self.services.append(service)
        self._wait_ready(service, ready_path, timeout, progress)
        return service

    def _wait_ready(
        self,
        service: Service,
        path: str,
        timeout: float,
        progress: Callable[[float], None] | None,
    ) -> None:
        started = time.monotonic()
        last_error = "no answer yet"
        while True:
            elapsed = time.monotonic() - started
            code = service.process.poll() if service.process else None
            if code is not None:
                raise ServiceError(
                    f"{service.name} exited with status {code} while starting: "
                    f"{' '.join(service.argv)}\n  the end of {service.log_path}:\n"
                    f"{log_tail(service.log_path)}"
                )
            status = _http_status(service.port or 0, path)
            if isinstance(status, int) and status < 500:
                return
            last_error = str(status)
            if elapsed > timeout:
                raise ServiceError(
                    f"{service.name} did not answer on {service.url}{path} within "
                    f"{timeout:.0f} s (last: {last_error})\n  the end of {service.log_path}:\n"
                    f"{log_tail(service.log_path)}"
                )
            if progress is not None:
                progress(elapsed)
            time.sleep(0.25)

    def stop(self, service: Service, grace: float = 10.0) -> None:
        process = service.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        # Workers that outlived their master (same group) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        """Stop every service started, newest first; safe to call more than once."""
        while self.commands:
            self._kill_command(self.commands[-1])
        while self.services:
            self.stop(self.services.pop())

    def _kill_command(self, process: subprocess.Popen[bytes]) -> None:
        """A one-shot command and its process group: killed at once (no state to keep)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if process in self.commands:
            self.commands.remove(process)


def _http_status(port: int, path: str) -> int | str:
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
