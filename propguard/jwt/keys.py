"""Verification keys, each bound to exactly one algorithm.

Why bound: a key that could verify "whatever ``alg`` the token names" is how
every RS->HS confusion (CVE-2015-9235, CVE-2017-11424, CVE-2022-29217) and
PyJWK allow-list bypass (GHSA-jq35-7prp-9v3f) worked. Here the algorithm of a
key comes from the configuration (``ALG:PATH``) or from the JWK itself, is
checked against the key's type and curve when loaded, and a token is only
ever verified with keys whose algorithm equals its header's ``alg``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

LOG = logging.getLogger(__name__)

HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
JWK_CURVES = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
RSA_MIN_BITS = 2048
#: Most keys a token without ``kid`` is tried against (bounds the work an
#: anonymous caller can cause per request).
MAX_KIDLESS_TRIES = 8


class KeyProblem(ValueError):
    """A key that cannot be used as configured (the message says why)."""


def is_hmac(alg: str) -> bool:
    return alg.startswith("HS")


def is_rsa(alg: str) -> bool:
    return alg[:2] in ("RS", "PS")


@dataclass(frozen=True, slots=True)
class BoundKey:
    """A key usable for one algorithm only; ``kid`` None for static keys."""

    alg: str
    key: Any  # a cryptography public key object, or bytes for HMAC
    kid: str | None = None
    source: str = ""


def check_key_matches(alg: str, key: Any, where: str) -> None:
    """Refuse a key whose type (or curve, or size) does not fit ``alg``."""
    if is_rsa(alg):
        if not isinstance(key, rsa.RSAPublicKey):
            raise KeyProblem(f"{where}: {alg} needs an RSA public key")
        if key.key_size < RSA_MIN_BITS:
            raise KeyProblem(f"{where}: RSA key of {key.key_size} bits (at least {RSA_MIN_BITS})")
    elif alg in EC_CURVES:
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != EC_CURVES[alg]:
            raise KeyProblem(f"{where}: {alg} needs an EC public key on {EC_CURVES[alg]}")
    elif alg == "EdDSA":
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise KeyProblem(f"{where}: EdDSA needs an Ed25519 public key")
    else:
        raise KeyProblem(f"{where}: {alg} is not a public-key algorithm")


def load_pem_public_key(alg: str, path: str) -> BoundKey:
    """A PEM public key (or an X.509 certificate's key) bound to ``alg``."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise KeyProblem(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        if b"BEGIN CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyProblem(f"{path}: not a PEM public key or certificate") from exc
    check_key_matches(alg, key, path)
    return BoundKey(alg=alg, key=key, source=path)


def load_hmac_secret(alg: str, path: str) -> BoundKey:
    """An HMAC secret from a file, long enough for ``alg`` and not a public key."""
    if not is_hmac(alg):
        raise KeyProblem(f"{path}: {alg} is not an HMAC algorithm")
    try:
        with open(path, "rb") as handle:
            secret = handle.read()
    except OSError as exc:
        raise KeyProblem(f"{path}: cannot read ({exc.strerror})") from exc
    secret = secret.rstrip(b"\r\n")
    if len(secret) < HMAC_MIN_BYTES[alg]:
        raise KeyProblem(
            f"{path}: an {alg} secret needs at least {HMAC_MIN_BYTES[alg]} bytes, "
            f"it has {len(secret)}"
        )
    stripped = secret.lstrip()
    if stripped.startswith((b"-----BEGIN", b"ssh-", b"ecdsa-", b"{")):
        raise KeyProblem(f"{path}: looks like a public key or a JWK, not an HMAC secret")
    return BoundKey(alg=alg, key=secret, source=path)


_JWK_LOADERS = {"RSA": RSAAlgorithm, "EC": ECAlgorithm, "OKP": OKPAlgorithm}
#: JWK members that are looked up in tables: a list or object there is a
#: ``TypeError`` (unhashable), so each must be a string before use.
_STRING_MEMBERS = ("kty", "crv", "alg", "use")


def jwk_algorithm(jwk: Mapping[str, Any], allowed: Iterable[str]) -> str | None:
    """The one algorithm a JWK may verify, or None when it is not usable here."""
    allowed = tuple(allowed)
    alg = jwk.get("alg")
    kty = jwk.get("kty")
    if alg is None:
        if kty == "EC":
            alg = JWK_CURVES.get(jwk.get("crv", ""))
        elif kty == "OKP" and jwk.get("crv") == "Ed25519":
            alg = "EdDSA"
        elif kty == "RSA":
            rsa_algs = [a for a in allowed if is_rsa(a)]
            alg = rsa_algs[0] if len(rsa_algs) == 1 else None
    if not isinstance(alg, str) or alg not in allowed:
        return None
    return alg


def keys_from_jwks(document: Any, allowed: Iterable[str], source: str) -> list[BoundKey]:
    """The usable signature keys of a JWKS document (others are skipped and logged).

    Raises :class:`KeyProblem` only when the document itself is malformed.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise KeyProblem(f"{source}: not a JWKS document (an object with a 'keys' array)")
    allowed = tuple(allowed)
    found: list[BoundKey] = []
    for index, jwk in enumerate(document["keys"]):
        where = f"{source} key {index}"
        if not isinstance(jwk, Mapping):
            LOG.warning("%s: not an object, skipped", where)
            continue
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            LOG.warning("%s: kid is not a string, skipped", where)
            continue
        wrong = [m for m in _STRING_MEMBERS if m in jwk and not isinstance(jwk[m], str)]
        if wrong:
            LOG.warning("%s (kid %r): %s not a string, skipped", where, kid, ",".join(wrong))
            continue
        if jwk.get("use", "sig") != "sig":
            continue
        loader = _JWK_LOADERS.get(jwk.get("kty", ""))
        alg = jwk_algorithm(jwk, allowed)
        if loader is None or alg is None:
            LOG.info("%s (kid %r): not usable for %s, skipped", where, kid, ",".join(allowed))
            continue
        if alg.startswith("PS"):
            loader = RSAPSSAlgorithm
        try:
            key = loader.from_jwk(json.dumps(dict(jwk)))
            if hasattr(key, "private_bytes"):  # a private JWK: keep only its public half
                key = key.public_key()
            check_key_matches(alg, key, where)
        except Exception as exc:  # noqa: BLE001 (from_jwk raises several kinds)
            LOG.warning("%s (kid %r): %s, skipped", where, kid, exc)
            continue
        found.append(BoundKey(alg=alg, key=key, kid=kid, source=source))
    return found


class KeyIndex:
    """An immutable lookup of keys by ``(alg, kid)``; swapped whole on refresh."""

    __slots__ = ("_by_kid", "_kidless", "_by_alg", "kids")

    def __init__(self, keys: Iterable[BoundKey] = ()) -> None:
        by_kid: dict[tuple[str, str], list[BoundKey]] = {}
        kidless: dict[str, list[BoundKey]] = {}
        by_alg: dict[str, list[BoundKey]] = {}
        for key in keys:
            by_alg.setdefault(key.alg, []).append(key)
            if key.kid is None:
                kidless.setdefault(key.alg, []).append(key)
            else:
                by_kid.setdefault((key.alg, key.kid), []).append(key)
        self._by_kid = by_kid
        self._kidless = kidless
        self._by_alg = by_alg
        self.kids = frozenset(kid for _, kid in by_kid)

    def __len__(self) -> int:
        return sum(map(len, self._by_alg.values()))

    def by_kid(self, alg: str, kid: str) -> list[BoundKey]:
        return self._by_kid.get((alg, kid), [])

    def kidless(self, alg: str) -> list[BoundKey]:
        """Keys configured without a kid (PEM files, HMAC secrets, kid-less JWKs)."""
        return self._kidless.get(alg, [])

    def all(self, alg: str) -> list[BoundKey]:
        return self._by_alg.get(alg, [])
