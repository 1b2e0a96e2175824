"""``propguard serve``: the filter as a streaming reverse proxy (not built yet: issue "Sidecar proxy").

Planned home of: the upstream WSGI app that forwards to a remote Glance
(streaming image data), wrapped by the unchanged
:class:`propguard.middleware.PropertyProtectionFilter`, and the JWT identity
filter (PyJWT) that fulfils the ``propguard.identity`` contract of
:mod:`propguard.identity`.
"""
