"""Fixtures for functional tests against a real in-process Glance v2 API.

Why: every functional test needs Glance + keystonemiddleware ``auth_token``
exactly as deployed, but isolated (own sqlite DB / file store in ``tmp_path``)
and without network.  Glance's configuration is process-global, so instances
run one at a time; ``glance_factory`` stops whatever it started at teardown.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from propguard.inprocess import InProcessGlance

# Verbatim copy of glance/tests/etc/property-protections.conf (glance 33.0.0):
# Glance's own roles-format rules used by its property-protection tests.  Kept
# inline so the tests depend neither on glance.tests nor on other test data.
GLANCE_TEST_PROPERTY_PROTECTIONS = """\
[^x_owner_.*]
create = admin,member
read = admin,member
update = admin,member
delete = admin,member

[spl_create_prop]
create = admin,spl_role
read = admin,spl_role
update = admin
delete = admin

[spl_read_prop]
create = admin,spl_role
read = admin,spl_role
update = admin
delete = admin

[spl_read_only_prop]
create = admin
read = admin,spl_role
update = admin
delete = admin

[spl_update_prop]
create = admin,spl_role
read = admin,spl_role
update = admin,spl_role
delete = admin

[spl_update_only_prop]
create = admin
read = admin
update = admin,spl_role
delete = admin

[spl_delete_prop]
create = admin,spl_role
read = admin,spl_role
update = admin
delete = admin,spl_role

[spl_delete_empty_prop]
create = admin,spl_role
read = admin,spl_role
update = admin
delete = admin,spl_role

[^x_all_permitted.*]
create = @
read = @
update = @
delete = @

[^x_none_permitted.*]
create = !
read = !
update = !
delete = !

[x_none_read]
create = admin,member
read = !
update = !
delete = !

[x_none_update]
create = admin,member
read = admin,member
update = !
delete = admin,member

[x_none_delete]
create = admin,member
read = admin,member
update = admin,member
delete = !

[x_case_insensitive]
create = admin,Member
read = admin,Member
update = admin,Member
delete = admin,Member

[x_foo_matcher]
create = admin
read = admin
update = admin
delete = admin

[x_foo_*]
create = @
read = @
update = @
delete = @

[.*]
create = admin
read = admin
update = admin
delete = admin
"""

GlanceFactory = Callable[..., InProcessGlance]


#: The machine's own database/broker services that tests may use on purpose.
LOCAL_SERVICES = {("127.0.0.1", 3306), ("127.0.0.1", 5432), ("127.0.0.1", 5672)}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything (e.g. auth_token discovery or memcache) tries the network.

    Only the local services in ``LOCAL_SERVICES`` (MariaDB, PostgreSQL,
    RabbitMQ on loopback) may be reached, by tests that use them on purpose.
    """

    def _refuse(*args, **kwargs):
        raise AssertionError(f"functional test attempted network access: {args!r}")

    real_connect = socket.socket.connect
    real_create_connection = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo

    def _allowed(host, port) -> bool:
        return (host, port) in LOCAL_SERVICES

    def _connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _allowed(*address[:2]):
            _refuse(address)
        return real_connect(sock, address)

    def _create_connection(address, *args, **kwargs):
        if not _allowed(*address[:2]):
            _refuse(address)
        return real_create_connection(address, *args, **kwargs)

    def _getaddrinfo(host, port, *args, **kwargs):
        if not _allowed(host, port):
            _refuse(host, port)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", _connect)
    monkeypatch.setattr(socket, "create_connection", _create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", _getaddrinfo)


@pytest.fixture
def glance_factory(tmp_path: Path) -> Iterator[GlanceFactory]:
    """Return ``make(**InProcessGlance kwargs) -> started instance``; all are stopped at teardown.

    Each instance gets its own directory under ``tmp_path``.  Stop one before
    starting the next (start() raises otherwise).
    """
    instances: list[InProcessGlance] = []

    def make(**kwargs) -> InProcessGlance:
        glance = InProcessGlance(tmp_path / f"glance-{len(instances)}", **kwargs)
        instances.append(glance)
        glance.start()
        return glance

    yield make
    for glance in reversed(instances):
        glance.stop()


@pytest.fixture
def glance(glance_factory: GlanceFactory) -> InProcessGlance:
    """A started Glance with no extra filters, recording what reaches its context filter."""
    return glance_factory(record_requests=True)


@pytest.fixture
def glance_test_rules_file(tmp_path: Path) -> Path:
    """Glance's own test property-protections file (roles format) in a temp file."""
    path = tmp_path / "property-protections.conf"
    path.write_text(GLANCE_TEST_PROPERTY_PROTECTIONS)
    return path
