"""Ed25519 JWS (RFC 7515 compact, ``alg: EdDSA``): the hub signs bulletins and commands, a node verifies them.

A node holds only public keys, one per hub key id (``kid``), so several hub keys can be trusted at once while a
key is rotated, and a compromised key is revoked by listing its kid. Every failure to verify is a
:class:`~radiod.errors.Rejected` with the protocol's reason (``bad_signature`` or ``unknown_key``) and a message
that says which key or which part of the token is wrong, because an operator at the hub reads it in a
``rejected`` event.

joserfc does the JWS mechanics, but it is lenient about what it accepts (any registered algorithm, a header that
is not an object, an unencoded RFC 7797 payload), so the header is checked here first and joserfc only ever
sees tokens that already claim ``EdDSA`` and name a trusted key.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import OKPKey
from joserfc.jws import JWSAlgModel, JWSRegistry
from joserfc.util import urlsafe_b64decode

from radiod.errors import ConfigError, Problem, Rejected

ALG = "EdDSA"
"""The only JWS algorithm protocol v1 allows."""

KID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
"""Key ids that :func:`generate_keypair` accepts: they become file names, so no path separators, no dot files."""


class _EdDSAOnly(JWSRegistry):
    """A registry that knows exactly one algorithm.

    joserfc's default registry picks from every algorithm it implements; pinning ``EdDSA`` here means no header
    can talk the verifier into ``none`` or an HMAC keyed with the public key. It also skips joserfc's warning
    that the polymorphic name ``EdDSA`` is deprecated by RFC 9864: protocol v1 fixes the name, and the curve is
    pinned to Ed25519 by the keys this module loads.
    """

    def get_alg(self, name: str) -> JWSAlgModel:
        if name != ALG:
            raise JoseError(f"algorithm {name!r} is not {ALG}")
        return self.algorithms[ALG]


_REGISTRY = _EdDSAOnly(algorithms=[ALG], strict_check_header=False)


def generate_keypair(kid: str, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<kid>.key.pem`` (PKCS8, mode 0600) and ``<kid>.pub.pem`` into ``out_dir``; return both paths.

    The private key file is created with mode 0600 in the same system call that creates it, so it is never
    readable by others, not even for an instant. An existing key is never overwritten: losing a hub key means
    re-provisioning every node, so that has to be a deliberate ``rm``.
    """
    if not re.fullmatch(KID_PATTERN, kid):
        raise ValueError(f"key id {kid!r} must match {KID_PATTERN} (it becomes a file name)")
    out_dir.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out_dir / f"{kid}.key.pem", out_dir / f"{kid}.pub.pem"
    for path in (key_path, pub_path):
        if path.exists():
            raise FileExistsError(f"{path} already exists; refusing to overwrite a key (remove it first)")
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(key_path, private_pem, 0o600)
    _write_new(pub_path, public_pem, 0o644)
    return key_path, pub_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` (O_EXCL: fail rather than replace a file that appeared meanwhile)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def sign(payload: dict[str, Any], private_key_pem: bytes | Path, kid: str) -> str:
    """Sign ``payload`` as compact JSON (UTF-8) into a JWS compact serialization with header {alg, kid}.

    ``allow_nan=False``: NaN and Infinity are not JSON, and a node would refuse them as ``bad_json``.
    """
    source = str(private_key_pem) if isinstance(private_key_pem, Path) else "<private key>"
    pem = private_key_pem.read_bytes() if isinstance(private_key_pem, Path) else private_key_pem
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise ConfigError([Problem(source, None, "", f"not an unencrypted PEM private key ({err})")]) from err
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError([Problem(source, None, "", "not an Ed25519 private key")])
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return jws.serialize_compact({"alg": ALG, "kid": kid}, body, OKPKey.import_key(private), registry=_REGISTRY)


def decode_payload(data: bytes) -> dict[str, Any]:
    """Parse a protocol payload: strict UTF-8, strict JSON, an object; anything else is ``bad_json``.

    Stricter than ``json.loads``: no byte-order detection (UTF-16 is not UTF-8), no NaN or Infinity, no number
    so large it becomes infinite, no duplicate keys (two readers could disagree on which one counts), and
    nesting deep enough to exhaust the parser's stack is refused rather than crashing the caller.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Rejected("bad_json", f"payload is not UTF-8 (byte {err.start})") from err
    depth = _nesting(text)
    if depth > MAX_NESTING:
        raise Rejected("bad_json", f"payload nests {depth} levels deep; at most {MAX_NESTING} are allowed")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys)
    except ValueError as err:  # JSONDecodeError and the checks below
        raise Rejected("bad_json", f"payload is not JSON: {err}") from err
    if not isinstance(value, dict):
        raise Rejected("bad_json", f"payload is a JSON {type(value).__name__}, not an object")
    return value


MAX_NESTING = 32
"""Protocol payloads nest 4 levels; a fixed limit keeps the verdict the same whatever the caller's stack depth."""
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def _nesting(text: str) -> int:
    """How deep ``text``'s arrays and objects nest, counted outside strings, without recursion."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_JSON_STRING.sub("", text)):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key[:64]!r}")
        obj[key] = value
    return obj


class TrustStore:
    """The hub public keys a node trusts, by kid, minus the revoked ones."""

    def __init__(self, trusted: dict[str, Path], revoked: Iterable[str] = ()) -> None:
        """Load every trusted, non-revoked key; raise :class:`ConfigError` naming each kid and file that fails.

        A revoked kid's file is not even read, so retiring a key works by revoking it before deleting the file.
        """
        self.revoked = frozenset(revoked)
        self._keys: dict[str, OKPKey] = {}
        problems = []
        for kid, path in trusted.items():
            if kid in self.revoked:
                continue
            where = f"security.trusted_keys.{kid}"
            try:
                public = serialization.load_pem_public_key(Path(path).read_bytes())
            except OSError as err:
                problems.append(Problem(str(path), None, where, f"cannot read the key of {kid!r}: {err.strerror}"))
                continue
            except (ValueError, UnsupportedAlgorithm) as err:
                problems.append(Problem(str(path), None, where, f"key {kid!r} is not a PEM public key ({err})"))
                continue
            if not isinstance(public, Ed25519PublicKey):
                problems.append(Problem(str(path), None, where, f"key {kid!r} is not an Ed25519 public key"))
                continue
            self._keys[kid] = OKPKey.import_key(public)
        if problems:
            raise ConfigError(problems)

    @property
    def kids(self) -> frozenset[str]:
        """The key ids a message may be signed with right now."""
        return frozenset(self._keys)

    def verify(self, token: bytes | str) -> dict[str, Any]:
        """Verify a JWS and return its payload, a JSON object (see :func:`decode_payload`)."""
        return decode_payload(self.verified_payload(token))

    def verified_payload(self, token: bytes | str) -> bytes:
        """Verify a JWS compact serialization and return its payload bytes, still undecoded.

        Checks, in order: three base64url parts, a JSON object header, ``alg`` exactly ``EdDSA``, no ``crit``
        and no unencoded payload, a ``kid``
        that is trusted and not revoked, then the Ed25519 signature. Whitespace around the token (a trailing
        newline from ``mosquitto_pub -f``) is ignored.
        """
        raw = token.encode("utf-8") if isinstance(token, str) else token
        raw = raw.strip(b" \t\r\n")
        parts = raw.split(b".")
        if len(parts) != 3 or not parts[0] or not parts[1]:  # an empty payload would be detached content
            raise Rejected("bad_signature", "not a JWS compact serialization (header.payload.signature)")
        header = _decode_header(parts[0])
        alg = header.get("alg")
        if alg != ALG:
            raise Rejected("bad_signature", f"alg {alg!r} is not accepted, only {ALG}")
        if "crit" in header:  # protocol v1 defines no critical extension, so RFC 7515 says refuse any
            raise Rejected("bad_signature", "critical header extensions (crit) are not accepted")
        if header.get("b64", True) is not True:
            raise Rejected("bad_signature", "unencoded payloads (b64: false) are not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Rejected("unknown_key", "the JWS header names no key (kid)")
        if kid in self.revoked:
            raise Rejected("unknown_key", f"key {kid[:64]!r} is revoked")
        key = self._keys.get(kid)
        if key is None:
            trusted = ", ".join(sorted(self._keys)) or "none"
            raise Rejected("unknown_key", f"key {kid[:64]!r} is not trusted (trusted: {trusted})")
        try:
            return jws.deserialize_compact(raw, key, registry=_REGISTRY).payload
        except BadSignatureError as err:
            raise Rejected("bad_signature", f"signature does not match key {kid!r}") from err
        except (JoseError, ValueError) as err:
            raise Rejected("bad_signature", f"invalid JWS: {err}") from err


def _decode_header(segment: bytes) -> dict[str, Any]:
    """The protected header as a JSON object, or ``bad_signature``."""
    try:
        header = json.loads(urlsafe_b64decode(segment).decode("utf-8"))
    except (ValueError, RecursionError) as err:  # binascii.Error, UnicodeDecodeError, JSONDecodeError
        raise Rejected("bad_signature", "the JWS header is not base64url JSON") from err
    if not isinstance(header, dict):
        raise Rejected("bad_signature", "the JWS header is not a JSON object")
    return header
