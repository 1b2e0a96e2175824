"""The proxy WSGI app (paste: ``egg:propguard#proxy``): forwards every request to Glance.

It is the last app of ``propguard serve``'s pipeline (after the auth layer
and the property filter) and knows nothing about Glance's API: the filter
above it decides, this app relays. Image data streams both ways in
``chunk_size`` pieces; only small JSON answers that name the upstream are
read whole (to point their links at the proxy).

Errors: no answer from the upstream is a 502 (refused, reset) or 504
(timeout) in the OpenStack JSON shape, the details logged, never sent. Once
the answer's headers went out, an upstream failure is raised from the body
iterator, so the WSGI server aborts the client's connection instead of
ending a truncated body cleanly.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from oslo_config import cfg
from urllib3.exceptions import HTTPError

from propguard import metrics
from propguard.bodies import input_stream
from propguard.errors import ApiError, error_response
from propguard.glance.request import canonical
from propguard.proxy import headers as hdrs
from propguard.proxy.canonical import CANONICAL_KEY
from propguard.proxy.links import proxy_base_url, rewrite_json, rewrite_url
from propguard.proxy.upstream import Upstream, UpstreamError, UpstreamOptions, classify

LOG = logging.getLogger(__name__)

CHUNK = 1024 * 1024
#: Pieces of a *chunked* request body sent upstream: each becomes one chunk,
#: and uWSGI (Glance's recommended server) refuses a chunk over its
#: ``chunked-input-limit``, 1 MiB by default ("unable to receive chunked
#: part", 500). python-glanceclient sends 64 KiB; 256 KiB keeps well under the
#: limit and costs less per byte (a Content-Length body has no chunk framing
#: and goes in ``CHUNK`` pieces).
UPLOAD_CHUNK = 256 * 1024
#: JSON answers at most this large are searched for upstream links.
MAX_LINK_REWRITE = 4 * 1024 * 1024
MESSAGES = {
    502: "The image service is not reachable.",
    504: "The image service did not answer in time.",
}


class ClientDisconnected(Exception):
    """The client's body ended before its ``Content-Length``: the upload is aborted."""


class UpstreamAborted(Exception):
    """The upstream failed after the answer started: raised so the server drops the connection."""


class RequestBody:
    """The request body in pieces: exactly ``length`` bytes, or to the end when chunked.

    ``done`` tells whether all of it was sent: after an early upstream answer
    it was not, and that connection must not be reused (the upstream would
    read the rest as the next request).
    """

    def __init__(self, stream: Any, length: int | None) -> None:
        self.stream = stream
        self.remaining = length
        self.done = False

    def __iter__(self) -> Iterator[bytes]:
        while self.remaining is None or self.remaining > 0:
            want = UPLOAD_CHUNK if self.remaining is None else min(CHUNK, self.remaining)
            try:
                chunk = self.stream.read(want)
            except Exception as exc:  # the server's reader: reset, bad chunk framing
                raise ClientDisconnected(f"request body could not be read: {exc}") from exc
            if not chunk:
                if self.remaining:
                    raise ClientDisconnected(f"request body ended {self.remaining} bytes early")
                break
            if self.remaining is not None:
                self.remaining -= len(chunk)
            yield chunk
        self.done = True


def request_target(environ: dict[str, Any]) -> str:
    """Path and query for the upstream: the canonical path the layers above matched, re-quoted.

    The canonical filter at the head of the pipeline set ``PATH_INFO``
    (:mod:`propguard.proxy.canonical`). Without it (another ``--paste-ini``),
    or if a layer changed ``PATH_INFO`` since, the path is forwarded only if
    it is its own canonical form: else Glance could route another path than
    the one propguard's routes matched, and the request is refused
    (:class:`~propguard.errors.ApiError`).
    """
    request = environ.get(CANONICAL_KEY)
    if request is None or request.path != environ.get("PATH_INFO"):
        request = canonical(environ, require_route=False)
        if request.accept is not None or request.path != environ.get("PATH_INFO", ""):
            raise ApiError(400, "The request target is not in canonical form.")
    return request.target(environ.get("QUERY_STRING"))


class ProxyApp:
    """WSGI app relaying each request to :class:`Upstream`."""

    def __init__(
        self,
        upstream: Upstream,
        trusted_proxies: tuple[str, ...] = (),
        rewrite_bases: tuple[str, ...] = (),
    ) -> None:
        self.upstream = upstream
        self.trusted_proxies = trusted_proxies
        self.rewrite_bases = tuple(dict.fromkeys((upstream.base_url, *rewrite_bases)))

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        method = environ["REQUEST_METHOD"]
        try:
            target = request_target(environ)
            headers = hdrs.request_headers(environ, self.trusted_proxies)
        except ApiError as exc:
            return error_response(exc.status, exc.message)(environ, start_response)
        except hdrs.InvalidHost:
            message = "The Host header is not a valid host[:port]."
            return error_response(400, message)(environ, start_response)
        body, chunked = self._request_body(environ, headers)
        started = time.perf_counter()
        try:
            response = self.upstream.open(method, target, headers, body, chunked)
            metrics.upstream_answered(method, response.status, time.perf_counter() - started)
        except UpstreamError as exc:
            metrics.upstream_failed(exc.status)
            LOG.warning(
                "propguard proxy: %s %s: upstream %s (%s)",
                method,
                environ.get("PATH_INFO"),
                exc.reason,
                environ.get("openstack.request_id", "-"),
            )
            return error_response(exc.status, MESSAGES[exc.status])(environ, start_response)
        except ClientDisconnected as exc:
            LOG.info("propguard proxy: %s %s: %s", method, environ.get("PATH_INFO"), exc)
            return error_response(400, "The request body was incomplete.")(environ, start_response)
        # After an early answer (401, 413, ...) the body was not all sent: the
        # answer is relayed, and that connection is closed, not reused.
        reusable = body is None or body.done
        return self._respond(environ, start_response, response, reusable)

    def _request_body(
        self, environ: dict[str, Any], headers: dict[str, str]
    ) -> tuple[RequestBody | None, bool]:
        """The body to stream and whether it goes chunked.

        Chunked only when the client sent it chunked: gunicorn sets
        ``wsgi.input_terminated`` on every request, and a GET must not gain
        an (empty) chunked body on its way upstream.
        """
        length_text = environ.get("CONTENT_LENGTH") or ""
        if length_text:
            length = int(length_text)  # the server validated it
            headers["Content-Length"] = str(length)
            if length:
                return RequestBody(input_stream(environ), length), False
            return None, False
        if "chunked" in (environ.get("HTTP_TRANSFER_ENCODING") or "").lower():
            stream = input_stream(environ)
            if stream is not None:
                return RequestBody(stream, None), True
        return None, False

    def _respond(
        self, environ: dict[str, Any], start_response: Callable, response: Any, reusable: bool
    ) -> Any:
        proxy_base = proxy_base_url(environ)
        items = hdrs.response_headers(response.headers.items())
        items = [
            (name, rewrite_url(value, self.rewrite_bases, proxy_base))
            if name.lower() in ("location", "content-location")
            else (name, value)
            for name, value in items
        ]
        status = f"{response.status} {response.reason or ''}".rstrip()
        if _rewritable_json(response):
            try:
                data = response.read()
            except (HTTPError, OSError) as exc:
                response.close()
                response.release_conn()
                error = classify(exc)
                metrics.upstream_failed(error.status)
                return error_response(error.status, MESSAGES[error.status])(environ, start_response)
            if not reusable:
                response.close()
            response.release_conn()
            rewritten = rewrite_json(data, self.rewrite_bases, proxy_base)
            if rewritten is not None:
                data = rewritten
                items = [(n, v) for n, v in items if n.lower() != "content-length"]
                items.append(("Content-Length", str(len(data))))
            start_response(status, items)
            return [data]
        # The first piece is read before the answer starts: an upstream that
        # fails before sending any body byte is still a clean 502/504.
        try:
            first = response.read1(CHUNK, decode_content=False)
        except (HTTPError, OSError) as exc:
            response.close()
            response.release_conn()
            error = classify(exc)
            metrics.upstream_failed(error.status)
            return error_response(error.status, MESSAGES[error.status])(environ, start_response)
        start_response(status, items)
        return _stream(response, environ, reusable, first)


def _rewritable_json(response: Any) -> bool:
    content_type = (response.headers.get("Content-Type") or "").split(";", 1)[0].strip()
    length = response.headers.get("Content-Length")
    return (
        content_type == "application/json"
        and not response.headers.get("Content-Encoding")
        and length is not None
        and length.isdigit()
        and int(length) <= MAX_LINK_REWRITE
    )


def _stream(
    response: Any, environ: dict[str, Any], reusable: bool, first: bytes
) -> Iterator[bytes]:
    """The upstream body in pieces; a failure mid-way raises (the server aborts the connection).

    ``read1``: what the socket has, up to ``CHUNK`` (a slow upstream's bytes
    are relayed as they come, not held until a whole chunk is there).
    """
    complete = False
    chunk = first
    try:
        while chunk:
            yield chunk
            chunk = response.read1(CHUNK, decode_content=False)
        complete = True
    except (HTTPError, OSError) as exc:
        metrics.upstream_failed("aborted")
        LOG.warning(
            "propguard proxy: %s %s: upstream failed mid-response: %s (%s)",
            environ.get("REQUEST_METHOD"),
            environ.get("PATH_INFO"),
            type(exc).__name__,
            environ.get("openstack.request_id", "-"),
        )
        raise UpstreamAborted("upstream failed mid-response") from exc
    finally:
        if complete and reusable:
            response.release_conn()
        else:  # a half-read response must not go back to the pool
            response.close()
            response.release_conn()


#: The proxy app's paste options, typed as oslo.config types them (``insecure =
#: ture`` is an error, not false; an unknown key stops ``propguard serve``).
PROXY_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "upstream",
        help="Glance's URL: http:// or https://, optionally with a path prefix. Required; "
        "propguard serve sets it from --upstream.",
    ),
    cfg.FloatOpt(
        "connect_timeout",
        default=10.0,
        min=0,
        help="Seconds to connect to Glance; then 504.",
    ),
    cfg.FloatOpt(
        "read_timeout",
        default=600.0,
        min=0,
        help="Seconds one socket operation with Glance may wait (idle time, not a total: long "
        "uploads are not cut); then 504. Keep it at least as long as Glance's own.",
    ),
    cfg.IntOpt(
        "pool_maxsize",
        default=16,
        min=1,
        help="Pooled connections to Glance per worker process.",
    ),
    cfg.StrOpt("ca_file", help="CA bundle that verifies Glance's TLS certificate."),
    cfg.BoolOpt(
        "insecure",
        default=False,
        help="Do not verify Glance's TLS certificate (by default it is verified).",
    ),
    cfg.ListOpt(
        "trusted_proxies",
        default=[],
        help="Addresses of load balancers in front of the proxy whose Forwarded and "
        "X-Forwarded-* headers are kept (this hop is appended); anyone else's are replaced. "
        "propguard serve sets it from --trusted-proxy.",
    ),
    cfg.ListOpt(
        "upstream_public_urls",
        default=[],
        help="More base URLs Glance writes into links (e.g. its public_endpoint): rewritten to "
        "the proxy's URL as the client addressed it, as links naming upstream are.",
    ),
]


def _words(items: list[str]) -> tuple[str, ...]:
    """List items split on blanks too (``a b, c``): the form serve.ini documents."""
    return tuple(word for item in items for word in item.split())


def app_factory(global_conf: dict[str, Any] | None = None, **local_conf: Any) -> ProxyApp:
    """paste.deploy entry point (``egg:propguard#proxy``).

    Options (paste section; ``propguard serve`` sets ``upstream`` and
    ``trusted_proxies`` from its command line): ``upstream`` (required),
    ``connect_timeout`` (10 s), ``read_timeout`` (600 s, idle time per socket
    operation), ``pool_maxsize`` (16), ``ca_file``, ``insecure`` (false),
    ``trusted_proxies`` (addresses whose forwarding headers are kept),
    ``upstream_public_urls`` (more base URLs Glance writes into links, e.g.
    its ``public_endpoint``: rewritten to the proxy's URL too). Read by
    :func:`propguard.opts.paste_values`, as the filter's: an unknown key or a
    bad value raises ``ValueError`` and the proxy does not start.
    """
    from propguard import opts
    from propguard.proxy.server import TRUSTED_ENV, UPSTREAM_ENV

    names = {opt.dest for opt in PROXY_OPTS}
    local = dict(local_conf)
    # propguard serve's --upstream / --trusted-proxy win over the paste file.
    if os.environ.get(UPSTREAM_ENV):
        local["upstream"] = os.environ[UPSTREAM_ENV]
        local["trusted_proxies"] = os.environ.get(TRUSTED_ENV, "")
    # paste [DEFAULT] values reach every section: only ours are taken from there.
    inherited = {k: v for k, v in (global_conf or {}).items() if k in names and k not in local}
    values = {opt.dest: opt.default for opt in PROXY_OPTS}
    values.update(opts.paste_values(inherited, PROXY_OPTS, "propguard proxy"))
    values.update(opts.paste_values(local, PROXY_OPTS, "propguard proxy"))
    if not values["upstream"]:
        raise ValueError("propguard proxy: 'upstream' is not set (propguard serve --upstream URL)")
    options = UpstreamOptions(
        url=values["upstream"],
        connect_timeout=values["connect_timeout"],
        read_timeout=values["read_timeout"],
        pool_maxsize=values["pool_maxsize"],
        ca_file=values["ca_file"] or None,
        insecure=values["insecure"],
    )
    return ProxyApp(
        Upstream(options),
        trusted_proxies=_words(values["trusted_proxies"]),
        rewrite_bases=tuple(u.rstrip("/") for u in _words(values["upstream_public_urls"])),
    )
