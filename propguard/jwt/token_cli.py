"""``propguard token``: mint a development JWT that the JWT filter accepts.

For trying the JWT filter (and ``propguard demo --jwt``) without an OIDC
provider. HS256 signs with a secret file (created with 48 random bytes if it
does not exist); RS256/ES256 sign with a key pair in ``--key-dir`` (generated
if missing: ``<alg>-private.pem``, ``<alg>-public.pem`` and ``jwks.json``,
whose key id is the RFC 7638 thumbprint). Every file is written atomically
(a temporary file, then a rename; a new private key or secret by a link that
fails if another call made one first, whose key is then used), and
``jwks.json`` is updated under a lock, so parallel calls never fail or see a
partial file. The token goes to stdout, notes to stderr. Not for production:
a real provider keeps its signing key elsewhere.

Filter settings that accept these tokens (RS256 example)::

    iss = <--issuer>
    audiences = <--audience>
    algorithms = RS256
    public_key_files = RS256:<key-dir>/RS256-public.pem   (or jwks_file = <key-dir>/jwks.json)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

HELP = "mint a development JWT for the JWT identity filter (stdout)"
DEFAULT_ISSUER = "https://propguard.example/dev"
DEFAULT_AUDIENCE = "glance"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``token`` to the ``propguard`` command's sub-parsers."""
    p = subparsers.add_parser(
        "token",
        help=HELP,
        description=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--alg", choices=("HS256", "RS256", "ES256"), default="RS256")
    p.add_argument(
        "--secret-file", metavar="FILE", help="HS256: the shared secret (created if missing)"
    )
    p.add_argument(
        "--key-dir", metavar="DIR", help="RS256/ES256: where the key pair is (generated if missing)"
    )
    p.add_argument("--issuer", default=DEFAULT_ISSUER, help=f"iss (default: {DEFAULT_ISSUER})")
    p.add_argument(
        "--audience", default=DEFAULT_AUDIENCE, help=f"aud (default: {DEFAULT_AUDIENCE})"
    )
    p.add_argument("--user-id", help="sub (default: demo-user, or nova with --service)")
    p.add_argument("--user-name", help="preferred_username")
    p.add_argument(
        "--project-id", help="project_id claim (default: none, or service with --service)"
    )
    p.add_argument("--project-name", help="project_name claim")
    p.add_argument("--roles", default="", help="comma-separated roles (the 'roles' claim)")
    p.add_argument(
        "--service",
        action="store_true",
        help="a service token (e.g. Nova's): adds the role 'service'",
    )
    p.add_argument(
        "--expires-in",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="exp - iat (default 3600; negative: already expired)",
    )
    p.add_argument("--kid", help="kid header (default: the key's thumbprint; '' for none)")
    p.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="one more claim (repeatable)",
    )
    return p


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url)."""
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _temp_file(path: Path, data: bytes, mode: int) -> str:
    """``data`` in a new temporary file beside ``path`` (same file system), synced."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(temp)
        raise
    return temp


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` at once: readers see the old file or the new one."""
    temp = _temp_file(path, data, mode)
    try:
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def _write_private(path: Path, data: bytes) -> bool:
    """Create ``path`` (0600) with ``data`` complete, unless it exists; True if this call did."""
    temp = _temp_file(path, data, 0o600)
    try:
        os.link(temp, path)  # atomic, and fails if another call created it first
    except FileExistsError:
        return False
    finally:
        os.unlink(temp)
    return True


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock over read-modify-write of ``directory``'s jwks.json."""
    with open(directory / ".jwks.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_key_pair(key_dir: str | os.PathLike[str], alg: str) -> tuple[Any, str]:
    """The private key of ``alg`` in ``key_dir`` (generated with its public files if missing), and its kid."""
    directory = Path(key_dir)
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / f"{alg}-private.pem"
    if not private_path.exists():
        generated = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if alg == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        _write_private(
            private_path,
            generated.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    # Whoever created the file first, its key is the one (a parallel call's, maybe).
    private = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    public = private.public_key()
    jwk = json.loads((RSAAlgorithm if alg == "RS256" else ECAlgorithm).to_jwk(public))
    kid = thumbprint(jwk)
    write_atomic(
        directory / f"{alg}-public.pem",
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    jwks_path = directory / "jwks.json"
    with _locked(directory):
        keys = json.loads(jwks_path.read_text())["keys"] if jwks_path.exists() else []
        keys = [k for k in keys if k.get("alg") != alg]
        keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        write_atomic(jwks_path, (json.dumps({"keys": keys}, indent=2) + "\n").encode())
    return private, kid


def ensure_secret(path: str | os.PathLike[str]) -> bytes:
    """The HS256 secret in ``path`` (created with 48 random bytes, base64, if missing)."""
    target = Path(path)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_private(target, base64.urlsafe_b64encode(secrets.token_bytes(48)) + b"\n")
    return target.read_bytes().rstrip(b"\r\n")


def mint(
    *,
    key: Any,
    alg: str,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
    subject: str = "demo-user",
    roles: list[str] | None = None,
    project_id: str | None = None,
    expires_in: int = 3600,
    kid: str | None = None,
    extra: dict[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """A signed token with the claims the filter maps by default."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": issued,
        "exp": issued + expires_in,
        "jti": uuid.uuid4().hex,
        "roles": list(roles or []),
    }
    if project_id:
        claims["project_id"] = project_id
    claims.update(extra or {})
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def run(args: argparse.Namespace) -> int:
    try:
        extra = {}
        for item in args.claim:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise ValueError(f"--claim {item!r}: expected NAME=JSON")
            try:
                extra[name] = json.loads(value)
            except ValueError:
                extra[name] = value
        if args.alg == "HS256":
            if not args.secret_file:
                raise ValueError("HS256 needs --secret-file")
            key: Any = ensure_secret(args.secret_file)
            kid = args.kid or None
        else:
            if not args.key_dir:
                raise ValueError(f"{args.alg} needs --key-dir")
            key, thumb = ensure_key_pair(args.key_dir, args.alg)
            kid = thumb if args.kid is None else (args.kid or None)
    except (OSError, ValueError) as exc:
        print(f"propguard token: {exc}", file=sys.stderr)
        return 2
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    if args.service and "service" not in roles:
        roles.append("service")
    if args.user_name:
        extra.setdefault("preferred_username", args.user_name)
    if args.project_name:
        extra.setdefault("project_name", args.project_name)
    token = mint(
        key=key,
        alg=args.alg,
        issuer=args.issuer,
        audience=args.audience,
        subject=args.user_id or ("nova" if args.service else "demo-user"),
        roles=roles,
        project_id=args.project_id or ("service" if args.service else None),
        expires_in=args.expires_in,
        kid=kid,
        extra=extra,
    )
    sys.stdout.write(token + "\n")
    return 0
