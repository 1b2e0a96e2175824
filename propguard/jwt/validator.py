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

Reasons (``TokenRejected.reason``) are short codes for logs and counters; no
token text is ever logged or returned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import jwt
import orjson

from propguard.jwt.claims import Identity, map_identity
from propguard.jwt.config import FilterConfig, IssuerConfig
from propguard.jwt.keys import MAX_KIDLESS_TRIES, BoundKey

LOG = logging.getLogger(__name__)

REFUSED_HEADERS = ("crit", "jku", "x5u", "x5c", "b64")


class TokenRejected(Exception):
    """A token that does not identify anyone; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
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


class Validator:
    """Validates tokens against a :class:`FilterConfig`'s issuers."""

    def __init__(self, config: FilterConfig, clock: Any = time.time) -> None:
        self.config = config
        self._clock = clock
        self._jwt = jwt.PyJWT({"verify_exp": False})
        self._cache: dict[bytes, tuple[Verified, IssuerConfig, float]] = {}

    def validate(self, token: str, *, use: str, allow_expired: bool = False) -> Verified:
        """Verify ``token`` for ``use`` ('user' or 'service'); raise :class:`TokenRejected`.

        A token verified less than ``token_cache_ttl`` ago (same text, same
        use) skips the header, key and signature work; its time checks
        (``exp``, the allow-expired window) run again every time.
        """
        token = token.strip()
        if len(token) > self.config.max_token_size:
            raise TokenRejected("oversize", f"{len(token)} bytes")
        if not self.config.token_cache_size:
            verified, _ = self._verify(token, use, allow_expired)
            return verified
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest() + use.encode()
        hit = self._cache.get(digest)
        if hit is not None:
            verified, issuer, until = hit
            if until > time.monotonic():
                expired = self._check_times(verified.claims, issuer, allow_expired)
                return (
                    verified if expired == verified.expired else replace(verified, expired=expired)
                )
            self._cache.pop(digest, None)
        verified, issuer = self._verify(token, use, allow_expired)
        cache = self._cache
        while len(cache) >= self.config.token_cache_size:
            try:
                cache.pop(next(iter(cache)), None)  # oldest first
            except (StopIteration, RuntimeError):  # emptied or resized by another thread
                break
        cache[digest] = (verified, issuer, time.monotonic() + self.config.token_cache_ttl)
        return verified

    def _verify(self, token: str, use: str, allow_expired: bool) -> tuple[Verified, IssuerConfig]:
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
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise TokenRejected("bad_alg", repr(alg))
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
        if issuer.allowed_types and header.get("typ") not in issuer.allowed_types:
            raise TokenRejected("bad_typ", repr(header.get("typ")))
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise TokenRejected("malformed", "kid is not a string")
        candidates = self._candidates(issuer, alg, kid)
        if not candidates:
            raise TokenRejected("unknown_kid" if kid else "no_key", issuer.name)
        claims = self._decode(token, issuer, candidates)
        expired = self._check_times(claims, issuer, allow_expired)
        return Verified(map_identity(claims, issuer.mapping, issuer.iss), claims, expired), issuer

    def _candidates(self, issuer: IssuerConfig, alg: str, kid: str | None) -> list[BoundKey]:
        if kid is None:
            found = [k for index in issuer.key_indexes() for k in index.all(alg)]
            return found[:MAX_KIDLESS_TRIES]
        found = [k for index in issuer.key_indexes() for k in index.by_kid(alg, kid)]
        if found:
            return found
        remote = issuer.remote
        if remote is not None and kid not in remote.current().kids and remote.refetch_for(kid):
            found = remote.current().by_kid(alg, kid)
            if found:
                return list(found)
        # Keys configured without a kid (PEM files, HMAC secrets) verify any kid.
        return [k for index in issuer.key_indexes() for k in index.kidless(alg)][:MAX_KIDLESS_TRIES]

    def _decode(
        self, token: str, issuer: IssuerConfig, candidates: list[BoundKey]
    ) -> dict[str, Any]:
        options = {"require": list(issuer.required_claims), "verify_exp": False}
        for key in candidates:
            try:
                return self._jwt.decode(
                    token,
                    key.key,
                    algorithms=[key.alg],
                    audience=list(issuer.audiences),
                    issuer=issuer.iss,
                    leeway=issuer.leeway,
                    options=options,
                )
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
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            raise TokenRejected("invalid", "exp is not a number")
        iat = claims.get("iat")
        if issuer.max_lifetime:
            start = iat if isinstance(iat, (int, float)) and not isinstance(iat, bool) else None
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
