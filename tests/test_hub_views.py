"""What the console computes apart from HTTP: the week calendar's plays, the post form's warnings, a schedule in
Vietnamese words; and the optional ``author`` field a console post carries, as a node reads it."""

from __future__ import annotations

import datetime as dt
import json
import time
from zoneinfo import ZoneInfo

from radiod.config import QuietHours
from radiod.hub.checks import post_warnings
from radiod.hub.nodes import NodeList
from radiod.hub.web import views
from radiod.protocol import builders
from radiod.protocol.messages import parse_bulletin_json

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
MONDAY = dt.date(2026, 11, 30)
LONG_AGO = dt.datetime(2026, 11, 1, tzinfo=TZ).timestamp()


def daily(**schedule: object) -> dict:
    return builders.bulletin(id="b-daily", iat=int(LONG_AGO), exp=int(LONG_AGO + 90 * 86400), text="Tiêm phòng.",
                             schedule=builders.schedule(**schedule))


def test_the_week_shows_each_daily_play_on_its_weekdays_until_its_last_day() -> None:
    bulletin = daily(times=["06:30", "17:00"], weekdays=[1, 3, 5], date_until="2026-12-02")
    plays = views.week_plays([bulletin], MONDAY, TZ, LONG_AGO)
    assert [p.start.strftime("%a %H:%M") for p in plays] == ["Mon 06:30", "Mon 17:00", "Wed 06:30", "Wed 17:00"]


def test_a_cancelled_or_expired_bulletin_has_no_plays() -> None:
    bulletin = daily(times=["06:30"])
    assert views.week_plays([{**bulletin, "cancelled": True}], MONDAY, TZ, LONG_AGO) == []
    assert views.week_plays([bulletin], MONDAY, TZ, bulletin["exp"] + 1) == []


def test_the_week_shows_no_at_time_after_the_bulletin_expires_as_no_node_plays_it() -> None:
    monday_0630 = dt.datetime.combine(MONDAY, dt.time(6, 30), TZ)
    at = [monday_0630.isoformat(), (monday_0630 + dt.timedelta(days=2)).isoformat()]
    bulletin = builders.bulletin(id="b-at", iat=int(LONG_AGO), exp=int(monday_0630.timestamp()) + 86400,
                                 text="Họp.", schedule=builders.schedule(at=at))
    plays = views.week_plays([bulletin], MONDAY, TZ, LONG_AGO)
    assert [p.start.strftime("%a %H:%M") for p in plays] == ["Mon 06:30"]


def form_warnings(payload: dict, zones: dict[str, tuple[str, ...]], nodes: set[str],
                  quiet: list[QuietHours]) -> list[str]:
    """The post form's warnings for ``payload``, as the console words them."""
    found = post_warnings(parse_bulletin_json(json.dumps(payload)), NodeList(frozenset(nodes), zones),
                          voices=["vi-north"], quiet=quiet, tz=TZ, now=time.time())
    return [views.warning_text(w) for w in found]


def test_the_post_form_warns_of_an_unknown_zone_a_node_never_seen_and_no_end_date() -> None:
    bulletin = {**daily(times=["06:30"]), "targets": ["zone-thon-9", "node-n77"]}
    warnings = form_warnings(bulletin, {"thon-1": ("n01",)}, {"n01"}, [])
    assert any("thon-9" in w for w in warnings)
    assert any("n77" in w for w in warnings)
    assert any("không có ngày kết thúc" in w for w in warnings)
    assert form_warnings({**daily(times=["06:30"], date_until="2026-12-31"), "exp": time.time() + 60},
                         {}, set(), []) == []


def test_the_post_form_warns_of_an_unknown_voice_and_a_long_validity() -> None:
    bulletin = {**daily(times=["06:30"], date_until="2027-12-31"), "voice": "vi-hue",
                "exp": int(time.time() + 60 * 86400)}
    warnings = form_warnings(bulletin, {}, set(), [])
    assert any("vi-hue" in w and "vi-north" in w for w in warnings)
    assert "bản tin còn hiệu lực hơn 30 ngày" in warnings


def test_schedules_in_vietnamese_words() -> None:
    assert views.describe_schedule({"now": True}) == "phát ngay"
    text = views.describe_schedule({"daily": {"times": ["06:30"], "weekdays": [1, 7], "until": "2026-12-31"},
                                    "repeat": 2})
    assert text == "hằng ngày 06:30 (T2, CN) đến 31/12/2026, lặp 2 lần"


def test_a_node_keeps_the_author_and_ignores_a_malformed_one() -> None:
    payload = builders.bulletin(id="b-1", iat=1, exp=2, text="Xin chào.", author="chu-tich")
    assert payload["author"] == "chu-tich"
    assert parse_bulletin_json(json.dumps(payload)).author == "chu-tich"
    assert parse_bulletin_json(json.dumps({**payload, "author": 42})).author is None  # never a reason to refuse
    assert "author" not in builders.bulletin(id="b-1", iat=1, exp=2, text="Xin chào.")


def test_the_post_form_warns_when_a_normal_bulletin_falls_in_quiet_hours() -> None:
    night = [QuietHours(start=dt.time(22, 0), end=dt.time(5, 0))]
    until = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    late = {**daily(times=["06:30", "23:15"], date_until=until), "exp": time.time() + 86400}
    warnings = form_warnings(late, {}, set(), night)
    assert any("23:15" in w and "giờ yên lặng" in w for w in warnings)
    assert not any("06:30" in w for w in warnings)
    emergency = {**late, "priority": "emergency"}  # an emergency plays in quiet hours too
    assert not any("giờ yên lặng" in w for w in form_warnings(emergency, {}, set(), night))


def test_the_console_says_every_reason_the_normalizer_marks_a_guess_in_vietnamese() -> None:
    from radiod.speech.normalize.rules import UNSURE

    assert views.UNSURE_VI.keys() == UNSURE.keys()
