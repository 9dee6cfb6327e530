"""``radiod hub-setup``: the commune hub's broker configuration and one credentials folder per node and operator.

The broker is the one place where what a device may do can be limited: a node that is stolen or misbehaves must
not be able to post a bulletin, send a command or pose as another node. So every client logs in with its own
user name and password, over TLS, showing a client certificate from the hub's own CA, and the ACL gives each
login only its topics (see ``hub/README.md`` for the reasoning and the install steps).

The output folder (``--out``)::

    ca/ca.key, ca/ca.crt     the hub's certificate authority: keep it, off the nodes; needed to add a node
    hub/                     installed in /etc/mosquitto/radiod (``--hub-dir``), radiod.conf in conf.d
        radiod.conf acl passwd ca.crt server.crt server.key
    web/                     the hub console's HTTPS identity (hub.yaml ``web.tls_cert``, ``web.tls_key``): a key
        server.crt server.key ca.crt     of its own, so the hub service never reads the broker's
    nodes/<id>/              copied to /etc/radiod/mqtt (``--client-dir``) on node <id>
        radiod.yaml ca.crt client.crt client.key [<kid>.pub.pem ...]
    operators/<name>/        the same, for an operator's PC or the hub itself

Running it again with more (or fewer) names is how nodes are added and removed: every secret that exists (the
CA key, the server key, each client key and password) is kept, missing ones are made, and the files derived from
them (certificates, the hashed password file, the ACL, the configs) are brought up to date. Nothing secret is
replaced unless ``force`` says so; anything that would have to be replaced is an error naming the file.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
import re
import secrets
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import TypeVar

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from radiod.config import NAME_PATTERN, default_data_dir
from radiod.errors import ConfigError, RadiodError
from radiod.protocol.jws import KID_PATTERN, TrustStore
from radiod.protocol.messages import MAX_PAYLOAD_BYTES

PREFIX_PATTERN = r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*"
"""Topic levels without wildcards, ``$`` or spaces: the prefix is written into the ACL, one topic per line."""
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_PATTERN = rf"{_LABEL}(\.{_LABEL})*"
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
"""Always in the server certificate, so the hub's own tools connect over TLS and need no plain listener."""

NOT_BEFORE = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
"""Certificates are valid from this date, not from today: a Pi has no real-time clock and may boot with the date
its SD image was made (fake-hwclock) until it reaches a time server; a certificate "not yet valid" would keep
the node off the broker, which may be its only way to a time server."""
VALIDITY = dt.timedelta(days=20 * 365)
"""Long, because an expired certificate silences a commune's loudspeakers without warning, and a device is
locked out by removing its password, not by letting its certificate run out."""

PBKDF2_ITERATIONS = 101
"""What mosquitto_passwd 2.0 writes. Few, but the passwords are 192 random bits: no dictionary to slow down."""
PBKDF2_SALT_BYTES = 12
PASSWORD_BYTES = 24

CLIENT_CONFIG = "radiod.yaml"

T = TypeVar("T")


class HubSetupError(RadiodError):
    """The hub's files cannot be made as asked; the message lists every problem with the file or option."""


@dataclass(frozen=True, kw_only=True)
class HubSetup:
    """What to make: the commune's prefix, the hub's names, the logins, and where the files go and are installed."""

    prefix: str
    hosts: tuple[str, ...]
    nodes: tuple[str, ...]
    out: Path
    operators: tuple[str, ...] = ()
    port: int = 8883
    bind: str | None = None
    hub_dir: str = "/etc/mosquitto/radiod"
    client_dir: str = "/etc/radiod/mqtt"
    trusted_keys: tuple[Path, ...] = ()
    revoked_keys: tuple[str, ...] = ()
    force: bool = False
    templates_dir: Path = field(default_factory=lambda: Path(default_data_dir("hub")))


@dataclass(frozen=True)
class Report:
    """What a run did, for the person who has to copy the folders: which logins changed, which lost access."""

    out: Path
    hub_dir: str
    client_dir: str
    new_ca: bool
    logins: dict[str, str]  # name -> "new login", "new certificate" or "unchanged"
    gone: tuple[str, ...]  # folders of logins not in this run: no longer on the broker

    def lines(self) -> list[str]:
        changed = [name for name, state in self.logins.items() if state != "unchanged"]
        lines = [
            f"{self.out / 'ca'}: {'new' if self.new_ca else 'kept'} CA; keep a copy, off the nodes: it adds nodes",
            f"{self.out / 'hub'}: install in {self.hub_dir}, radiod.conf in /etc/mosquitto/conf.d, then restart "
            "mosquitto (see hub/README.md)",
            f"{self.out / 'web'}: the console's HTTPS certificate, for hub.yaml web.tls_cert and web.tls_key",
        ]
        lines += [f"  {name}: {state}" for name, state in self.logins.items()]
        if changed:
            lines.append(f"copy these folders to {self.client_dir} on their machines: {', '.join(changed)}")
        if self.gone:
            lines.append(f"no longer allowed on the broker (folders left in place): {', '.join(self.gone)}")
        return lines


def split_names(groups: Iterable[str] | None) -> tuple[str, ...]:
    """``["n01,n02", "n03"]`` -> ``("n01", "n02", "n03")``: names may be given one per option or comma-separated."""
    return tuple(name.strip() for group in groups or () for name in group.split(",") if name.strip())


# -- the run -------------------------------------------------------------------------------------------------------


@dataclass
class _Login:
    name: str
    role: str  # "node" or "operator"
    folder: Path
    key: ec.EllipticCurvePrivateKey | None
    password: str | None


def setup_hub(setup: HubSetup, *, mosquitto_passwd: str | None) -> Report:
    """Make or update every file of ``setup.out``; ``mosquitto_passwd`` is that tool's path, or None to hash here.

    Everything that exists is read and checked first, and nothing is written if any of it is unusable, so a
    failed run leaves the folder as it was.
    """
    problems = _check(setup)
    trusted = _trusted_keys(setup.trusted_keys, problems)
    if problems:
        raise HubSetupError("\n".join(problems))
    prefix = setup.prefix.rstrip("/")
    templates = {name: _template(setup.templates_dir, name) for name in _TEMPLATES}
    out = setup.out
    ca_dir, hub = out / "ca", out / "hub"

    ca = None if setup.force else _attempt(problems, _existing_ca, ca_dir)
    server_key = None if setup.force else _attempt(problems, _existing_key, hub / "server.key")
    web_key = None if setup.force else _attempt(problems, _existing_key, out / "web" / "server.key")
    logins = [
        _existing_login(name, role, out / f"{role}s" / name, setup.force, problems)
        for role, names in (("node", setup.nodes), ("operator", setup.operators))
        for name in names
    ]
    if ca is None and not problems and not setup.force:
        keys = [hub / "server.key", out / "web" / "server.key", *(login.folder / "client.key" for login in logins)]
        issued = [p for p in keys if p.exists()]
        if issued:
            problems.append(
                f"{ca_dir / 'ca.key'}: missing, but {issued[0]} exists: a new CA would make every certificate it "
                "issued useless; restore ca/ from your copy, or rerun with --force to start over"
            )
    if problems:
        raise HubSetupError("\n".join(problems))
    blocks = "".join(
        _render(templates[f"acl-{login.role}.template"], prefix=prefix, name=login.name) for login in logins
    )
    acl = _render(templates["acl.template"], prefix=prefix, logins=blocks)
    conf = _render(
        templates["radiod.conf.template"],
        prefix=prefix,
        port=str(setup.port),
        bind=f" {setup.bind}" if setup.bind else "",
        hub_dir=setup.hub_dir.rstrip("/"),
        autosave_s=str(AUTOSAVE_S),
        message_size_limit=str(MAX_PAYLOAD_BYTES),
        max_packet_size=str(MAX_PAYLOAD_BYTES + PACKET_OVERHEAD_BYTES),
        max_queued_bytes=str(MAX_QUEUED_BYTES),
    )

    _mkdir(out)
    new_ca = ca is None
    if ca is None:
        _mkdir(ca_dir)
        ca = _new_ca(prefix)
        _write(ca_dir / "ca.key", _key_pem(ca[0]), 0o600)
        _write(ca_dir / "ca.crt", _cert_pem(ca[1]), 0o644)
    ca_pem = _cert_pem(ca[1])

    _mkdir(hub)
    server_key = _ensure_key(hub / "server.key", server_key)
    sans = tuple(dict.fromkeys((*setup.hosts, *LOCAL_NAMES)))
    server_usage = ExtendedKeyUsageOID.SERVER_AUTH
    _ensure_cert(hub / "server.crt", ca, server_key, common_name=setup.hosts[0], sans=sans, usage=server_usage)
    _write(hub / "ca.crt", ca_pem, 0o644)
    _mkdir(out / "web")  # the console's certificate names the same hosts: operators reach it by the hub's name
    web_key = _ensure_key(out / "web" / "server.key", web_key)
    _ensure_cert(out / "web" / "server.crt", ca, web_key, common_name=setup.hosts[0], sans=sans, usage=server_usage)
    _write(out / "web" / "ca.crt", ca_pem, 0o644)

    states: dict[str, str] = {}
    passwords: dict[str, str] = {}
    for login in logins:
        _mkdir(login.folder)
        new_login = login.key is None or login.password is None
        key = _ensure_key(login.folder / "client.key", login.key)
        password = login.password or secrets.token_urlsafe(PASSWORD_BYTES)
        client_usage = ExtendedKeyUsageOID.CLIENT_AUTH
        reissued = _ensure_cert(
            login.folder / "client.crt", ca, key, common_name=login.name, sans=None, usage=client_usage
        )
        states[login.name] = "new login" if new_login else ("new certificate" if reissued else "unchanged")
        passwords[login.name] = password
        _write(login.folder / "ca.crt", ca_pem, 0o644)
        for stale in set(login.folder.glob("*.pub.pem")) - {login.folder / f"{kid}.pub.pem" for kid in trusted}:
            try:  # a key no longer trusted: left there, a technician might install it anyway
                stale.unlink()
            except OSError as e:
                raise HubSetupError(f"cannot remove {stale}: {e.strerror or e}") from e
        for kid, pem in trusted.items():
            _write(login.folder / f"{kid}.pub.pem", pem, 0o644)
        config = _client_config(setup, prefix, login, password, trusted)
        _write(login.folder / CLIENT_CONFIG, config.encode("utf-8"), 0o600)

    write_password_file(hub / "passwd", passwords, mosquitto_passwd)
    _write(hub / "acl", acl.encode("utf-8"), 0o600)
    _write(hub / "radiod.conf", conf.encode("utf-8"), 0o644)

    gone = tuple(
        f"{folder.parent.name}/{folder.name}"
        for role in ("node", "operator")
        for folder in sorted((out / f"{role}s").glob("*"))
        if folder.is_dir() and folder.name not in states
    )
    return Report(out, setup.hub_dir, setup.client_dir, new_ca, states, gone)


# -- checking the request --------------------------------------------------------------------------------------------


def _check(setup: HubSetup) -> list[str]:
    """Every problem with the options, in words naming the option, so one run shows them all."""
    problems = []
    if not re.fullmatch(PREFIX_PATTERN, setup.prefix.rstrip("/")):
        problems.append(
            f"--prefix {setup.prefix!r}: expected topic levels of letters, digits, '.', '_' or '-' joined by '/', "
            "e.g. radio/yen-hoa"
        )
    if not setup.hosts:
        problems.append("--host: give the name or address the nodes use to reach the hub (repeatable)")
    for host in setup.hosts:
        if not (_is_ip(host) or re.fullmatch(HOST_PATTERN, host)):
            problems.append(f"--host {host!r}: not a host name or IP address")
    if not setup.nodes:
        problems.append("--node: give at least one node id")
    seen: set[str] = set()
    for option, names in (("--node", setup.nodes), ("--operator", setup.operators)):
        for name in names:
            if not re.fullmatch(NAME_PATTERN, name):
                problems.append(f"{option} {name!r}: must match {NAME_PATTERN} (it is a user name and a topic level)")
            elif name in seen:
                problems.append(f"{option} {name!r}: given twice (nodes and operators share one set of user names)")
            seen.add(name)
    if not 1 <= setup.port <= 65535:
        problems.append(f"--port {setup.port}: expected 1 to 65535")
    if setup.bind is not None and not _is_ip(setup.bind):
        problems.append(f"--bind {setup.bind!r}: expected an IP address of the hub")
    for option, path in (("--hub-dir", setup.hub_dir), ("--client-dir", setup.client_dir)):
        if not path.startswith("/") or re.search(r"\s", path):
            problems.append(f"{option} {path!r}: expected an absolute path without spaces")
    for kid in setup.revoked_keys:
        if not re.fullmatch(KID_PATTERN, kid):
            problems.append(f"--revoked-key {kid!r}: not a key id ({KID_PATTERN})")
    return problems


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _trusted_keys(paths: Sequence[Path], problems: list[str]) -> dict[str, bytes]:
    """``{kid: public key PEM}`` from files named ``<kid>.pub.pem`` (as ``radiod keygen`` writes them).

    Each is loaded exactly as a node will load it, so a key the nodes would refuse never reaches them.
    """
    keys: dict[str, bytes] = {}
    for path in paths:
        kid = path.name.removesuffix(".pub.pem")
        if kid == path.name or not re.fullmatch(KID_PATTERN, kid):
            problems.append(f"--trusted-key {path}: expected a file <kid>.pub.pem made by `radiod keygen`")
            continue
        if kid in keys:
            problems.append(f"--trusted-key {path}: key id {kid!r} given twice")
            continue
        try:
            TrustStore({kid: path})
        except ConfigError as e:
            problems.append(f"--trusted-key {e}")
            continue
        keys[kid] = path.read_bytes()
    return keys


# -- reading what exists ---------------------------------------------------------------------------------------------


def _attempt(problems: list[str], read: Callable[[Path], T | None], path: Path) -> T | None:
    """``read(path)``, or None with its problem recorded, so that one run lists every unusable file."""
    try:
        return read(path)
    except HubSetupError as e:
        problems.append(str(e))
        return None


_FORCE_HINT = "or rerun with --force to replace every key, certificate and password"
_REPLACE_HINT = f"remove it to make a new one, {_FORCE_HINT}"
_REPLACE_FOLDER_HINT = f"remove the folder to make a new login, {_FORCE_HINT}"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise HubSetupError(f"{path}: cannot read it: {e.strerror or e}") from e


def _existing_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    """The EC private key in ``path``, None if there is none; made 0600 again if a copy loosened its mode."""
    if not path.exists():
        return None
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise HubSetupError(f"{path}: not an unencrypted PEM private key ({e}); {_REPLACE_HINT}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise HubSetupError(f"{path}: not an EC private key (hub-setup makes P-256 keys); {_REPLACE_HINT}")
    os.chmod(path, 0o600)
    return key


def _existing_ca(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None:
    """The CA's key and certificate, None if there is no CA yet; a key without its certificate is an error."""
    key = _existing_key(directory / "ca.key")
    cert_path = directory / "ca.crt"
    if key is None:
        if cert_path.exists():
            raise HubSetupError(
                f"{directory / 'ca.key'}: missing, but {cert_path} exists; restore the CA key, {_FORCE_HINT}"
            )
        return None
    try:
        cert = x509.load_pem_x509_certificate(_read(cert_path)) if cert_path.exists() else None
    except ValueError as e:
        raise HubSetupError(f"{cert_path}: not a PEM certificate ({e})") from e
    if cert is None or _public_pem(cert.public_key()) != _public_pem(key.public_key()):
        raise HubSetupError(f"{cert_path}: missing or not the certificate of {directory / 'ca.key'}; restore it")
    return key, cert


def _existing_password(path: Path) -> str | None:
    """The password in a login's radiod.yaml (where the device reads it), None if there is no such file."""
    if not path.exists():
        return None
    try:
        document = yaml.safe_load(_read(path))
    except yaml.YAMLError as e:
        raise HubSetupError(f"{path}: not YAML ({e}); {_REPLACE_FOLDER_HINT}") from e
    mqtt = document.get("mqtt") if isinstance(document, dict) else None
    password = mqtt.get("password") if isinstance(mqtt, dict) else None
    if not isinstance(password, str) or not password or re.search(r"[\s:]", password):
        raise HubSetupError(
            f"{path}: mqtt.password missing, or not a string without spaces and ':'; "
            f"{_REPLACE_FOLDER_HINT}"
        )
    return password


def _existing_login(name: str, role: str, folder: Path, force: bool, problems: list[str]) -> _Login:
    if force:
        return _Login(name, role, folder, None, None)
    key = _attempt(problems, _existing_key, folder / "client.key")
    password = _attempt(problems, _existing_password, folder / CLIENT_CONFIG)
    return _Login(name, role, folder, key, password)


# -- making keys and certificates ------------------------------------------------------------------------------------


def write_test_pki(directory: Path, host: str) -> None:
    """A throw-away CA (``ca.crt``), a server certificate for ``host`` and localhost, and a client certificate,
    each with its key, in ``directory``: the same certificates hub-setup issues, for the private test broker."""
    ca = _new_ca("test")
    _write(directory / "ca.key", _key_pem(ca[0]), 0o600)
    _write(directory / "ca.crt", _cert_pem(ca[1]), 0o644)
    for name, usage, sans in (
        ("server", ExtendedKeyUsageOID.SERVER_AUTH, (host, "localhost")),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH, None),
    ):
        key = _ensure_key(directory / f"{name}.key", None)
        _ensure_cert(directory / f"{name}.crt", ca, key, common_name=name, sans=sans, usage=usage)


def _new_key() -> ec.EllipticCurvePrivateKey:
    """P-256: what every TLS stack a node or a console may use (OpenSSL, mbedTLS on a microcontroller) supports."""
    return ec.generate_private_key(ec.SECP256R1())


def _ensure_key(path: Path, key: ec.EllipticCurvePrivateKey | None) -> ec.EllipticCurvePrivateKey:
    if key is None:
        key = _new_key()
        _write(path, _key_pem(key), 0o600)
    return key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _new_ca(prefix: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"radiod hub CA {prefix}"))
        .issuer_name(_name(f"radiod hub CA {prefix}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(dt.datetime.now(dt.UTC) + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _ensure_cert(
    path: Path,
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    sans: tuple[str, ...] | None,
    usage: x509.ObjectIdentifier,
) -> bool:
    """Issue the certificate at ``path`` unless the one there already fits; True if a new one was written.

    A certificate is no secret, so replacing one is always allowed; keeping a fitting one means an unchanged run
    changes no file a technician would have to copy again.
    """
    if path.exists() and _fits(_read(path), ca[1], key, common_name, sans):
        return False
    ca_key, ca_cert = ca
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(ca_cert.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(s) for s in sans]), critical=False)
    _write(path, _cert_pem(builder.sign(ca_key, hashes.SHA256())), 0o644)
    return True


def _fits(
    pem: bytes,
    ca_cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    sans: tuple[str, ...] | None,
) -> bool:
    """Issued by this CA, for this key and name, and (for the server) exactly these host names."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if _public_pem(cert.public_key()) != _public_pem(key.public_key()) or cert.subject != _name(common_name):
        return False
    if sans is None:
        return True
    try:
        present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    names = {str(v) for v in present.get_values_for_type(x509.DNSName)}
    names |= {str(v) for v in present.get_values_for_type(x509.IPAddress)}
    return names == {str(ipaddress.ip_address(s)) if _is_ip(s) else s for s in sans}


def _general_name(host: str) -> x509.GeneralName:
    return x509.IPAddress(ipaddress.ip_address(host)) if _is_ip(host) else x509.DNSName(host)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    pkcs8 = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _public_pem(public: CertificatePublicKeyTypes) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


# -- passwords -------------------------------------------------------------------------------------------------------


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A Mosquitto 2 password hash: ``$7$<iterations>$<base64 salt>$<base64 PBKDF2-HMAC-SHA512, 64 bytes>``.

    This is the format mosquitto_passwd 2.0 writes (its ``-H sha512-pbkdf2`` default) and the broker reads; it
    is used when mosquitto_passwd is not installed, e.g. when the files are made on a laptop.
    """
    salt = salt if salt is not None else secrets.token_bytes(PBKDF2_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, PBKDF2_ITERATIONS, 64)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def write_password_file(path: Path, logins: dict[str, str], mosquitto_passwd: str | None) -> None:
    """Write Mosquitto's password file for ``{user: password}`` (mode 0600), hashed by ``mosquitto_passwd`` if given.

    The tool gets the passwords in a 0600 file (``-U``), never on its command line, where any local user could
    read them in the process list.
    """
    if mosquitto_passwd is None:
        text = "".join(f"{user}:{hash_password(password)}\n" for user, password in logins.items())
        _write(path, text.encode("utf-8"), 0o600)
        return
    plain = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        _write(plain, "".join(f"{u}:{p}\n" for u, p in logins.items()).encode("utf-8"), 0o600)
        done = subprocess.run([mosquitto_passwd, "-U", str(plain)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise HubSetupError(f"{mosquitto_passwd} -U failed: {(done.stderr or done.stdout).strip()}")
        os.chmod(plain, 0o600)
        os.replace(plain, path)
    except OSError as e:
        raise HubSetupError(f"cannot write {path}: {e.strerror or e}") from e
    finally:
        plain.unlink(missing_ok=True)


# -- the files -------------------------------------------------------------------------------------------------------

AUTOSAVE_S = 60
"""The broker saves its database this often (see hub/radiod.conf.template): at most one rewrite a minute."""
PACKET_OVERHEAD_BYTES = 1024
"""An MQTT packet's topic, properties and headers beyond its payload, at most, for radiod's topics."""
MAX_QUEUED_BYTES = 4 * 1024 * 1024
"""What the broker queues per offline or slow client: about 60 messages of the largest size, thousands of commands."""

_TEMPLATES = ("radiod.conf.template", "acl.template", "acl-node.template", "acl-operator.template")


def _template(directory: Path, name: str) -> Template:
    path = directory / name
    try:
        return Template(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise HubSetupError(f"{path}: cannot read the template ({e.strerror or e}); is radiod's hub/ installed?") from e


def _render(template: Template, **values: str) -> str:
    try:
        return template.substitute(values)
    except (KeyError, ValueError) as e:
        raise HubSetupError(f"a hub/ template has an unknown or malformed ${{...}} placeholder: {e}") from e


def _client_config(
    setup: HubSetup, prefix: str, login: _Login, password: str, trusted: dict[str, bytes]
) -> str:
    """The radiod config sections this login needs, as YAML to merge into the device's config file."""
    where = setup.client_dir.rstrip("/")
    mqtt = {
        "host": setup.hosts[0],
        "port": setup.port,
        "prefix": prefix,
        "username": login.name,
        "password": password,
        "tls": {"ca_file": f"{where}/ca.crt", "cert_file": f"{where}/client.crt", "key_file": f"{where}/client.key"},
    }
    document: dict[str, object] = {"node": {"id": login.name}, "mqtt": mqtt} if login.role == "node" else {"mqtt": mqtt}
    if trusted or setup.revoked_keys:
        document["security"] = {
            "trusted_keys": {kid: f"{where}/{kid}.pub.pem" for kid in trusted},
            "revoked_keys": list(setup.revoked_keys),
        }
    signer = next(iter(trusted), None)  # the operator signs with the first trusted key: its private half
    if login.role == "operator":
        document["hub"] = {"nodes": list(setup.nodes)}
        if signer:
            document["hub"] |= {"kid": signer, "signing_key": f"{where}/{signer}.key.pem"}
    if login.role == "node":
        header = [
            f"radiod settings for node {login.name} of {prefix}, made by `radiod hub-setup`.",
            f"Copy this folder to {where} on the node (owner radiod, mode 0700) and merge these sections into",
            f"/etc/radiod/config.yaml, adding the node's zones. node.id must stay {login.name}: the broker lets this",
            f"login write only {prefix}/node/{login.name}/#. The password and client.key are secrets.",
        ]
    else:
        header = [
            f"radiod settings for operator {login.name} of {prefix}, made by `radiod hub-setup`.",
            f"Copy this folder to {where} on the operator's machine and merge these sections into the config",
            "that `radiod post --config` reads. The password and client.key are secrets.",
        ]
        if signer:
            header.append(f"Put the hub's private key {signer}.key.pem (from `radiod keygen`) in {where} too: "
                          "hub.signing_key names it.")
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return "".join(f"# {line}\n" for line in header) + body


def _mkdir(path: Path) -> None:
    """A folder only its owner can enter: it holds private keys and passwords."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    except OSError as e:
        raise HubSetupError(f"cannot create {path}: {e.strerror or e}") from e


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` in one step, with exactly ``mode`` from the moment the file exists.

    Written to a temporary file then renamed, so an interrupted run never leaves half a key or an empty
    password file that Mosquitto would load as "nobody may log in".
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # the umask may have taken bits away from a 0644 certificate
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise HubSetupError(f"cannot write {path}: {e.strerror or e}") from e
