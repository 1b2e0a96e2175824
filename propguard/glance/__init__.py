"""Knowledge of the Glance v2 image API, apart from any WSGI adapter.

* :mod:`~propguard.glance.attributes`: core attributes, columns, list keys;
* :mod:`~propguard.glance.routes`: the routes propguard checks, matched as Glance routes them;
* :mod:`~propguard.glance.patch`: Glance's JSON-patch media types and pointer decoding;
* :mod:`~propguard.glance.documents`: image JSON in Glance's responses;
* :mod:`~propguard.glance.listing`: ``GET /v2/images`` filters, post-filter, refill and links;
* :mod:`~propguard.glance.collation`: property names as Glance's database compares them.
"""
