"""The operator's commands on the hub, through the CLI and a real broker: what `post` refuses, warns about and
echoes, `--preview`, and what `bulletins`, `cancel`, `stop`, `volume` and `test --node` tell a new operator.

The hub's config is a file, as an operator has it: the broker, the signing key, the commune's node list and
zones (as hub-setup and the operator write them), quiet hours.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import wave
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from harness import PREFIX, SHORT, Hub

from radiod.cli import main
from radiod.config import HubConfig, QuietHours, ScheduleConfig, StorageConfig
from radiod.hub.localbroker import Broker
from radiod.hub.session import collect_retained
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
