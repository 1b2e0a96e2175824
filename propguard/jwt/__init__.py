"""JWT identity filter: PyJWT validation of user and service tokens.

``egg:propguard#jwt`` takes the place of keystonemiddleware's ``auth_token``
in a Glance pipeline (glance-api's own, or ``propguard serve``'s) when
identity comes from an OIDC provider or another JWT issuer instead of
Keystone. It sets exactly what ``auth_token`` sets (after stripping every
identity header a client sent), plus ``environ['propguard.identity']`` (the
contract of :mod:`propguard.identity`), so Glance's ``context`` filter and
propguard's property filter cannot tell the difference.

Modules, one job each:

* :mod:`~propguard.jwt.opts`: the options (paste local conf or oslo.config);
* :mod:`~propguard.jwt.config`: options -> validated :class:`IssuerConfig`;
  a bad value stops the filter at load, naming the option;
* :mod:`~propguard.jwt.keys`: keys, each bound to one algorithm;
* :mod:`~propguard.jwt.jwks`: a JWKS URL kept fresh by a background thread;
* :mod:`~propguard.jwt.claims`: claims -> identity (roles paths, ids);
* :mod:`~propguard.jwt.validator`: one token -> verified claims, or a reason;
* :mod:`~propguard.jwt.filter`: the WSGI filter and its paste factory;
* :mod:`~propguard.jwt.token_cli`: ``propguard token`` (development tokens).
"""
