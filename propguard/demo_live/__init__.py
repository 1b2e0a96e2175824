"""``propguard demo``: the tour on real services started on 127.0.0.1.

A real Keystone (sqlite, fernet keys) and a real Glance 33 (sqlite, file
store) under uWSGI, ``propguard serve`` in front with the rules, and the
tour of :mod:`propguard.demo` walked over HTTP with real tokens. Modules:
``supervisor`` (child processes, ports, clean stop), ``keystone``,
``glance``, ``proxy`` (configuration of each service), ``indexer`` (the
broker tap), ``tour`` (the HTTP tour and its live chapters), ``main``.
The in-process tour stays in :mod:`propguard.demo` (``propguard demo
--in-process``).
"""
