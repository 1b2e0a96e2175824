"""Notification filter for indexers: Glance's notifications with the API's property rules applied.

Modules, from the pure core outwards (see ``docs/notifications.md``):

``core``
    the filter modes (``strip``, ``views``, ``annotate``) over a decoded
    notification; decisions are the rules engine's, with
    :class:`~propguard.credentials.Credentials` built by ``Credentials.for_roles``.
    No messaging, no I/O.
``wire``
    oslo.messaging's v2 envelope and bare notifications, decoded and encoded
    (orjson), without oslo.messaging.
``opts``
    ``[propguard_notifications]`` (outputs) and ``[propguard_notify_filter]``
    (the service), ``list_opts()``.
``driver``
    the ``propguard`` oslo.messaging notification driver for glance-api.
``amqp``, ``service``
    ``propguard notify-filter``: the at-least-once listener service (py-amqp).
``shadow``
    ``shadow_rules_file`` for notifications: the divergence records and
    counters, and why ``enforce = false`` is refused.
``cli``
    the ``notify-filter`` command (``--stdin`` or the service).
``samples``
    Glance-shaped notifications for tests, benchmarks and trials.

Every adapter builds its engine with :func:`propguard.rules.loading.open_rules`
and never imports the paste filter.
"""
