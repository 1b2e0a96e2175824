"""Notification filter for indexers (not built yet: issue "Notification filter for indexers").

Planned home of: the filter modes over a decoded Glance notification
(``strip``, ``views``, ``annotate``; pure functions of a
:class:`~propguard.rules.RuleEngine` and :class:`~propguard.credentials.Credentials`
built with ``Credentials.for_roles``), the ``propguard`` oslo.messaging
notification driver for glance-api, and the ``propguard notify-filter``
listener service. It builds its engine with :func:`propguard.rules.open_rules`
and never imports the paste filter.
"""
