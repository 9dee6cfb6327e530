"""Config and firmware-profile errors as a technician sees them from `radiod validate`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from radiod import schema
from radiod.cli import main
from radiod.config import REPO_ROOT, Config, load_config
from radiod.errors import ProfileError
from radiod.profiles import available_profiles, load_profile
from radiod.protocol.jws import generate_keypair

EXAMPLE = REPO_ROOT / "config.example.yaml"
PROFILES = REPO_ROOT / "firmware_profiles"


def validate(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    code = main(["validate", "--config", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_example_config_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Valid once the hub's public key is where it says (validate checks the files a node reads)."""
    _private, public = generate_keypair("hub-1", tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(EXAMPLE.read_text().replace("/etc/radiod/keys/hub-1.pub.pem", str(public)), encoding="utf-8")
    assert main(["validate", "--config", str(config)]) == 0
    assert "ok" in capsys.readouterr().out


def example_lines() -> dict[str, str]:
    """Each key of the example (``section.key``, or ``section``) -> its line, commented-out keys included."""
    lines: dict[str, str] = {}
    section = ""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if top := re.match(r"^(\w+):", line):
            section = top[1]
            lines[section] = line
        elif key := re.match(r"^  #? ?(\w+):", line):
            lines[f"{section}.{key[1]}"] = line
    return lines


def test_example_config_documents_every_key_in_its_section_with_its_default() -> None:
    """A technician copies the example: every key is there, in its own section (``relay.reconnect_max_s`` is not
    ``mqtt.reconnect_max_s``), with a comment, and the value shown is the default unless the comment says example."""
    lines = example_lines()
    values = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for key, _doc, default in schema.field_docs(Config):
        assert key in lines and "#" in lines[key], f"{key} is not documented in its section of the example"
        section, _, leaf = key.partition(".")
        shown = values.get(section) if not leaf else (values.get(section) or {}).get(leaf, default)
        if not leaf or "example" in lines[key].split("#", 1)[1]:
            continue
        assert shown == default, f"{key}: the example shows {shown!r}, the default is {default!r}"


def test_unknown_key_names_path_line_and_suggestion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(tmp_path, "node:\n  id: n07\nmqtt:\n  hots: 10.0.0.1\n", capsys)
    assert code == 2
    assert "config.yaml:4: mqtt.hots: unknown key 'hots' (did you mean 'host'?)" in out
    assert "Traceback" not in out


def test_wrong_type_names_key_line_and_expectation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(tmp_path, "mqtt:\n  port: eighteen\naudio:\n  volume: 3\n", capsys)
    assert code == 2
    assert "config.yaml:2: mqtt.port: expected a whole number, got the string 'eighteen'" in out
    assert "config.yaml:4: audio.volume: must be at most 1" in out


def test_unquoted_time_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # YAML 1.1 reads 22:00 as the number 1320; the message must say to quote it.
    code, out = validate(tmp_path, "schedule:\n  quiet_hours:\n    - {start: 22:00, end: '05:00'}\n", capsys)
    assert code == 2
    assert "config.yaml:3: schedule.quiet_hours[0].start: expected a time HH:MM in quotes" in out


def test_bad_node_id_and_zone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(tmp_path, "node:\n  id: Node 7\n  zones: [thon-1, 'Thôn 2']\n", capsys)
    assert code == 2
    assert "config.yaml:2: node.id: 'Node 7' does not match" in out
    assert "config.yaml:3: node.zones: 'Thôn 2' does not match" in out


def test_yaml_syntax_error_gives_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(tmp_path, "node:\n  id: n01\n mqtt: [\n", capsys)
    assert code == 2
    assert re.search(r"config\.yaml:\d+: YAML syntax error", out)


def test_duplicate_key_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(tmp_path, "node:\n  id: n01\n  id: n02\n", capsys)
    assert code == 2
    assert "config.yaml:3: YAML syntax error: duplicate key 'id'" in out


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read file" in capsys.readouterr().err


def test_unknown_profile_lists_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = validate(tmp_path, "gpio:\n  profile: rpi-relay-hat-8ch\n", capsys)
    assert code == 2
    assert "no such profile 'rpi-relay-hat-8ch'" in out
    assert "rpi-relay-hat-2ch" in out


def test_validate_entry_point_never_prints_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("node: [1, 2\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "radiod.cli", "validate", "--config", str(path)],
        capture_output=True, text=True, check=False,
    )
    assert run.returncode == 2
    assert "YAML syntax error" in run.stderr
    assert "Traceback" not in run.stderr


def test_shipped_profiles_load() -> None:
    names = available_profiles(PROFILES)
    assert {"mock", "rpi-relay-hat-2ch", "relay-board-4ch"} <= set(names)
    for name in names:
        profile = load_profile(name, PROFILES)
        assert profile.amplifier.max_on_s > 0
    assert load_profile("mock", PROFILES).pin_factory == "mock"
    assert len(load_profile("relay-board-4ch", PROFILES).lines) == 3


def test_invalid_profile_names_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "description: a bad board\namplifier:\n  pin: GPIO26\n  warmup_s: -1\n  polarity: low\n", encoding="utf-8"
    )
    with pytest.raises(ProfileError) as err:
        load_profile("bad", tmp_path)
    text = str(err.value)
    assert "bad.yaml:4: amplifier.warmup_s: must be at least 0" in text
    assert "bad.yaml:5: amplifier.polarity: unknown key 'polarity'" in text


def test_profile_missing_required_amplifier(tmp_path: Path) -> None:
    (tmp_path / "half.yaml").write_text("description: no amplifier\n", encoding="utf-8")
    with pytest.raises(ProfileError, match=r"half\.yaml:1: amplifier: required key is missing"):
        load_profile("half", tmp_path)


def test_defaults_without_a_config_file() -> None:
    config = load_config(None)
    assert config.node.timezone == "Asia/Ho_Chi_Minh"
    assert config.security.require_signature is True


def test_secrets_are_masked() -> None:
    path_config = schema.build(Config, schema.parse_yaml("mqtt:\n  password: hunter2\n", "c.yaml"), "c.yaml")
    plain = schema.to_plain(path_config)
    assert plain["mqtt"]["password"] == "********"
    assert schema.to_plain(path_config, mask_secrets=False)["mqtt"]["password"] == "hunter2"


# -- validate finds what run would hit (issue 11, item 11) -----------------------------------------------------------


def radiod(*args: str) -> subprocess.CompletedProcess[str]:
    """``radiod ARGS`` as a technician runs it: a process of its own."""
    return subprocess.run([sys.executable, "-m", "radiod.cli", *args], capture_output=True, text=True, check=False,
                          timeout=60)  # fmt: skip


BROKEN = """\
node:
  id: n07
  timezone: Asia/Hanoi
mqtt:
  tls:
    ca_file: {missing}/ca.crt
    cert_file: {missing}/client.crt
    key_file: {missing}/client.key
security:
  trusted_keys:
    hub-1: {missing}/hub-1.pub.pem
speech:
  voice: vi-hanoi
"""


def test_validate_reports_every_problem_run_would_hit_at_once(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(BROKEN.format(missing=tmp_path / "nowhere"), encoding="utf-8")
    run = radiod("validate", "--config", str(config))
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    expected = [
        (3, "node.timezone", "unknown time zone 'Asia/Hanoi'"),
        (6, "mqtt.tls.ca_file", "no such file"),
        (7, "mqtt.tls.cert_file", "no such file"),
        (8, "mqtt.tls.key_file", "no such file"),
        (11, "security.trusted_keys.hub-1", "cannot read the key of 'hub-1'"),
        (13, "speech.voice", "unknown voice 'vi-hanoi' (voices in"),
    ]
    for line, key, message in expected:
        assert any(text.startswith(f"{config}:{line}: {key}: ") and message in text for text in lines), (key, lines)
    assert "Asia/Ho_Chi_Minh" in run.stderr and "vi-north" in run.stderr  # what to write instead


def test_run_with_an_unknown_time_zone_exits_2_naming_it_without_a_traceback(tmp_path: Path) -> None:
    """It was a traceback at start, a restart loop under systemd."""
    config = tmp_path / "config.yaml"
    config.write_text(f"node:\n  timezone: Europe/Hanoi\nstorage:\n  dir: {tmp_path / 'state'}\n", encoding="utf-8")
    run = radiod("run", "--config", str(config))
    assert run.returncode == 2
    assert f"{config}:2: node.timezone: unknown time zone 'Europe/Hanoi'" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_voice_file_naming_an_unknown_fallback_is_found_with_its_line(tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    voices.mkdir()
    (voices / "vi-x.yaml").write_text("description: test\nvoice: vi\nfallback: vi-gone\n", encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(f"speech:\n  voice: vi-x\n  voices_dir: {voices}\n", encoding="utf-8")
    run = radiod("validate", "--config", str(config))
    assert run.returncode == 2
    assert f"{voices / 'vi-x.yaml'}:3: fallback: unknown voice 'vi-gone'" in run.stderr


def test_unquoted_null_output_gets_a_clear_message(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("audio:\n  output: null\n", encoding="utf-8")
    run = radiod("validate", "--config", str(config))
    assert run.returncode == 2
    assert f'{config}:2: audio.output: expected a string, got nothing (null); for the word null itself, put it in ' \
           'quotes: "null"' in run.stderr
    config.write_text('audio:\n  output: "null"\n', encoding="utf-8")
    assert radiod("validate", "--config", str(config)).returncode == 0


def test_a_problem_inside_an_optional_section_is_named_where_it_is(tmp_path: Path) -> None:
    """mqtt.tls may be left out; when it is there, what is wrong in it is named, not the section as a whole."""
    config = tmp_path / "config.yaml"
    config.write_text("mqtt:\n  host: hub.lan\n  tls:\n    ca_file: null\n    bogus: 1\n", encoding="utf-8")
    run = radiod("validate", "--config", str(config))
    assert run.returncode == 2
    assert f"{config}:4: mqtt.tls.ca_file: expected a string, got nothing (null)" in run.stderr
    assert f"{config}:5: mqtt.tls.bogus: unknown key 'bogus'" in run.stderr
    assert "expected a mapping or null, got a mapping" not in run.stderr
