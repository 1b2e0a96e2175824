"""pytest plugin loaded (``-p propguard_glance_plugin``) into the subprocess that
runs Glance 33.0.0's own functional tests; see ``test_glance_suite.py``.

It puts propguard into every pipeline of the paste config that
``glance.tests.functional.SynchronousAPIBase`` writes, right before Glance's
context filter (``context``, or ``unauthenticated-context`` in the
version-negotiation pipeline), i.e. after ``fakeauth`` where a pipeline has
it. Set by the environment:

``PROPGUARD_GLANCE_MODE``
    ``baseline``: no propguard (Glance's tests as they are);
    ``transparency``: propguard with ``PROPGUARD_GLANCE_PERMISSIVE_RULES``
    (everything allowed to everyone). A test that configures Glance's own
    ``property_protection_file`` keeps it: propguard is then merely in front;
    ``protections``: a test that configures ``property_protection_file``
    gets it unset in Glance and enforced by propguard instead, in the format
    the test names (``property_protection_rule_format``), with the policy
    file the test gives Glance (``[oslo_policy] policy_file``) plus the rules
    the test adds to the enforcer it hands Glance, and with
    ``PROPGUARD_GLANCE_SERVICE_ROLE_MODE`` (``strict``/``union``).
``PROPGUARD_GLANCE_EXCLUDE``
    test ids (one a line) deselected, exactly (see
    ``pytest_collection_modifyitems``).
``PROPGUARD_GLANCE_RECORD``
    a JSON file written at the end: per test id, its outcome and what the
    harness saw (Glance's protection settings, propguard filters built and
    requests they handled), so the caller can check that propguard really
    was in the pipeline of every test that built one.

Besides propguard, four shims; the first three apply in every mode, the
baseline included, so they change nothing between the runs compared:

* oslo.db's ``[database]`` options are registered as Glance's own runner
  gets them (see ``_install``);
* ``TestCase`` subclasses without a test method (``ImageAPIHelper``) are not
  collected, as unittest's loader (Glance's stestr) does not collect them;
  pytest would instantiate them with ``runTest`` and fail;
* ``localhost.`` resolves as ``localhost`` (see ``_resolve_localhost_dot``);
* with propguard first in a pipeline, the tests' ``self.api(request)`` call
  is made as WSGI (see ``RequestCaller``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import unittest
from typing import Any

import pytest

MODE = os.environ.get("PROPGUARD_GLANCE_MODE", "baseline")
PERMISSIVE_RULES = os.environ.get("PROPGUARD_GLANCE_PERMISSIVE_RULES", "")
SERVICE_ROLE_MODE = os.environ.get("PROPGUARD_GLANCE_SERVICE_ROLE_MODE", "strict")
RECORD_FILE = os.environ.get("PROPGUARD_GLANCE_RECORD", "")

MODES = ("baseline", "transparency", "protections")
#: Glance's context filters; propguard goes right before the first one of a pipeline.
CONTEXT_FILTERS = ("context", "unauthenticated-context")

_records: dict[str, dict[str, Any]] = {}
_collected: list[str] = []
_excluded: list[str] = []
_current: dict[str, Any] = {}


def _record() -> dict[str, Any]:
    """The record of the test running now (a throwaway one outside tests)."""
    return _current.setdefault("record", _new_record())


def _new_record() -> dict[str, Any]:
    return {
        "outcome": None,
        "longrepr": "",
        "servers": 0,
        "glance_protection": None,
        "propguard_rules": [],
        "propguard_filters": 0,
        "propguard_requests": 0,
        "glance_property_rules": 0,
    }


# -- collection --------------------------------------------------------------


def pytest_pycollect_makeitem(collector, name, obj):
    """Skip ``TestCase`` subclasses without a test method, as unittest's loader does."""
    if (
        isinstance(obj, type)
        and issubclass(obj, unittest.TestCase)
        and not unittest.defaultTestLoader.getTestCaseNames(obj)
    ):
        return []
    return None


# -- the paste config -----------------------------------------------------------


def insert_propguard(paste_text: str, options: dict[str, str]) -> str:
    """``paste_text`` with ``propguard`` before the context filter of every
    pipeline and a ``[filter:propguard]`` section with ``options`` (replacing
    any earlier one). A pipeline without a context filter is an error: the
    harness must not leave one unguarded without saying so."""
    out: list[str] = []
    skipping = False
    for line in paste_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped == "[filter:propguard]"
        if skipping:
            continue
        match = re.match(r"^(\s*pipeline\s*=\s*)(.*)$", line)
        if match:
            names = match.group(2).split()
            if "propguard" not in names:
                at = next((i for i, n in enumerate(names) if n in CONTEXT_FILTERS), None)
                if at is None:
                    raise RuntimeError(f"pipeline without a context filter: {line!r}")
                names.insert(at, "propguard")
            line = match.group(1) + " ".join(names)
        out.append(line)
    out.append("[filter:propguard]")
    out.append("paste.filter_factory = propguard.middleware:filter_factory")
    out.extend(f"{key} = {value}" for key, value in options.items())
    return "\n".join(out) + "\n"


def _policy_rules_of(test: Any) -> dict[str, str]:
    """Rules a test adds to the enforcer it hands Glance (``self.policy``, as
    ``TestPropertyProtectionWithPolicies`` does with ``glance_creator``)."""
    from oslo_policy import policy as oslo_policy

    enforcer = getattr(test, "policy", None)
    if not isinstance(enforcer, oslo_policy.Enforcer):
        return {}
    return {str(name): str(rule) for name, rule in enforcer.rules.items()}


def _propguard_options(test: Any) -> dict[str, str]:
    """Options for this test's propguard filter (and Glance's protections unset
    where propguard takes them over)."""
    from oslo_config import cfg

    conf = cfg.CONF
    protection_file = conf.property_protection_file
    rule_format = conf.property_protection_rule_format
    record = _record()
    options = {
        # Glance's functional tests send identity headers with no auth_token
        # before them (see test_glance_suite.py for why this is sound).
        "trust_identity_headers": "true",
    }
    if MODE == "protections" and protection_file:
        options["rules_file"] = protection_file
        options["rule_format"] = rule_format
        options["service_role_mode"] = SERVICE_ROLE_MODE
        if rule_format == "policies":
            policy_file = conf.oslo_policy.policy_file
            if policy_file and not os.path.isabs(policy_file):
                policy_file = conf.find_file(policy_file) or policy_file
            added = _policy_rules_of(test)
            record["policy_rules_added"] = added
            if added:
                # The test's own file plus what it added to Glance's enforcer,
                # in one file next to the test's (policy.d is not involved).
                import yaml

                with open(policy_file, encoding="utf-8") as f:
                    merged = yaml.safe_load(f) or {}
                merged.update(added)
                policy_file = os.path.join(test.test_dir, "propguard-policy.yaml")
                with open(policy_file, "w", encoding="utf-8") as f:
                    yaml.safe_dump(merged, f)
            options["policy_file"] = policy_file
        # propguard enforces instead of Glance (README: unset Glance's own).
        test.config(property_protection_file=None)
    else:
        options["rules_file"] = PERMISSIVE_RULES
    record["propguard_rules"].append(
        {
            k: options[k]
            for k in ("rules_file", "rule_format", "service_role_mode", "policy_file")
            if k in options
        }
    )
    return options


# -- patches -------------------------------------------------------------------


class RequestCaller:
    """Lets Glance's tests call a WSGI app the way they call Glance's filters.

    ``SynchronousAPIBase._call_api`` calls the outermost app of the pipeline
    with a ``webob.Request`` alone (``self.api(req)``), which only
    ``webob.dec.wsgify`` filters (all of Glance's) accept. With propguard
    first in a pipeline (``propguard context rootapp``) that call must be
    made as WSGI: ``req.get_response(app)`` is what ``wsgify`` itself does
    with a request, and ``response.request = req`` what Glance's outermost
    filter adds (``glance.common.wsgi.Middleware.__call__``; a test reads
    ``response.request.headers``). A server always calls
    ``app(environ, start_response)``, and no client sees ``response.request``.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, request: Any, start_response: Any = None) -> Any:
        if start_response is not None:
            return self.app(request, start_response)
        response = request.get_response(self.app)
        response.request = request
        return response


def _install() -> None:
    # Glance's runner (stestr over glance/tests/functional) imports every test
    # module, and some of them register oslo.db's [database] options at import
    # (functional/db/test_sqlalchemy.py, test_glance_manage.py, through
    # glance.db.migration); SynchronousAPIBase.setup_database relies on that.
    # Collecting only v2/ and test_gzip_middleware.py imports none of them.
    import glance.db.migration  # noqa: F401
    from glance.common import property_utils
    from glance.tests import functional

    from propguard import middleware

    original_start = functional.SynchronousAPIBase.start_server

    def start_server(self, *args, **kwargs):
        from oslo_config import cfg

        record = _record()
        record["servers"] += 1
        if cfg.CONF.property_protection_file:
            record["glance_protection"] = {
                "file": cfg.CONF.property_protection_file,
                "format": cfg.CONF.property_protection_rule_format,
            }
        if MODE != "baseline":
            options = _propguard_options(self)
            with open(self.paste_config, encoding="utf-8") as f:
                text = f.read()
            with open(self.paste_config, "w", encoding="utf-8") as f:
                f.write(insert_propguard(text, options))
        result = original_start(self, *args, **kwargs)
        if isinstance(self.api, middleware.PropertyProtectionFilter):
            self.api = RequestCaller(self.api)
        return result

    functional.SynchronousAPIBase.start_server = start_server

    # Glance's own enforcement: counted, so the caller can tell who enforced.
    rules_class = property_utils.PropertyRules
    original_rules_init = rules_class.__init__

    def rules_init(self, *args, **kwargs):
        _record()["glance_property_rules"] += 1
        return original_rules_init(self, *args, **kwargs)

    rules_class.__init__ = rules_init

    filter_class = middleware.PropertyProtectionFilter
    original_init = filter_class.__init__
    original_call = filter_class.__call__

    def __init__(self, application, options):
        original_init(self, application, options)
        _record()["propguard_filters"] += 1

    def __call__(self, environ, start_response):
        _record()["propguard_requests"] += 1
        return original_call(self, environ, start_response)

    filter_class.__init__ = __init__
    filter_class.__call__ = __call__


def _resolve_localhost_dot() -> None:
    """Resolve ``localhost.`` as ``localhost``, in every mode, baseline included.

    Glance checks a web-download URI by resolving its host with a trailing
    dot (``glance.common.utils``: ``getaddrinfo('localhost.', 80)``); the
    tests serve the image from ``http://localhost:<port>/``. A machine with a
    DNS resolver (Glance's CI) answers 127.0.0.1; this one has only
    ``/etc/hosts``, whose ``localhost`` does not match ``localhost.``, so
    Glance would refuse every such import with 400. Loopback only: nothing
    else is resolved differently.
    """
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.lower() == "localhost.":
            host = "localhost"
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo


def pytest_configure(config):
    if MODE not in MODES:
        raise pytest.UsageError(f"PROPGUARD_GLANCE_MODE must be one of {MODES}, not {MODE!r}")
    if MODE != "baseline" and not os.path.isfile(PERMISSIVE_RULES):
        raise pytest.UsageError("PROPGUARD_GLANCE_PERMISSIVE_RULES must name the permissive file")
    _resolve_localhost_dot()
    _install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _current["record"] = _records.setdefault(item.nodeid, _new_record())
    try:
        return (yield)
    finally:
        _current.pop("record", None)


def pytest_runtest_logreport(report):
    record = _records.setdefault(report.nodeid, _new_record())
    if report.failed:
        record["outcome"] = "failed"
        record["longrepr"] += f"[{report.when}] {report.longreprtext[-4000:]}\n"
    elif report.skipped and record["outcome"] != "failed":
        record["outcome"] = "skipped"
        record["longrepr"] += f"[{report.when}] {report.longreprtext[-500:]}\n"
    elif report.when == "call" and record["outcome"] is None:
        record["outcome"] = "passed"


def pytest_collection_modifyitems(session, config, items):
    """Deselect exactly the ids in ``PROPGUARD_GLANCE_EXCLUDE`` (one per line).

    Not ``--deselect``, which matches prefixes (``::test_stage`` would also
    drop ``::test_stage_with_known_size``). An id that matches no test is an
    error: an exclusion list must not go stale unseen.
    """
    wanted = set(filter(None, os.environ.get("PROPGUARD_GLANCE_EXCLUDE", "").splitlines()))
    if not wanted:
        return
    keep = [item for item in items if item.nodeid not in wanted]
    dropped = [item for item in items if item.nodeid in wanted]
    unknown = wanted - {item.nodeid for item in dropped}
    if unknown:
        raise pytest.UsageError(f"PROPGUARD_GLANCE_EXCLUDE names no test: {sorted(unknown)}")
    config.hook.pytest_deselected(items=dropped)
    items[:] = keep
    _excluded.extend(item.nodeid for item in dropped)


def pytest_collection_finish(session):
    _collected.extend(item.nodeid for item in session.items)


def pytest_sessionfinish(session, exitstatus):
    """Write the record: one file per process (``RECORD_FILE.<xdist worker>``
    in an xdist worker, ``RECORD_FILE`` otherwise); the caller merges them.
    An xdist controller runs no test and writes nothing."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not RECORD_FILE or (worker is None and session.config.getoption("dist", "no") != "no"):
        return
    path = f"{RECORD_FILE}.{worker}" if worker else RECORD_FILE
    record = {
        "mode": MODE,
        "service_role_mode": SERVICE_ROLE_MODE,
        "collected": _collected,
        "excluded": _excluded,
        "tests": _records,
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
