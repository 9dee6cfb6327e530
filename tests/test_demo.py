"""``make demo`` as a newcomer runs it: the text bulletin, the recorded Tày programme and the live relay whose
stream drops, each reported on the wire, the command ending with 0."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

RADIOD = Path(sys.executable).with_name("radiod")


def test_the_demo_plays_text_a_recording_and_a_relay_that_drops_and_returns() -> None:
    run = subprocess.run([str(RADIOD), "demo"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=400, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    events = [(m.group(1), json.loads(m.group(2))) for m in re.finditer(r"^ +#\d+ +\S+ +(\w+) +(\{.*\})$",
                                                                           run.stdout, re.MULTILINE)]
    kinds = [kind for kind, _ in events]
    assert kinds.count("finished") == 3, run.stdout  # the text, the recording, the relay
    assert [d.get("lang") for kind, d in events if kind in ("started", "finished")][2:4] == ["tyz", "tyz"]
    dropped = [d for kind, d in events if kind == "interrupted"]
    assert [d["reason"] for d in dropped] == ["no_signal"]
    assert kinds[-3:] == ["interrupted", "started", "finished"]  # off the air, back on, to the relay's end
    timeline = re.findall(r"^ +\+?[\d.]+ s +amplifier +(ON|off)$", run.stdout, re.MULTILINE)
    assert timeline == ["ON", "off"] * 4  # text, recording, relay, relay again: never left on
