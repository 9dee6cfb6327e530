"""The operator's commands on the hub, through the CLI and a real broker: what `post` refuses, warns about and
echoes, `--preview`, and what `bulletins`, `cancel`, `stop`, `volume` and `test --node` tell a new operator.

The hub's config is a file, as an operator has it: the broker, the signing key, the commune's node list and
zones (as hub-setup and the operator write them), quiet hours.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import wave
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from harness import PREFIX, SHORT, Hub, ThreadNode, node_config

from radiod.cli import main
from radiod.config import HubConfig, QuietHours, ScheduleConfig, StorageConfig
from radiod.hub.hubsetup import HubSetup, setup_hub
from radiod.hub.localbroker import Broker
from radiod.hub.operator import PostRequest
from radiod.hub.session import collect_retained, publish_once
from radiod.protocol.jws import generate_keypair
from radiod.schema import to_plain

HCM = ZoneInfo("Asia/Ho_Chi_Minh")


def write_config(hub: Hub, tmp_path: Path, *, quiet: tuple[str, str] | None = None) -> str:
    """The operator's config file: broker, key, nodes n01 and n02 (both in zone thon-1), optional quiet hours."""
    config = dataclasses.replace(
        hub.config(),
        hub=HubConfig(kid=hub.kid, signing_key=str(hub.key), nodes=["n01", "n02"], zones={"thon-1": ["n01", "n02"]}),
        storage=StorageConfig(dir=str(tmp_path / "state")),
        schedule=ScheduleConfig(quiet_hours=[QuietHours(start=dt.time.fromisoformat(quiet[0]),
                                                        end=dt.time.fromisoformat(quiet[1]))] if quiet else []),
    )
    path = tmp_path / "hub.yaml"
    path.write_text(yaml.safe_dump(to_plain(config, mask_secrets=False)), encoding="utf-8")
    return str(path)


@pytest.fixture
def hub_config(hub: Hub, tmp_path: Path) -> str:
    return write_config(hub, tmp_path)


def retained_bulletins(broker: Broker) -> list[str]:
    return [m.topic for m in collect_retained(broker.mqtt_config(), "t", f"{PREFIX}/bulletin/#", settle_s=0.3)
            if m.payload]


def post(config: str, *args: str) -> list[str]:
    return ["post", "--config", config, *args]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--daily", "6:30"], "--daily: expected \"HH:MM\""),
        (["--daily", "06:30,25:00"], "--daily: expected \"HH:MM\""),
        (["--daily", "06:30", "--weekdays", "1,8"], "--weekdays:"),
        (["--weekdays", "1,2,3"], "--weekdays only with --daily"),
        (["--until", "2030-01-01"], "--until only with --daily"),
        (["--weekdays", "mon"], "--weekdays mon: expected ISO weekday numbers"),
        (["--zone", "Thôn 1"], "--zone/--node:"),
        (["--voice", "../etc/passwd"], "--voice:"),
    ],
)
def test_post_refuses_what_every_node_would_reject(
    broker: Broker, hub_config: str, capsys: pytest.CaptureFixture[str], flags: list[str], named: str
) -> None:
    assert main(post(hub_config, *flags, SHORT)) == 1
    err = capsys.readouterr().err
    assert err.startswith("radiod post: ") and named in err, err
    assert retained_bulletins(broker) == []


def test_post_daily_without_until_lasts_a_month_and_says_when_where_until(
    broker: Broker, hub_config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(post(hub_config, "--daily", "06:30,17:00", "--zone", "thon-1", SHORT)) == 0
    out = capsys.readouterr().out.splitlines()
    bid = out[0]
    assert retained_bulletins(broker) == [f"{PREFIX}/bulletin/zone-thon-1/{bid}"]
    when, where, until = out[1:4]
    assert when.startswith("when:  ") and "06:30" in when and "17:00" in when and "Asia/Ho_Chi_Minh" in when
    assert where == "where: zone-thon-1: 2 known node(s) (n01, n02)"
    expires = dt.datetime.strptime(until.split()[2], "%Y-%m-%d").date()
    assert 29 <= (expires - dt.datetime.now(HCM).date()).days <= 30
    assert "hub.daily_expiry_days" in until
    main(["bulletins", "--config", hub_config])
    assert "active" in capsys.readouterr().out


def test_post_at_echoes_the_local_time_and_count_of_all_nodes(
    broker: Broker, hub_config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(post(hub_config, "--at", "2031-03-04 07:15", "--expires", "2031-03-05 00:00", SHORT)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "when:  Tue 2031-03-04 07:15 (Asia/Ho_Chi_Minh time)"
    assert out[2] == "where: all: 2 known node(s) (n01, n02)"
    assert out[3] == "until: Wed 2031-03-05 00:00 (--expires)"


def test_post_refuses_a_bulletin_that_expires_before_it_plays(
    broker: Broker, hub_config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(post(hub_config, "--at", "2031-03-04 07:15", "--expires", "2h", SHORT)) == 1
    assert "--at: no play between now and the expiry" in capsys.readouterr().err
    assert retained_bulletins(broker) == []


def test_post_warns_on_unknown_voice_zone_node_but_posts(
    broker: Broker, hub_config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(post(hub_config, "--voice", "vi-hue", "--zone", "thon-9", "--node", "n77", SHORT))
    captured = capsys.readouterr()
    assert code == 0
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 3, captured.err
    assert "--voice vi-hue: not in" in captured.err and "vi-north" in captured.err
    assert "--zone thon-9: not in the hub's zones (hub.zones: thon-1)" in captured.err
    assert "--node n77: not in the hub's node list" in captured.err
    assert "where: zone-thon-9, node-n77: 0 known node(s)" in captured.out
    assert len(retained_bulletins(broker)) == 2


def test_post_warns_when_a_normal_bulletin_falls_in_quiet_hours(
    broker: Broker, hub: Hub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(hub, tmp_path, quiet=("21:00", "05:30"))
    assert main(post(config, "--daily", "05:00,06:30", "--until", "2031-01-10", SHORT)) == 0
    err = capsys.readouterr().err
    assert "fall in quiet hours (21:00-05:30)" in err and "05:00" in err
    assert main(post(config, "--daily", "05:00", "--priority", "priority", SHORT)) == 0
    assert "quiet hours" not in capsys.readouterr().err


def test_post_warns_of_a_daily_bulletin_without_end_and_of_a_long_validity(
    broker: Broker, hub_config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(post(hub_config, "--daily", "06:30", SHORT)) == 0
    captured = capsys.readouterr()
    assert "warning: --daily without --until: it plays every day until it expires" in captured.err
    assert "(30 days, hub.daily_expiry_days, as no --until was given)" in captured.out
    assert "valid for more than" not in captured.err
    assert main(post(hub_config, "--daily", "06:30", "--until", "2031-01-10", SHORT)) == 0
    err = capsys.readouterr().err
    assert "without --until" not in err and "warning: valid for more than 30 days" in err


def test_preview_prints_the_spoken_text_writes_a_wav_and_posts_nothing(
    broker: Broker, hub_config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = tmp_path / "preview.wav"
    assert main(post(hub_config, "--preview", "-o", str(wav), "--no-chime", "Họp lúc 7h30 ngày 5/12.")) == 0
    out = capsys.readouterr().out
    assert "bảy giờ ba mươi phút" in out and "not posted" in out
    with wave.open(str(wav)) as w:
        assert w.getnframes() / w.getframerate() > 1.0
    assert retained_bulletins(broker) == []


def test_bulletins_hides_expired_and_cancelled_prune_clears_expired_cancel_twice_says_so(
    broker: Broker, hub: Hub, hub_config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    operator = hub.operator()
    now = time.time()
    active = operator.post(PostRequest(text=SHORT, title="Còn hiệu lực"))["id"]
    cancelled = operator.post(PostRequest(text=SHORT, title="Sẽ huỷ"))["id"]
    old = operator.bulletin(PostRequest(text=SHORT, title="Hết hạn", expires="1h"), now=now - 86400)
    publish_once(broker.mqtt_config(), "t", [(f"{PREFIX}/bulletin/all/{old['id']}", operator.sign(old), True)])
    assert main(["cancel", "--config", hub_config, cancelled]) == 0
    assert capsys.readouterr().out.strip() == f"{cancelled} cancelled (rev 2)"

    assert main(["cancel", "--config", hub_config, cancelled]) == 0
    assert capsys.readouterr().out.strip() == f"{cancelled} was already cancelled (rev 2); nothing published"
    assert [b["payload"]["rev"] for b in operator.retained_bulletins() if b["payload"]["id"] == cancelled] == [2]

    assert main(["bulletins", "--config", hub_config]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[:-1]] == [active]
    assert out[-1] == "(2 expired or cancelled not shown: --all shows them, --prune clears the expired)"
    assert main(["bulletins", "--config", hub_config, "--all"]) == 0
    states = {line.split()[0]: line.split()[2] for line in capsys.readouterr().out.splitlines()}
    assert states == {active: "active", cancelled: "cancelled", old["id"]: "expired"}

    assert main(["bulletins", "--config", hub_config, "--prune"]) == 0
    assert capsys.readouterr().out.strip() == f"cleared {PREFIX}/bulletin/all/{old['id']}"
    assert sorted(retained_bulletins(broker)) == sorted(f"{PREFIX}/bulletin/all/{b}" for b in (active, cancelled))


def test_hub_setup_operator_folder_has_what_post_needs(tmp_path: Path) -> None:
    _key, public = generate_keypair("hub-7", tmp_path / "keys")
    setup_hub(HubSetup(prefix=PREFIX, hosts=("hub.local",), nodes=("n01", "n02"), operators=("ubnd",),
                       out=tmp_path / "out", trusted_keys=(public,)), mosquitto_passwd=None)
    folder = tmp_path / "out" / "operators" / "ubnd"
    text = (folder / "radiod.yaml").read_text(encoding="utf-8")
    assert "Put the hub's private key hub-7.key.pem" in text
    hub = yaml.safe_load(text)["hub"]
    assert hub == {"nodes": ["n01", "n02"], "kid": "hub-7", "signing_key": "/etc/radiod/mqtt/hub-7.key.pem"}
    assert "hub" not in yaml.safe_load((tmp_path / "out" / "nodes" / "n01" / "radiod.yaml").read_text())


def test_stop_volume_and_test_reach_a_node_and_print_its_answers(
    broker: Broker, hub: Hub, hub_config: str, start_node: Callable[..., ThreadNode], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    node = start_node(node_config(hub, tmp_path, "n01"))
    assert main(["volume", "--config", hub_config, "0.4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("volume sent to all; waiting up to 10 s for n01")
    assert out[1:] == ["n01        volume 0.40", "not online, not asked to answer: n02"]
    assert node.daemon.store.get_setting("volume") == "0.4"

    assert main(["stop", "--config", hub_config, "--zone", "thon-1"]) == 0
    assert "n01        nothing was playing" in capsys.readouterr().out.splitlines()

    assert main(["test", "--config", hub_config, "--node", "n01"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "test sent to node-n01; waiting up to 120 s for n01"
    assert out[1] == "n01        test queued: line-1"
    assert out[2].startswith("n01        line-1: ok amplifier on, line line-1, 1000 Hz tone and phrase")
    assert out[3:] == ["n01        passed: line-1"]

    assert main(["stop", "--config", hub_config, "--node", "n02", "--timeout", "1"]) == 1
    out = capsys.readouterr().out
    assert "not online, not asked to answer: n02" in out
