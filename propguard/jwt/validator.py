"""One token -> its verified claims, or a reason it is refused.

Order of the checks, cheapest and most hostile-input-proof first:

1. size cap, before anything is decoded (PyJWT's decode has had DoS bugs on
   crafted input: GHSA-w7vc-732c-9m39, a ``RecursionError``);
2. the header: three segments, ``alg`` a string the issuer accepts (never
   ``none``), no ``crit``/``jku``/``x5u``/``x5c``/``b64`` (propguard never
   fetches a key a token points at), ``typ`` if the issuer restricts it;
3. the issuer, by exact ``iss`` (an unverified read only to *route* the token;
   PyJWT checks ``iss`` again after the signature);
4. keys bound to the header's ``alg``: by ``kid``, else those without one,
   else (a kid-less token) every key of that algorithm; an unknown ``kid``
   may trigger one JWKS refetch (:class:`~propguard.jwt.jwks.RemoteJWKS`);
5. ``jwt.decode`` with ``algorithms=[that one alg]``, the issuer's
   audiences, ``require``, leeway; then ``max_lifetime``; ``exp`` is checked
   here so an expired user token can be let through *only* within
   ``allow_expired_window`` when the caller (the filter) says a confirmed
   service token came along.

Every header and claim is type-checked before use (a list ``typ``, a
nesting deeper than :data:`MAX_DEPTH`, a non-finite ``exp``... are
``malformed``/``invalid``), and anything unforeseen while validating is a
refusal (reason ``error``), logged, never an exception out of the filter:
nothing in a token can cause a 5xx.

A verified token is remembered (``token_cache_ttl``) together with the key
set that verified it: a hit counts only while that JWKS key set is still the
issuer's current, fresh one (same object: a refresh that changes nothing
keeps it), so a key removed by rotation, or keys past ``jwks_max_stale``,
stop verifying cached tokens at once.

Reasons (``TokenRejected.reason``) are short codes for logs and counters; no
token text is ever logged or returned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import jwt
import orjson

from propguard.jwt.claims import ClaimRefused, Identity, map_identity
from propguard.jwt.config import FilterConfig, IssuerConfig
from propguard.jwt.keys import MAX_KIDLESS_TRIES, BoundKey, KeyIndex

LOG = logging.getLogger(__name__)

REFUSED_HEADERS = ("crit", "jku", "x5u", "x5c", "b64")
#: Deepest nesting of arrays and objects accepted in a token's header or
#: payload (PyJWT parses them again with ``json``, whose recursion limit a
#: deep enough document reaches: a ``RecursionError``, a 500, before any
#: signature check). Real tokens nest 3 or 4 levels.
MAX_DEPTH = 16

#: (verified, issuer, valid until (monotonic), the JWKS key set that verified it or None).
_Entry = tuple["Verified", IssuerConfig, float, KeyIndex | None]


class TokenRejected(Exception):
    """A token that does not identify anyone; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        detail = detail if len(detail) <= 120 else detail[:120] + "..."
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Verified:
    identity: Identity
    claims: Mapping[str, Any]
    expired: bool  # accepted within allow_expired_window only


def _b64json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return orjson.loads(base64.urlsafe_b64decode(padded))


def _too_deep(value: Any, depth: int = 0) -> bool:
    if isinstance(value, dict):
        return depth >= MAX_DEPTH or any(_too_deep(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return depth >= MAX_DEPTH or any(_too_deep(v, depth + 1) for v in value)
    return False


def _number(value: Any) -> bool:
    """A finite JSON number (not a boolean, not NaN or infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Validator:
    """Validates tokens against a :class:`FilterConfig`'s issuers."""

    def __init__(self, config: FilterConfig, clock: Any = time.time) -> None:
        self.config = config
        self._clock = clock
        self._jwt = jwt.PyJWT({"verify_exp": False})
        self._cache: dict[bytes, _Entry] = {}

    def validate(self, token: str, *, use: str, allow_expired: bool = False) -> Verified:
        """Verify ``token`` for ``use`` ('user' or 'service'); raise :class:`TokenRejected`.

        A token verified less than ``token_cache_ttl`` ago (same text, same
        use), by a key that is still current and fresh, skips the header, key
        and signature work; its time checks (``exp``, the allow-expired
        window) run again every time.
        """
        try:
            return self._validate(token, use, allow_expired)
        except TokenRejected:
            raise
        except Exception as exc:  # noqa: BLE001 - a token must never cause a 5xx
            LOG.warning(
                "Unexpected %s while validating a %s token: refused", type(exc).__name__, use
            )
            raise TokenRejected("error", type(exc).__name__) from None

    def _validate(self, token: str, use: str, allow_expired: bool) -> Verified:
        token = token.strip()
        if len(token) > self.config.max_token_size:
            raise TokenRejected("oversize", f"{len(token)} bytes")
        if not self.config.token_cache_size:
            verified, _, _ = self._verify(token, use, allow_expired)
            return verified
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest() + use.encode()
        hit = self._cache.get(digest)
        if hit is not None:
            verified, issuer, until, keys = hit
            if until > time.monotonic() and (keys is None or issuer.remote.current() is keys):
                expired = self._check_times(verified.claims, issuer, allow_expired)
                return (
                    verified if expired == verified.expired else replace(verified, expired=expired)
                )
            self._cache.pop(digest, None)
        verified, issuer, keys = self._verify(token, use, allow_expired)
        cache = self._cache
        while len(cache) >= self.config.token_cache_size:
            try:
                cache.pop(next(iter(cache)), None)  # oldest first
            except (StopIteration, RuntimeError):  # emptied or resized by another thread
                break
        cache[digest] = (verified, issuer, time.monotonic() + self.config.token_cache_ttl, keys)
        return verified

    def _verify(
        self, token: str, use: str, allow_expired: bool
    ) -> tuple[Verified, IssuerConfig, KeyIndex | None]:
        """Full verification; also the JWKS key set of the key that verified (None: a static key)."""
        parts = token.split(".")
        if len(parts) != 3 or not all(parts[:2]):
            raise TokenRejected("malformed", "not a compact JWS")
        try:
            header = _b64json(parts[0])
            unverified = _b64json(parts[1])
        except (ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
            raise TokenRejected("malformed", type(exc).__name__) from None
        if not isinstance(header, dict) or not isinstance(unverified, dict):
            raise TokenRejected("malformed", "header or payload is not an object")
        if _too_deep(header) or _too_deep(unverified):
            raise TokenRejected("malformed", f"nested deeper than {MAX_DEPTH}")
        typ = header.get("typ")
        if typ is not None and not isinstance(typ, str):
            raise TokenRejected("malformed", "typ is not a string")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise TokenRejected("bad_alg", ascii(alg))
        refused = [name for name in REFUSED_HEADERS if name in header]
        if refused:
            raise TokenRejected("refused_header", ",".join(refused))
        iss = unverified.get("iss")
        issuer = self.config.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise TokenRejected("unknown_issuer")
        if use not in issuer.token_use:
            raise TokenRejected("wrong_use", use)
        if alg not in issuer.algorithms:
            raise TokenRejected("bad_alg", alg)
        if issuer.allowed_types and typ not in issuer.allowed_types:
            raise TokenRejected("bad_typ", repr(typ)[:80])
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("malformed", "kid is not a string")
        candidates = self._candidates(issuer, alg, kid)
        if not candidates:
            raise TokenRejected("unknown_kid" if kid else "no_key", issuer.name)
        claims, keys = self._decode(token, issuer, candidates)
        expired = self._check_times(claims, issuer, allow_expired)
        try:
            identity = map_identity(claims, issuer.mapping, issuer.iss)
        except ClaimRefused as exc:
            raise TokenRejected("bad_claim", f"{exc.claim} cannot be a header value") from None
        return Verified(identity, claims, expired), issuer, keys

    def _candidates(
        self, issuer: IssuerConfig, alg: str, kid: str | None
    ) -> list[tuple[BoundKey, KeyIndex | None]]:
        """Keys to try, each with the JWKS key set it comes from (None: a static key)."""
        static = issuer.static_keys
        remote = issuer.remote
        fetched = remote.current() if remote is not None else None

        def tagged(pick: Any) -> list[tuple[BoundKey, KeyIndex | None]]:
            found: list[tuple[BoundKey, KeyIndex | None]] = [(k, None) for k in pick(static)]
            if fetched is not None:
                found.extend((k, fetched) for k in pick(fetched))
            return found

        if kid is None:
            return tagged(lambda index: index.all(alg))[:MAX_KIDLESS_TRIES]
        found = tagged(lambda index: index.by_kid(alg, kid))
        if found:
            return found
        if (
            remote is not None
            and fetched is not None
            and kid not in fetched.kids
            and remote.refetch_for(kid)
        ):
            fetched = remote.current()
            found = [(k, fetched) for k in fetched.by_kid(alg, kid)]
            if found:
                return found
        # Keys configured without a kid (PEM files, HMAC secrets) verify any kid.
        return tagged(lambda index: index.kidless(alg))[:MAX_KIDLESS_TRIES]

    def _decode(
        self,
        token: str,
        issuer: IssuerConfig,
        candidates: list[tuple[BoundKey, KeyIndex | None]],
    ) -> tuple[dict[str, Any], KeyIndex | None]:
        options = {"require": list(issuer.required_claims), "verify_exp": False}
        for key, keys in candidates:
            try:
                claims = self._jwt.decode(
                    token,
                    key.key,
                    algorithms=[key.alg],
                    audience=list(issuer.audiences),
                    issuer=issuer.iss,
                    leeway=issuer.leeway,
                    options=options,
                )
                return claims, keys
            except jwt.InvalidSignatureError:
                continue
            except jwt.MissingRequiredClaimError as exc:
                raise TokenRejected("missing_claim", exc.claim) from None
            except jwt.InvalidAudienceError:
                raise TokenRejected("bad_aud") from None
            except jwt.InvalidIssuerError:
                raise TokenRejected("bad_iss") from None
            except jwt.ImmatureSignatureError as exc:
                raise TokenRejected("not_yet_valid", str(exc)) from None
            except jwt.InvalidTokenError as exc:
                raise TokenRejected("invalid", type(exc).__name__) from None
        raise TokenRejected("bad_signature", issuer.name)

    def _check_times(
        self, claims: Mapping[str, Any], issuer: IssuerConfig, allow_expired: bool
    ) -> bool:
        """``exp`` and ``max_lifetime``; True when accepted only as an allowed expired token."""
        exp = claims.get("exp")
        if exp is None:
            if issuer.max_lifetime:
                raise TokenRejected("missing_claim", "exp (max_lifetime is set)")
            return False
        if not _number(exp):
            raise TokenRejected("invalid", "exp is not a finite number")
        iat = claims.get("iat")
        if issuer.max_lifetime:
            start = iat if _number(iat) else None
            if start is None:
                start = self._clock()
            if exp - start > issuer.max_lifetime + issuer.leeway:
                raise TokenRejected("too_long_lived", f"{exp - start:.0f} s")
        now = self._clock()
        if exp > now - issuer.leeway:
            return False
        window = self.config.allow_expired_window
        if allow_expired and window and exp > now - issuer.leeway - window:
            return True
        raise TokenRejected("expired")
