"""What the console's pages show, computed from the database and the hub config, apart from HTTP: the nodes
table, the week calendar of plays, and the post preview.

Kept out of the routes so each can be read (and tested) as plain data.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from radiod.errors import Rejected
from radiod.hub import recorder
from radiod.hub.checks import LONG_EXPIRY_DAYS, Code, PostWarning
from radiod.hub.nodes import ORDER, SILENT_INTERVALS
from radiod.protocol.messages import parse_bulletin_json
from radiod.protocol.occurrences import occurrences
from radiod.protocol.outgoing import Health

if TYPE_CHECKING:
    from radiod.node.programme import ProgrammeMaker
    from radiod.speech.normalize import Lexicon


@dataclass
class NodeRow:
    """One line of the nodes page. ``state``: never (never connected), offline, silent, crit, warn, unknown, ok."""

    node: str
    state: str
    last_seen: float | None = None
    version: str | None = None
    playing: str | None = None
    failed: list[str] = field(default_factory=list)


NODE_ORDER = {"never": -1, **ORDER}
STATE_LABEL = {"never": "chưa kết nối", "offline": "mất kết nối", "silent": "im lặng", "crit": "lỗi nặng",
               "warn": "cảnh báo", "unknown": "chưa rõ", "ok": "tốt"}


def node_rows(db: sqlite3.Connection, expected: list[str], interval_s: float, now: float) -> list[NodeRow]:
    """Every node the recorder heard of or the config expects, the most urgent first."""
    rows: dict[str, NodeRow] = {name: NodeRow(name, "never") for name in expected}
    for r in recorder.nodes(db):
        row = NodeRow(r["node"], r["health_status"] or "unknown", r["last_seen"], r["version"])
        if r["health"]:
            health = Health.from_dict(json.loads(r["health"]))
            row.failed = [f"{c.name}: {c.detail}" for c in health.checks if c.status != "ok"]
            if health.playing:
                row.playing = health.playing.bulletin
        if r["online"] == 0:
            row.state = "offline"
        elif row.last_seen is not None and now - row.last_seen > SILENT_INTERVALS * interval_s:
            row.state = "silent"
        rows[row.node] = row
    return sorted(rows.values(), key=lambda v: (NODE_ORDER[v.state], v.node))


def describe_schedule(schedule: dict[str, Any] | None) -> str:
    """A schedule in Vietnamese words: 'ngay', 'lúc 06:30 07/12', 'hằng ngày 06:30 (T2, T4) đến 31/12'."""
    if not schedule:
        return "—"
    if schedule.get("now"):
        text = "phát ngay"
    elif "at" in schedule:
        text = "lúc " + ", ".join(dt.datetime.fromisoformat(t).strftime("%H:%M %d/%m") for t in schedule["at"])
    elif daily := schedule.get("daily"):
        text = "hằng ngày " + ", ".join(daily.get("times", []))
        if daily.get("weekdays"):
            text += " (" + ", ".join("CN" if d == 7 else f"T{d + 1}" for d in daily["weekdays"]) + ")"
        if daily.get("until"):
            text += " đến " + dt.date.fromisoformat(daily["until"]).strftime("%d/%m/%Y")
    else:
        text = "?"
    if schedule.get("repeat", 1) != 1:
        text += f", lặp {schedule['repeat']} lần"
    return text


def ago(seconds: float) -> str:
    """'vừa xong', '5 phút trước', '3 giờ trước', '2 ngày trước'."""
    if seconds < 60:
        return "vừa xong"
    if seconds < 3600:
        return f"{int(seconds // 60)} phút trước"
    if seconds < 86400:
        return f"{int(seconds // 3600)} giờ trước"
    return f"{int(seconds // 86400)} ngày trước"


@dataclass(frozen=True)
class Play:
    """One scheduled play of a bulletin in the calendar."""

    start: dt.datetime
    bulletin: str
    title: str
    priority: str


def week_plays(bulletins: list[dict[str, Any]], monday: dt.date, tz: ZoneInfo, now: float) -> list[Play]:
    """Every play of the live (not cancelled, not expired) bulletins in the week from ``monday``, computed as the
    nodes compute them (:func:`radiod.protocol.occurrences.occurrences`)."""
    start = dt.datetime.combine(monday, dt.time(), tz)
    end = start + dt.timedelta(days=7)
    plays: list[Play] = []
    for b in bulletins:
        if b.get("cancelled") or b.get("exp", 0) <= now:
            continue
        try:
            bulletin = parse_bulletin_json(json.dumps(b, ensure_ascii=False))
        except Rejected:
            continue  # no node would play it: nothing to show
        assert bulletin.schedule is not None  # not cancelled
        if bulletin.schedule.now:
            starts = [dt.datetime.fromtimestamp(bulletin.iat, tz)]
        else:
            starts = list(occurrences(bulletin.schedule, tz, start,
                                      min(end, dt.datetime.fromtimestamp(bulletin.exp, tz))))
        plays += [Play(t, bulletin.id, bulletin.title, str(bulletin.priority)) for t in starts if start <= t < end]
    return sorted(plays, key=lambda p: p.start)


PREVIEW_KEEP_S = 3600
"""Rendered previews older than this are deleted when the next one is made."""


@dataclass(frozen=True)
class PreviewSpan:
    """A piece of the text in the preview: as written, as spoken, whether the reading differs, and why it is a
    guess (in Vietnamese; "" when the normalizer was sure) so the operator can fix the text before posting."""

    written: str
    spoken: str
    changed: bool
    unsure: str


UNSURE_VI = {
    "acronym": "chữ viết tắt lạ, đọc từng chữ cái: nếu có cách đọc, hãy viết đầy đủ hoặc thêm vào từ điển",
    "abbreviation-guess": "chữ viết tắt nhiều nghĩa, không có từ bên cạnh để chọn: đọc theo nghĩa thường gặp",
    "date-guess": "số/số được đọc là ngày tháng vì không có chữ \"ngày\" đứng trước: có phải là tỉ lệ?",
    "document-guess": "số văn bản có mã viết tắt nhiều nghĩa (đọc theo nghĩa thường gặp) hoặc mã lạ (đọc từng chữ cái)",
    "slash-or": "dấu gạch chéo giữa hai từ được đọc là \"hoặc\"",
}
"""Why a reading is a guess (the normalizer's ``Span.unsure`` rules), as the console says it."""


def preview_spans(text: str, region: str, lexicon: Lexicon) -> list[PreviewSpan]:
    """``text`` as the normalizer reads it (``radiod normalize --explain``), the guessed readings marked."""
    from radiod.speech.normalize import explain

    return [
        PreviewSpan(s.source, s.spoken, s.rule != "text" and s.source != s.spoken,
                    UNSURE_VI.get(s.rule, s.unsure) if s.unsure else "")
        for s in explain(text, region, lexicon)
    ]


@dataclass(frozen=True)
class Preview:
    """The post form's preview: the text as a node reads it, the rendered audio, and what to look at again."""

    spans: list[PreviewSpan]
    audio: str  # file name under the preview folder
    duration_s: float
    warnings: list[str]


def render_preview(payload: dict[str, Any], maker: ProgrammeMaker, folder: Path, token: str) -> Preview:
    """Normalize and render ``payload`` exactly as a node would (:class:`ProgrammeMaker`), audio to ``folder``."""
    from radiod.audio.pcm import write_wav_blocks

    parsed = parse_bulletin_json(json.dumps(payload, ensure_ascii=False))
    made = maker.for_bulletin(parsed, node_volume=1.0)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.wav"):  # a preview is listened to once, right away
        if time.time() - old.stat().st_mtime > PREVIEW_KEEP_S:
            old.unlink(missing_ok=True)
    name = f"{token}.wav"
    write_wav_blocks(folder / name, made.programme.rate, made.programme.blocks(8192))
    voice = maker.speaker.voice(maker.voice_for(parsed))
    spans = preview_spans(payload["text"], voice.region, maker.speaker.lexicon)
    return Preview(spans, name, made.programme.duration_s, made.warnings)


def warning_text(warning: PostWarning) -> str:
    """One of :func:`radiod.hub.checks.post_warnings` in Vietnamese, shown above the post form's preview."""
    match warning.code:
        case Code.QUIET_HOURS:
            quiet = sorted({p.strftime("%H:%M") for p in warning.plays})
            return f"phát lúc {', '.join(quiet)} rơi vào giờ yên lặng: cụm loa bỏ qua tin thường lúc đó"
        case Code.UNKNOWN_ZONE:
            return f"vùng {warning.name!r} không có trong cấu hình hub: không rõ cụm loa nào nhận"
        case Code.UNKNOWN_NODE:
            return f"cụm loa {warning.name!r} chưa từng kết nối"
        case Code.UNKNOWN_VOICE:
            return (f"giọng đọc {warning.name!r} không có trên hub (có: {', '.join(warning.known) or 'không có'}): "
                    "cụm loa không có giọng này đọc bằng giọng mặc định")
        case Code.NO_END_DATE:
            assert warning.until is not None
            return ("phát hằng ngày không có ngày kết thúc: bản tin phát đến khi hết hạn, "
                    f"{warning.until:%H:%M %d/%m/%Y}")
        case Code.LONG_EXPIRY:
            return f"bản tin còn hiệu lực hơn {LONG_EXPIRY_DAYS} ngày"
