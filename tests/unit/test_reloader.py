"""``RulesHolder``: reload on change after the interval, keep the last good rules.

Contrast with Glance (reference §1.3): its module-global ``CONFIG`` merges on every
``read()``, so a section removed from the file is not forgotten in the same process; and a
broken file makes every image call fail. A fake clock drives the interval.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

import pytest

from propguard.credentials import Credentials
from propguard.rules import OPERATIONS, RulesError, RulesHolder, load_rules

ADMIN = Credentials(authenticated=True, roles=frozenset({"admin"}))
MEMBER = Credentials(authenticated=True, roles=frozenset({"member"}))


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def section(name, role):
    return f"[{name}]\n" + "".join(f"{op} = {role}\n" for op in OPERATIONS)


class Rules:
    """A rules file on disk plus a counting build function."""

    def __init__(self, path):
        self.path = path
        self.builds = 0
        self._mtime = 1_000_000_000

    def write(self, text: str) -> None:
        self.path.write_text(text, encoding="utf-8")
        # Distinct mtimes even on coarse file systems.
        self._mtime += 10
        os.utime(self.path, (self._mtime, self._mtime))

    def build(self):
        self.builds += 1
        return load_rules(str(self.path), "roles")


@pytest.fixture
def rules(tmp_path):
    r = Rules(tmp_path / "rules.conf")
    r.write(section("^x_", "member") + section(".*", "admin"))
    return r


@pytest.fixture
def clock():
    return FakeClock()


def holder_for(rules, clock, interval=5.0):
    return RulesHolder(rules.build, [str(rules.path), None, ""], interval=interval, clock=clock)


def test_first_load_failure_raises(tmp_path, clock):
    bad = Rules(tmp_path / "bad.conf")
    bad.write("[a]\ncreate = admin,\n")
    with pytest.raises(RulesError) as info:
        holder_for(bad, clock)
    assert str(info.value).startswith(f"{bad.path}:2:")
    missing = Rules(tmp_path / "missing.conf")
    with pytest.raises(RulesError, match="PG101"):
        holder_for(missing, clock)


def test_changed_file_is_used_after_the_interval(rules, clock):
    holder = holder_for(rules, clock)
    first = holder.current()
    assert rules.builds == 1
    assert first.allowed("x_a", "read", MEMBER)

    rules.write(section("^x_", "admin") + section(".*", "admin"))
    clock.advance(4.9)
    assert holder.current() is first  # not yet due
    assert rules.builds == 1
    clock.advance(0.2)
    second = holder.current()
    assert second is not first and rules.builds == 2
    assert not second.allowed("x_a", "read", MEMBER)
    assert second.allowed("x_a", "read", ADMIN)
    # The next check is a full interval later.
    assert holder.current() is second


def test_unchanged_file_is_not_rebuilt(rules, clock):
    holder = holder_for(rules, clock)
    engine = holder.current()
    for _ in range(5):
        clock.advance(10)
        assert holder.current() is engine
    assert rules.builds == 1
    assert holder.maybe_reload() is False


def test_broken_new_file_keeps_last_good_rules(rules, clock, caplog):
    holder = holder_for(rules, clock)
    good = holder.current()
    rules.write(section("^x_", "member") + "[.*]\ncreate = admin\nrade = admin\n")
    clock.advance(5)
    with caplog.at_level(logging.INFO, logger="propguard.rules.reloader"):
        assert holder.current() is good
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "new rules refused, keeping the last good rules" in message
    assert f"{rules.path}:" in message and "PG106" in message
    assert good.allowed("x_a", "read", MEMBER)

    # The broken file is not retried (and logged) on every check ...
    caplog.clear()
    clock.advance(5)
    assert holder.current() is good
    assert rules.builds == 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    # ... but a fixed file is picked up.
    rules.write(section(".*", "member"))
    clock.advance(5)
    with caplog.at_level(logging.INFO, logger="propguard.rules.reloader"):
        fixed = holder.current()
    assert fixed is not good and fixed.allowed("anything", "read", MEMBER)
    assert any("rules reloaded" in r.getMessage() for r in caplog.records)


def test_deleted_file_keeps_last_good_rules(rules, clock, caplog):
    holder = holder_for(rules, clock)
    good = holder.current()
    rules.path.unlink()
    clock.advance(5)
    with caplog.at_level(logging.ERROR, logger="propguard.rules.reloader"):
        assert holder.current() is good
    assert "PG101" in caplog.text


def test_request_reload_forces_a_reload(rules, clock):
    holder = holder_for(rules, clock)
    first = holder.current()
    holder.request_reload()
    second = holder.current()  # no clock advance, no file change
    assert second is not first and rules.builds == 2
    assert holder.current() is second  # the request is consumed


def test_request_reload_works_with_polling_disabled(rules, clock):
    """``reload_interval`` negative disables polling; SIGHUP must still reload."""
    holder = holder_for(rules, clock, interval=-1)
    first = holder.current()
    rules.write(section(".*", "member"))
    clock.advance(3600)
    assert holder.current() is first and rules.builds == 1
    holder.request_reload()
    second = holder.current()
    assert second is not first and second.allowed("x", "read", MEMBER)


def test_removed_section_is_forgotten(rules, clock):
    """Glance's process-global ``CONFIG.read()`` keeps a section removed from the file;
    a propguard reload builds from the file alone."""
    holder = holder_for(rules, clock)
    assert [s.pattern for s in holder.current().sections] == ["^os_glance", "^x_", ".*"]
    rules.write(section(".*", "admin"))
    clock.advance(5)
    engine = holder.current()
    assert [s.pattern for s in engine.sections] == ["^os_glance", ".*"]
    assert not engine.allowed("x_a", "read", MEMBER)


def test_policy_file_change_triggers_reload(tmp_path, clock):
    rules_path = tmp_path / "rules.conf"
    rules_path.write_text(section(".*", "my_rule"))
    policy = tmp_path / "policy.yaml"
    policy.write_text('"my_rule": "role:admin"\n')
    builds = []

    def build():
        builds.append(1)
        return load_rules(str(rules_path), "policies", policy_file=str(policy))

    holder = RulesHolder(build, [str(rules_path), str(policy)], interval=1, clock=clock)
    assert not holder.current().allowed("p", "read", MEMBER)
    policy.write_text('"my_rule": "role:member"\n# longer now\n')
    os.utime(policy, (2_000_000_000, 2_000_000_000))
    clock.advance(1)
    assert holder.current().allowed("p", "read", MEMBER)
    assert len(builds) == 2


def test_sighup_handler_requests_reload_and_chains(rules, clock):
    assert threading.current_thread() is threading.main_thread()
    calls = []
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: calls.append(signum))
    try:
        holder = holder_for(rules, clock)
        first = holder.current()
        assert holder.install_sighup() is True
        signal.raise_signal(signal.SIGHUP)
        assert calls == [signal.SIGHUP]
        assert holder.current() is not first
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_install_sighup_off_main_thread_is_refused(rules, clock):
    holder = holder_for(rules, clock)
    result = []
    t = threading.Thread(target=lambda: result.append(holder.install_sighup()))
    t.start()
    t.join()
    assert result == [False]


def test_concurrent_current_calls_during_reload(rules, clock):
    holder = holder_for(rules, clock, interval=0)
    seen = []
    barrier = threading.Barrier(8)
    rules.write(section(".*", "member"))

    def worker():
        barrier.wait()
        for _ in range(50):
            seen.append(holder.current())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 400
    assert rules.builds == 2  # one reload for one change, however many threads checked
    assert holder.current().allowed("x", "read", MEMBER)


def test_policy_d_file_added_changed_or_removed_triggers_reload(tmp_path, clock):
    """A watched directory (policy.d) counts as changed when any file in it does."""
    rules_path = tmp_path / "rules.conf"
    rules_path.write_text(section(".*", "my_rule"))
    policy = tmp_path / "policy.yaml"
    policy.write_text('"my_rule": "role:admin"\n')
    policy_d = tmp_path / "policy.d"
    policy_d.mkdir()

    def build():
        return load_rules(str(rules_path), "policies", policy_file=str(policy))

    holder = RulesHolder(build, [str(rules_path), str(policy), str(policy_d)], 1, clock=clock)
    assert not holder.current().allowed("p", "read", MEMBER)

    override = policy_d / "member.yaml"
    override.write_text('"my_rule": "role:member"\n')
    clock.advance(1)
    assert holder.current().allowed("p", "read", MEMBER)

    override.write_text('"my_rule": "role:nobody_at_all"\n')
    os.utime(override, (2_000_000_000, 2_000_000_000))
    clock.advance(1)
    assert not holder.current().allowed("p", "read", MEMBER)
    assert not holder.current().allowed("p", "read", ADMIN)

    override.unlink()
    clock.advance(1)
    assert holder.current().allowed("p", "read", ADMIN)
