"""`radiod hub-setup` and the commune hub's broker: a real Mosquitto running exactly the generated configuration.

Each login is used as its device would use it: the node's config is loaded from the ``radiod.yaml`` of its
folder, with only the folder's location and the hub's address changed to this test's.
"""

from __future__ import annotations

import base64
import os
import queue
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from radiod.cli import main
from radiod.config import Config, MqttConfig, TlsConfig, load_config
from radiod.errors import RadiodError
from radiod.hub.hubsetup import HubSetup, HubSetupError, hash_password, setup_hub, write_password_file
from radiod.hub.localbroker import Broker, free_port
from radiod.hub.session import collect_retained, publish_once
from radiod.node.mqtt_link import Incoming, LinkEvent, MqttLink
from radiod.protocol.jws import generate_keypair
from radiod.protocol.topics import subscriptions

PREFIX = "radio/hub-test"
NODES = ("n01", "n02")
OPERATOR = "op1"
CLIENT_DIR = "/etc/radiod/mqtt"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")


@dataclass
class Hub:
    """The output of one `radiod hub-setup` run and the Mosquitto running its hub/ folder."""

    out: Path
    broker: Broker

    def folder(self, login: str) -> Path:
        return self.out / ("nodes" if login in NODES else "operators") / login

    def config(self, login: str) -> Config:
        """The login's radiod config as its device reads it, with the files where this test keeps them."""
        folder = self.folder(login)
        config = load_config(folder / "radiod.yaml")
        assert config.mqtt.tls is not None and config.mqtt.tls.key_file == f"{CLIENT_DIR}/client.key"
        tls = TlsConfig(
            ca_file=str(folder / "ca.crt"), cert_file=str(folder / "client.crt"), key_file=str(folder / "client.key")
        )
        # 127.0.0.1, not the hub's name: the hub's own tools reach it over TLS on localhost.
        mqtt = replace(config.mqtt, host="127.0.0.1", port=self.broker.port, tls=tls, reconnect_max_s=2)
        return replace(config, mqtt=mqtt)

    def mqtt(self, login: str, **overrides: object) -> MqttConfig:
        return replace(self.config(login).mqtt, **overrides)


def hub_setup_args(out: Path, port: int, *extra: str) -> list[str]:
    return [
        "hub-setup",
        "--prefix", PREFIX,
        "--host", "hub.example.lan",
        "--node", ",".join(NODES),
        "--operator", OPERATOR,
        "--out", str(out),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--hub-dir", str(out / "hub"),
        "--client-dir", CLIENT_DIR,
        *extra,
    ]  # fmt: skip


def start_hub(root: Path, *extra: str) -> Hub:
    """Run `radiod hub-setup` into ``root/out`` and start Mosquitto on its hub/ folder.

    The port is chosen before Mosquitto binds it, so another test run may take it meanwhile; then hub-setup runs
    again with another port, which also shows that a second run keeps every secret.
    """
    out = root / "out"
    for _attempt in range(3):
        port = free_port()
        assert main(hub_setup_args(out, port, *extra)) == 0
        broker = Broker(root / "mosquitto", include_dir=out / "hub", port=port)
        try:
            broker.start()
        except RuntimeError as e:
            if "Address already in use" in str(e):
                continue
            raise
        return Hub(out, broker)
    pytest.fail("no free port for mosquitto")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One hub for the ACL tests (they use distinct topics): nodes n01 and n02, operator op1, a trusted key."""
    root = tmp_path_factory.mktemp("hub")
    _private, public = generate_keypair("hub-1", root / "keys")
    running = start_hub(root, "--trusted-key", str(public))
    try:
        yield running
    finally:
        running.broker.stop()


def retained(hub: Hub, topic_filter: str) -> dict[str, bytes]:
    """What an operator sees retained under ``topic_filter``."""
    return {m.topic: m.payload for m in collect_retained(hub.mqtt(OPERATOR), "test", topic_filter, settle_s=0.5)}


def next_incoming(inbox: queue.Queue[Incoming | LinkEvent], topic: str, timeout: float = 10) -> Incoming:
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            item = inbox.get(timeout=left)
        except queue.Empty:
            break
        if isinstance(item, Incoming) and item.topic == topic:
            return item
    pytest.fail(f"nothing arrived on {topic} within {timeout} s")


def start_link(hub: Hub, node: str, topic_filters: list[str]) -> tuple[MqttLink, queue.Queue[Incoming | LinkEvent]]:
    config = hub.config(node)
    inbox: queue.Queue[Incoming | LinkEvent] = queue.Queue()
    link = MqttLink(
        config.mqtt,
        config.node.id,
        subscriptions=topic_filters,
        state_topic=f"{PREFIX}/node/{node}/state",
        version="test",
        inbox=inbox,
    )
    link.start()
    first = inbox.get(timeout=10)
    assert isinstance(first, LinkEvent) and first.kind == "connected", link.last_error
    return link, inbox


# -- the ACL ---------------------------------------------------------------------------------------------------------


def test_a_node_cannot_post_a_bulletin_or_send_a_command(hub: Hub) -> None:
    bulletin = f"{PREFIX}/bulletin/all/forged"
    with pytest.raises(RadiodError, match=rf"refused the message on {bulletin}: Not authorized"):
        publish_once(hub.mqtt("n01"), "forge", [(bulletin, b"forged bulletin", True)], timeout=5)
    command = f"{PREFIX}/command/all"
    with pytest.raises(RadiodError, match=rf"refused the message on {command}: Not authorized"):
        publish_once(hub.mqtt("n01"), "forge", [(command, b"forged command", False)], timeout=5)

    assert retained(hub, f"{PREFIX}/bulletin/all/forged") == {}


def test_one_nodes_login_cannot_write_or_read_another_nodes_topics(hub: Hub) -> None:
    for kind in ("event", "health", "state"):
        topic = f"{PREFIX}/node/n02/{kind}"
        with pytest.raises(RadiodError, match=rf"refused the message on {topic}: Not authorized"):
            publish_once(hub.mqtt("n01"), "forge", [(topic, b'{"forged": true}', kind != "event")], timeout=5)
    # Nor may an operator speak for a node: what a node reports comes from that node.
    with pytest.raises(RadiodError, match="Not authorized"):
        publish_once(hub.mqtt(OPERATOR), "forge", [(f"{PREFIX}/node/n02/state", b"{}", True)], timeout=5)
    assert retained(hub, f"{PREFIX}/node/n02/#") == {}

    # n01 listening to every node's topics hears nothing of n02's, which the operator does receive.
    spy, spy_inbox = start_link(hub, "n01", [f"{PREFIX}/node/#"])
    try:
        health = f"{PREFIX}/node/n02/health"
        publish_once(
            hub.mqtt("n02"),
            "report",
            [(f"{PREFIX}/node/n02/event", b'{"seq": 1}', False), (health, b'{"status": "ok"}', True)],
            timeout=5,
        )
        assert retained(hub, health) == {health: b'{"status": "ok"}'}
        assert spy.last_error is None  # the subscription is granted; what it may deliver is filtered
        assert not [item for item in list(spy_inbox.queue) if isinstance(item, Incoming)]
    finally:
        spy.stop(timeout=2)


def test_a_node_reads_its_bulletins_and_commands_and_writes_its_own_topics(hub: Hub) -> None:
    operator = hub.mqtt(OPERATOR)
    bulletin = f"{PREFIX}/bulletin/node-n01/for-n01"
    publish_once(operator, "post", [(bulletin, b"signed bulletin", True)], timeout=5)

    link, inbox = start_link(hub, "n01", subscriptions(PREFIX, "n01", ["thon-1"]))
    try:
        assert link.client_id.endswith("-n01")
        message = next_incoming(inbox, bulletin)
        assert (message.payload, message.retained) == (b"signed bulletin", True)
        command = f"{PREFIX}/command/zone-thon-1"
        publish_once(operator, "command", [(command, b"signed command", False)], timeout=5)
        assert next_incoming(inbox, command).payload == b"signed command"

        for kind, retain in (("health", True), ("event", False)):
            mid = link.publish(f"{PREFIX}/node/n01/{kind}", f'{{"kind": "{kind}"}}', retain=retain)
            assert mid is not None and link.wait_published(mid, timeout=5), link.last_error
        assert link.last_error is None  # every subscription granted, nothing refused

        seen = retained(hub, f"{PREFIX}/node/n01/#")
        assert seen[f"{PREFIX}/node/n01/health"] == b'{"kind": "health"}'
        assert b'"online": true' in seen[f"{PREFIX}/node/n01/state"]
    finally:
        link.stop(timeout=2)
    assert b'"online": false' in retained(hub, f"{PREFIX}/node/n01/state")[f"{PREFIX}/node/n01/state"]


def test_an_operator_posts_bulletins_and_sends_commands(hub: Hub) -> None:
    bulletin = f"{PREFIX}/bulletin/all/from-op"
    publish_once(
        hub.mqtt(OPERATOR),
        "post",
        [(bulletin, b"signed bulletin", True), (f"{PREFIX}/command/all", b"signed command", False)],
        timeout=5,
    )
    assert retained(hub, bulletin) == {bulletin: b"signed bulletin"}


# -- who gets in -----------------------------------------------------------------------------------------------------


def test_plain_tcp_gets_no_mqtt_answer(hub: Hub) -> None:
    connect = bytes([0x10, 16, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 60, 0, 4]) + b"test"  # MQTT 3.1.1 CONNECT
    with socket.create_connection((hub.broker.host, hub.broker.port), timeout=5) as sock:
        sock.sendall(connect)
        answer = b""
        try:
            while chunk := sock.recv(1024):
                answer += chunk
        except ConnectionResetError:
            pass
    assert not answer.startswith(b"\x20")  # the broker closed the connection without a CONNACK

    with pytest.raises(RadiodError, match=f"broker 127.0.0.1:{hub.broker.port}"):
        publish_once(hub.mqtt("n01", tls=None), "plain", [(f"{PREFIX}/node/n01/event", b"{}", False)], timeout=3)


@pytest.mark.parametrize(
    ("case", "overrides"),
    [
        ("wrong password", {"password": "not-the-password"}),
        ("another node's password", {"username": "n02"}),
        ("unknown user", {"username": "nobody"}),
        ("anonymous", {"username": None, "password": None}),
    ],
)
def test_a_bad_login_is_refused(hub: Hub, case: str, overrides: dict[str, object]) -> None:
    with pytest.raises(RadiodError, match=r"refused the connection: (Bad user name or password|Not authorized)"):
        publish_once(hub.mqtt("n01", **overrides), case, [(f"{PREFIX}/node/n01/event", b"{}", False)], timeout=5)


def test_the_right_password_without_a_client_certificate_is_refused(hub: Hub) -> None:
    mqtt = hub.mqtt("n01")
    assert mqtt.tls is not None
    no_cert = replace(mqtt, tls=TlsConfig(ca_file=mqtt.tls.ca_file))
    with pytest.raises(RadiodError, match=f"broker 127.0.0.1:{hub.broker.port}"):
        publish_once(no_cert, "no-cert", [(f"{PREFIX}/node/n01/event", b"{}", False)], timeout=3)


def test_a_removed_node_is_locked_out_and_a_new_login_for_it_works(tmp_path: Path) -> None:
    hub = start_hub(tmp_path)
    try:
        old = hub.mqtt("n02")
        publish_once(old, "before", [(f"{PREFIX}/node/n02/event", b"{}", False)], timeout=5)

        shutil.rmtree(hub.out / "nodes" / "n02")  # rotating n02: its folder goes, a rerun makes a new login
        assert main(hub_setup_args(hub.out, hub.broker.port)) == 0
        hub.broker.restart()  # a password change reaches connected clients only on restart

        new = hub.mqtt("n02")
        assert new.password != old.password
        with pytest.raises(RadiodError, match="refused the connection"):
            publish_once(old, "old", [(f"{PREFIX}/node/n02/event", b"{}", False)], timeout=5)
        publish_once(new, "new", [(f"{PREFIX}/node/n02/event", b"{}", False)], timeout=5)
    finally:
        hub.broker.stop()


# -- the files -------------------------------------------------------------------------------------------------------


def make(out: Path, **changes: object) -> HubSetup:
    setup = HubSetup(prefix=PREFIX, hosts=("hub.example.lan",), nodes=NODES, operators=(OPERATOR,), out=out)
    return replace(setup, **changes)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_private_and_a_second_run_keeps_them(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = setup_hub(make(out), mosquitto_passwd=MOSQUITTO_PASSWD)
    assert first.new_ca and set(first.logins.values()) == {"new login"}
    secret = [out / "ca" / "ca.key", out / "hub" / "server.key", out / "hub" / "passwd"]
    for login in ("nodes/n01", "nodes/n02", f"operators/{OPERATOR}"):
        secret += [out / login / "client.key", out / login / "radiod.yaml"]
        assert mode(out / login) == 0o700
    assert {path: mode(path) for path in secret} == dict.fromkeys(secret, 0o600)
    before = {path: path.read_bytes() for path in [*secret, out / "nodes" / "n01" / "client.crt"]}
    del before[out / "hub" / "passwd"]  # hashed again with a new salt, from the same passwords
    operator_yaml = out / "operators" / OPERATOR / "radiod.yaml"
    operator_before = yaml.safe_load(before.pop(operator_yaml))  # its hub.nodes follows the node list

    os.chmod(out / "nodes" / "n01" / "client.key", 0o644)  # a careless copy
    second = setup_hub(make(out, nodes=("n01",)), mosquitto_passwd=MOSQUITTO_PASSWD)

    assert not second.new_ca and second.logins == {"n01": "unchanged", OPERATOR: "unchanged"}
    assert second.gone == ("nodes/n02",)
    assert {path: path.read_bytes() for path in before} == before
    operator_after = yaml.safe_load(operator_yaml.read_bytes())
    assert operator_after["mqtt"] == operator_before["mqtt"] and operator_after["hub"]["nodes"] == ["n01"]
    assert mode(out / "nodes" / "n01" / "client.key") == 0o600
    passwd = (out / "hub" / "passwd").read_text()
    assert sorted(line.split(":")[0] for line in passwd.splitlines()) == ["n01", OPERATOR]
    assert "user n02" not in (out / "hub" / "acl").read_text()


def test_the_node_config_names_the_node_its_login_and_its_trusted_keys(tmp_path: Path) -> None:
    _private, public = generate_keypair("hub-2", tmp_path / "keys")
    out = tmp_path / "out"
    setup_hub(make(out, trusted_keys=(public,), revoked_keys=("hub-1",)), mosquitto_passwd=None)

    config = load_config(out / "nodes" / "n02" / "radiod.yaml")
    assert config.node.id == "n02"
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.prefix, config.mqtt.username) == (
        "hub.example.lan", 8883, PREFIX, "n02",
    )  # fmt: skip
    assert config.mqtt.tls == TlsConfig(
        ca_file=f"{CLIENT_DIR}/ca.crt", cert_file=f"{CLIENT_DIR}/client.crt", key_file=f"{CLIENT_DIR}/client.key"
    )
    assert config.security.trusted_keys == {"hub-2": f"{CLIENT_DIR}/hub-2.pub.pem"}
    assert config.security.revoked_keys == ["hub-1"]
    assert (out / "nodes" / "n02" / "hub-2.pub.pem").read_bytes() == public.read_bytes()
    operator = load_config(out / "operators" / OPERATOR / "radiod.yaml")
    assert operator.mqtt.username == OPERATOR and operator.node.id != OPERATOR  # an operator is not a node


def test_a_lost_ca_is_refused_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    setup_hub(make(out), mosquitto_passwd=None)
    old_key = (out / "nodes" / "n01" / "client.key").read_bytes()
    shutil.rmtree(out / "ca")

    with pytest.raises(HubSetupError, match=r"ca\.key: missing, but .*server\.key exists.*--force"):
        setup_hub(make(out), mosquitto_passwd=None)
    assert not (out / "ca").exists()  # nothing written

    report = setup_hub(make(out, force=True), mosquitto_passwd=None)
    assert report.new_ca and (out / "nodes" / "n01" / "client.key").read_bytes() != old_key


def test_an_unusable_secret_is_named_and_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    setup_hub(make(out), mosquitto_passwd=None)
    (out / "nodes" / "n01" / "client.key").write_text("garbage")
    (out / "operators" / OPERATOR / "radiod.yaml").write_text("mqtt: {}\n")

    with pytest.raises(HubSetupError) as raised:
        setup_hub(make(out), mosquitto_passwd=None)
    message = str(raised.value)
    assert "nodes/n01/client.key: not an unencrypted PEM private key" in message
    assert f"operators/{OPERATOR}/radiod.yaml: mqtt.password missing" in message
    assert (out / "nodes" / "n01" / "client.key").read_text() == "garbage"


def test_every_bad_option_is_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad_key = tmp_path / "hub-1.key.pem"
    bad_key.write_text("not a key")
    argv = [
        "hub-setup", "--prefix", "radio/#", "--host", "bad host", "--node", "N1,n01", "--operator", "n01",
        "--out", str(tmp_path / "out"), "--port", "70000", "--hub-dir", "relative", "--trusted-key", str(bad_key),
    ]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    for expected in ("--prefix 'radio/#'", "--host 'bad host'", "--node 'N1'", "--operator 'n01': given twice",
                     "--port 70000", "--hub-dir 'relative'", "hub-1.key.pem: expected a file <kid>.pub.pem"):
        assert expected in err
    assert not (tmp_path / "out").exists()


# -- the password file -----------------------------------------------------------------------------------------------


@pytest.mark.skipif(MOSQUITTO_PASSWD is None, reason="mosquitto_passwd is not installed")
def test_hash_password_is_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    plain = tmp_path / "passwd"
    plain.write_text("n01:s3cret\n")
    subprocess.run([str(MOSQUITTO_PASSWD), "-U", str(plain)], check=True, capture_output=True)
    written = plain.read_text().strip().split(":", 1)[1]
    salt = base64.b64decode(written.split("$")[3])
    assert hash_password("s3cret", salt) == written


def test_a_password_file_hashed_without_mosquitto_passwd_logs_in(tmp_path: Path) -> None:
    with Broker(tmp_path / "mosquitto", users={"n01": "placeholder"}) as broker:
        write_password_file(broker.dir / "passwd", {"n01": "right"}, None)
        broker.restart()
        topic = f"{PREFIX}/node/n01/event"
        publish_once(broker.mqtt_config(username="n01", password="right"), "ok", [(topic, b"{}", False)], timeout=5)
        with pytest.raises(RadiodError, match="refused the connection"):
            publish_once(broker.mqtt_config(username="n01", password="wrong"), "no", [(topic, b"{}", False)], timeout=5)


# -- limits (issue 11, item 8) ---------------------------------------------------------------------------------------


def test_a_message_larger_than_any_radiod_message_is_not_kept(hub: Hub) -> None:
    """A node's login once retained a 10 MB message; the broker now takes nothing a node would reject as too large,
    and still takes the largest valid bulletin."""
    from radiod.protocol.messages import MAX_PAYLOAD_BYTES

    largest = f"{PREFIX}/bulletin/all/largest"
    publish_once(hub.mqtt(OPERATOR), "post", [(largest, b"x" * MAX_PAYLOAD_BYTES, True)], timeout=10)
    assert retained(hub, largest) == {largest: b"x" * MAX_PAYLOAD_BYTES}

    over = f"{PREFIX}/bulletin/all/over"
    with pytest.raises(RadiodError, match=rf"refused the message on {over}|acknowledged 0 of 1"):
        publish_once(hub.mqtt(OPERATOR), "post", [(over, b"x" * (MAX_PAYLOAD_BYTES + 1), True)], timeout=3)
    health = f"{PREFIX}/node/n01/health"
    with pytest.raises(RadiodError, match=r"dropped the connection|acknowledged 0 of 1"):
        publish_once(hub.mqtt("n01"), "flood", [(health, b"x" * 10_000_000, True)], timeout=5)
    assert retained(hub, over) == {}
    assert retained(hub, health).get(health, b"") != b"x" * 10_000_000


def test_a_node_cannot_keep_retained_messages_under_topics_of_its_own(hub: Hub) -> None:
    """Once a node's login retained 2000 topics under its own node/<id>/#: now it may write only the three topics
    of the protocol."""
    junk = [f"{PREFIX}/node/n01/junk/{i}" for i in range(3)]
    for topic in junk:
        with pytest.raises(RadiodError, match=rf"refused the message on {topic}: Not authorized"):
            publish_once(hub.mqtt("n01"), "junk", [(topic, b"{}", True)], timeout=5)
    assert retained(hub, f"{PREFIX}/node/n01/junk/#") == {}


def test_small_publishes_do_not_rewrite_the_brokers_database_each_time(tmp_path: Path) -> None:
    """With autosave_on_changes, 200 small publishes wrote the whole database 200 times (2.1 GB); the hub's broker
    now saves at most once a minute, and on a clean stop."""
    running = start_hub(tmp_path)
    try:
        health = f"{PREFIX}/node/n01/health"
        publish_once(
            running.mqtt("n01"), "report", [(health, f'{{"n": {i}}}'.encode(), True) for i in range(200)], timeout=20
        )
        saves = running.broker.log_text().count("Saving in-memory database")
        assert saves <= 1, f"{saves} database saves for 200 publishes"
        running.broker.restart()  # a clean stop saves the latest state
        assert {m.topic: m.payload for m in collect_retained(running.mqtt(OPERATOR), "t", health, 0.5)} == {
            health: b'{"n": 199}'
        }
    finally:
        running.broker.stop()
