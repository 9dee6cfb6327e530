"""Hub keys and signatures: what a hub operator and a node technician rely on."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from radiod.errors import ConfigError, Rejected
from radiod.protocol.jws import TrustStore, decode_payload, generate_keypair, sign


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two hub keys (a rotation) and a third one nobody trusts."""
    out = tmp_path_factory.mktemp("keys")
    for kid in ("hub-2026", "hub-2027", "rogue"):
        generate_keypair(kid, out)
    return out


@pytest.fixture(scope="module")
def trust(keys: Path) -> TrustStore:
    return TrustStore({"hub-2026": keys / "hub-2026.pub.pem", "hub-2027": keys / "hub-2027.pub.pem"})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(header: dict, payload: bytes, signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(payload)}.{b64(signature)}"


def reason(trust: TrustStore, tok: str | bytes) -> tuple[str, str]:
    with pytest.raises(Rejected) as err:
        trust.verify(tok)
    return err.value.reason, err.value.message


# --- key files ---


def test_generate_keypair_writes_a_private_key_only_the_owner_can_read(tmp_path: Path) -> None:
    key, pub = generate_keypair("hub-1", tmp_path / "new")
    assert (key.name, pub.name) == ("hub-1.key.pem", "hub-1.pub.pem")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8
    assert pub.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_generate_keypair_never_overwrites_a_key(tmp_path: Path) -> None:
    key, pub = generate_keypair("hub-1", tmp_path)
    before = key.read_bytes(), pub.read_bytes()
    with pytest.raises(FileExistsError, match=r"hub-1\.key\.pem already exists"):
        generate_keypair("hub-1", tmp_path)
    pub.unlink()
    key.rename(tmp_path / "elsewhere.pem")
    (tmp_path / "hub-1.pub.pem").write_bytes(before[1])  # only the public half left behind
    with pytest.raises(FileExistsError, match=r"hub-1\.pub\.pem"):
        generate_keypair("hub-1", tmp_path)
    assert not key.exists()


@pytest.mark.parametrize("kid", ["../hub", "a/b", ".hidden", "", "x" * 65])
def test_generate_keypair_refuses_a_kid_that_is_not_a_plain_file_name(tmp_path: Path, kid: str) -> None:
    with pytest.raises(ValueError, match="key id"):
        generate_keypair(kid, tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- sign and verify ---


def test_sign_and_verify_round_trip_with_compact_utf8_json(keys: Path, trust: TrustStore) -> None:
    payload = {"title": "Lịch cắt điện", "n": 1, "list": [1.5, None, True]}
    tok = sign(payload, keys / "hub-2026.key.pem", "hub-2026")
    header, body, _ = tok.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "EdDSA", "kid": "hub-2026"}
    assert base64.urlsafe_b64decode(body + "==").decode("utf-8") == (
        '{"title":"Lịch cắt điện","n":1,"list":[1.5,null,true]}'
    )
    assert trust.verify(tok) == payload
    assert trust.verify(tok.encode() + b"\n") == payload  # as from mosquitto_pub -f file


def test_sign_accepts_key_bytes(keys: Path, trust: TrustStore) -> None:
    tok = sign({"a": 1}, (keys / "hub-2027.key.pem").read_bytes(), "hub-2027")
    assert trust.verify(tok) == {"a": 1}


def test_both_keys_of_a_rotation_verify(keys: Path, trust: TrustStore) -> None:
    assert trust.kids == {"hub-2026", "hub-2027"}
    for kid in ("hub-2026", "hub-2027"):
        assert trust.verify(sign({"kid": kid}, keys / f"{kid}.key.pem", kid)) == {"kid": kid}


def test_a_changed_payload_is_a_bad_signature(keys: Path, trust: TrustStore) -> None:
    tok = sign({"priority": "normal"}, keys / "hub-2026.key.pem", "hub-2026")
    header, _, signature = tok.split(".")
    body = b64(b'{"priority":"emergency"}')
    forged = f"{header}.{body}.{signature}"
    assert reason(trust, forged) == ("bad_signature", "signature does not match key 'hub-2026'")


def test_a_signature_by_another_key_under_a_trusted_kid_is_a_bad_signature(keys: Path, trust: TrustStore) -> None:
    tok = sign({"a": 1}, keys / "rogue.key.pem", "hub-2026")
    assert reason(trust, tok)[0] == "bad_signature"


def test_alg_none_is_refused_even_with_a_trusted_kid(trust: TrustStore) -> None:
    for signature in (b"", b"x" * 64):
        tok = token({"alg": "none", "kid": "hub-2026"}, b'{"a":1}', signature)
        assert reason(trust, tok) == ("bad_signature", "alg 'none' is not accepted, only EdDSA")


def test_hmac_keyed_with_the_public_key_is_refused(keys: Path, trust: TrustStore) -> None:
    """The classic algorithm confusion: HS256 with the (public) PEM as the secret."""
    header, body = b64(b'{"alg":"HS256","kid":"hub-2026"}'), b64(b'{"a":1}')
    secret = (keys / "hub-2026.pub.pem").read_bytes()
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    assert reason(trust, f"{header}.{body}.{b64(mac)}") == ("bad_signature", "alg 'HS256' is not accepted, only EdDSA")


def test_a_missing_alg_a_crit_header_and_an_unencoded_payload_are_refused(keys: Path, trust: TrustStore) -> None:
    assert reason(trust, token({"kid": "hub-2026"}, b"{}", b"x"))[0] == "bad_signature"
    tok = token({"alg": "EdDSA", "kid": "hub-2026", "b64": False}, b"{}", b"x")
    assert reason(trust, tok) == ("bad_signature", "unencoded payloads (b64: false) are not accepted")
    tok = token({"alg": "EdDSA", "kid": "hub-2026", "crit": ["exp"], "exp": 1}, b"{}", b"x")
    assert reason(trust, tok) == ("bad_signature", "critical header extensions (crit) are not accepted")


@pytest.mark.parametrize(
    "tok",
    ["", "abc", "a.b", "a.b.c.d", "..", "e30..c2ln", "!!!.e30.c2ln", f"{b64(b'[1]')}.e30.c2ln", "Ünï.cödé.ß"],
)
def test_what_is_not_a_jws_is_a_bad_signature(trust: TrustStore, tok: str) -> None:
    assert reason(trust, tok)[0] == "bad_signature"


def test_unknown_missing_and_revoked_keys_are_named(keys: Path) -> None:
    trust = TrustStore(
        {"hub-2026": keys / "hub-2026.pub.pem", "hub-2027": keys / "hub-2027.pub.pem"}, revoked=["hub-2026"]
    )
    assert trust.kids == {"hub-2027"}
    revoked = sign({"a": 1}, keys / "hub-2026.key.pem", "hub-2026")
    assert reason(trust, revoked) == ("unknown_key", "key 'hub-2026' is revoked")
    unknown = sign({"a": 1}, keys / "rogue.key.pem", "rogue")
    assert reason(trust, unknown) == ("unknown_key", "key 'rogue' is not trusted (trusted: hub-2027)")
    assert reason(trust, token({"alg": "EdDSA"}, b"{}", b"x")) == ("unknown_key", "the JWS header names no key (kid)")


def test_a_node_with_no_keys_trusts_nothing(keys: Path) -> None:
    tok = sign({"a": 1}, keys / "hub-2026.key.pem", "hub-2026")
    assert reason(TrustStore({}), tok) == ("unknown_key", "key 'hub-2026' is not trusted (trusted: none)")


# --- trust store loading ---


def test_loading_errors_name_every_kid_and_file(keys: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    ed448 = tmp_path / "ed448.pub.pem"
    ed448.write_bytes(
        Ed448PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    trusted = {
        "good": keys / "hub-2026.pub.pem",
        "missing": tmp_path / "missing.pem",
        "garbage": garbage,
        "private": keys / "hub-2026.key.pem",  # a signing key does not belong on a node
        "ed448": ed448,
    }
    with pytest.raises(ConfigError) as err:
        TrustStore(trusted)
    text = str(err.value)
    assert [p.key for p in err.value.problems] == [f"security.trusted_keys.{k}" for k in trusted if k != "good"]
    for kid in ("missing", "garbage", "private", "ed448"):
        assert f"{trusted[kid]}: security.trusted_keys.{kid}: " in text
    assert "'ed448' is not an Ed25519 public key" in text


def test_a_revoked_key_file_need_not_exist(tmp_path: Path) -> None:
    trust = TrustStore({"old": tmp_path / "deleted.pem"}, revoked=["old"])
    assert trust.kids == frozenset()


def test_signing_with_something_that_is_not_an_ed25519_private_key_says_so(keys: Path) -> None:
    with pytest.raises(ConfigError, match=r"hub-2026\.pub\.pem: not an unencrypted PEM private key"):
        sign({}, keys / "hub-2026.pub.pem", "hub-2026")
    ed448 = Ed448PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigError, match="not an Ed25519 private key"):
        sign({}, ed448, "x")


# --- payload JSON ---


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff{}", "not UTF-8"),
        ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
        (b'{"a": NaN}', "NaN is not a JSON number"),
        (b'{"a": -Infinity}', "not a JSON number"),
        (b'{"a": 1e400}', "out of range"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not JSON"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b"[" * 100_000 + b"]" * 100_000, "nests 100000 levels deep"),
        (b"[1, 2]", "a JSON list, not an object"),
        (b'"text"', "a JSON str, not an object"),
        (b"", "not JSON"),
        (b"\xef\xbb\xbf{}", "not JSON"),  # a BOM is not part of JSON text
    ],
)
def test_payloads_that_are_not_a_json_object_are_bad_json(data: bytes, message: str) -> None:
    with pytest.raises(Rejected) as err:
        decode_payload(data)
    assert err.value.reason == "bad_json"
    assert message in err.value.message


def test_a_signed_payload_that_is_not_json_is_bad_json_after_the_signature(keys: Path, trust: TrustStore) -> None:
    private = serialization.load_pem_private_key((keys / "hub-2026.key.pem").read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    header = b64(b'{"alg":"EdDSA","kid":"hub-2026"}')
    signing_input = f"{header}.{b64(b'not json')}"
    tok = f"{signing_input}.{b64(private.sign(signing_input.encode()))}"
    assert reason(trust, tok) == ("bad_json", "payload is not JSON: Expecting value: line 1 column 1 (char 0)")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=400), st.text(max_size=400)))
def test_verify_raises_nothing_but_rejected(data: bytes | str) -> None:
    trust = TrustStore({})
    with pytest.raises(Rejected):
        trust.verify(data)


@settings(max_examples=200, deadline=None)
@given(
    header=st.dictionaries(
        st.sampled_from(["alg", "kid", "b64", "crit", "typ", "x"]),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.lists(st.text(max_size=4))),
    ),
    body=st.binary(max_size=50),
    signature=st.binary(max_size=80),
)
def test_verify_of_any_header_raises_nothing_but_rejected(
    keys: Path, header: dict, body: bytes, signature: bytes
) -> None:
    header = {"alg": "EdDSA", "kid": "hub-2026", **header}
    trust = TrustStore({"hub-2026": keys / "hub-2026.pub.pem"})
    with pytest.raises(Rejected):
        trust.verify(token(header, body or b"{}", signature))
