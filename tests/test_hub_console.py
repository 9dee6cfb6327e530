"""The console's guards over HTTP, without a browser: a wrong password, a missing CSRF token, an operator posting
an emergency or adding an account, too many failed logins; and the cookie's flags. The end-to-end path (post,
preview, play, report) is in test_hub_browser.py."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import LONG, PREFIX, EventLog, Hub, ThreadNode
from starlette.testclient import TestClient

from radiod.hub import accounts, recorder
from radiod.hub.config import HubServiceConfig, SigningConfig, WebConfig
from radiod.hub.localbroker import Broker
from radiod.hub.web.app import create_app


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    config = HubServiceConfig(database=str(tmp_path / "hub.db"), cache_dir=str(tmp_path / "cache"),
                              web=WebConfig(login_attempts=3, login_pause_s=60))
    db = recorder.connect(config.database)
    accounts.add_user(db, "van-thu", "mat-khau-1", "operator")
    accounts.add_user(db, "chu-tich", "mat-khau-2", "approver")
    return TestClient(create_app(config, db), base_url="http://127.0.0.1")


@pytest.fixture
def posting_client(hub: Hub, broker: Broker, tmp_path: Path) -> TestClient:
    """A console that signs with the hub's key and posts on the real broker."""
    config = HubServiceConfig(mqtt=broker.mqtt_config(prefix=PREFIX), database=str(tmp_path / "hub.db"),
                              cache_dir=str(tmp_path / "cache"),
                              signing=SigningConfig(kid=hub.kid, key=str(hub.key), public_key=str(hub.public)))
    db = recorder.connect(config.database)
    accounts.add_user(db, "van-thu", "mat-khau-1", "operator")
    accounts.add_user(db, "chu-tich", "mat-khau-2", "approver")
    return TestClient(create_app(config, db), base_url="http://127.0.0.1")


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "the form has no CSRF token"
    return found[1]


def log_in(client: TestClient, name: str, password: str) -> tuple[int, str]:
    form = client.get("/login")
    answer = client.post("/login", data={"csrf": csrf_of(form.text), "name": name, "password": password},
                         follow_redirects=True)
    return answer.status_code, answer.text


def test_a_wrong_password_is_refused_and_audited(client: TestClient) -> None:
    status, page = log_in(client, "van-thu", "sai-mat-khau")
    assert status == 401 and "Sai tên đăng nhập hoặc mật khẩu" in page
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    log_in(client, "van-thu", "mat-khau-1")
    audit = client.get("/audit").text
    assert "đăng nhập sai" in audit and "đăng nhập" in audit


def test_the_session_cookie_is_httponly_and_samesite(client: TestClient) -> None:
    form = client.get("/login")
    answer = client.post("/login", data={"csrf": csrf_of(form.text), "name": "van-thu", "password": "mat-khau-1"},
                         follow_redirects=False)
    cookie = next(v for k, v in answer.headers.multi_items() if k == "set-cookie" and "radiod_session" in v)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert answer.headers["x-frame-options"] == "DENY"  # no click-jacked "stop all" in a frame


def test_a_login_without_its_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    answer = client.post("/login", data={"name": "van-thu", "password": "mat-khau-1"})
    assert answer.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_form_without_the_session_csrf_token_is_refused(client: TestClient) -> None:
    log_in(client, "chu-tich", "mat-khau-2")
    answer = client.post("/stop", data={"confirm": "yes"})
    assert answer.status_code == 403 and "CSRF" in answer.text
    answer = client.post("/stop", data={"confirm": "yes", "csrf": "forged"})
    assert answer.status_code == 403
    assert "dừng tất cả" not in client.get("/audit").text


def test_an_operator_may_not_post_an_emergency_nor_stop_all_nor_add_accounts(client: TestClient) -> None:
    log_in(client, "van-thu", "mat-khau-1")
    csrf = csrf_of(client.get("/post").text)
    answer = client.post("/post", data={"csrf": csrf, "text": "Cháy rừng!", "priority": "emergency",
                                        "status": "actual", "targets": "all", "when": "now", "action": "post"})
    assert answer.status_code == 403 and "approver" in answer.text
    assert client.post("/emergency", data={"csrf": csrf, "text": "x", "confirm": "yes"}).status_code == 403
    assert client.post("/stop", data={"csrf": csrf, "confirm": "yes"}).status_code == 403
    assert client.post("/users", data={"csrf": csrf, "name": "x", "password": "12345678",
                                       "role": "admin"}).status_code == 403
    assert "KHẨN CẤP" not in client.get("/").text  # the button is shown to approvers only


def test_repeated_failed_logins_pause_that_name(client: TestClient) -> None:
    for _ in range(3):
        assert log_in(client, "chu-tich", "doan-mo")[0] == 401
    status, page = log_in(client, "chu-tich", "mat-khau-2")  # even the right password waits now
    assert status == 429 and "Thử lại sau" in page
    assert log_in(client, "van-thu", "mat-khau-1")[0] == 200  # other names are not locked out


def test_one_address_guessing_through_names_pauses(client: TestClient) -> None:
    for i in range(12):  # 4 times login_attempts, each name tried once
        assert log_in(client, f"ten-{i}", "doan-mo")[0] == 401
    status, page = log_in(client, "van-thu", "mat-khau-1")
    assert status == 429 and "Thử lại sau" in page


def test_an_operators_emergency_draft_is_posted_when_an_approver_approves_it(posting_client: TestClient,
                                                                             hub: Hub) -> None:
    client = posting_client
    log_in(client, "van-thu", "mat-khau-1")
    csrf = csrf_of(client.get("/post").text)
    answer = client.post("/post", data={"csrf": csrf, "title": "Cháy rừng", "text": "Cháy rừng ở thôn Đông!",
                                        "priority": "emergency", "status": "actual", "targets": "all",
                                        "when": "now", "action": "draft"})
    assert answer.status_code == 200 and "Cháy rừng ở thôn Đông!" in answer.text
    assert 'class="primary approve"' not in answer.text  # an operator cannot approve
    assert hub.operator().retained_bulletins() == []  # nothing is on the air yet

    log_in(client, "chu-tich", "mat-khau-2")
    page = client.get("/drafts").text
    draft_id = re.search(r'action="/drafts/(\d+)/approve"', page)
    assert draft_id
    answer = client.post(f"/drafts/{draft_id[1]}/approve", data={"csrf": csrf_of(page)})
    assert answer.status_code == 200 and "/bulletin/" in str(answer.url)
    (posted,) = hub.operator().retained_bulletins()
    assert posted["payload"]["priority"] == "emergency"
    assert posted["payload"]["author"] == "van-thu, duyệt: chu-tich"
    assert "Không có bản nháp nào" in client.get("/drafts").text
    assert "duyệt tin" in client.get("/audit").text


def test_stop_all_interrupts_what_a_node_is_playing(posting_client: TestClient, hub: Hub, events: EventLog,
                                                    start_node: Callable[..., ThreadNode]) -> None:
    start_node()
    posted = hub.post(LONG)
    events.wait("started", bulletin=posted["id"], timeout=60)
    log_in(posting_client, "chu-tich", "mat-khau-2")
    csrf = csrf_of(posting_client.get("/emergency").text)
    answer = posting_client.post("/stop", data={"csrf": csrf, "confirm": "yes"})
    assert answer.status_code == 200 and str(answer.url).endswith("/nodes")
    (interrupted,) = events.wait("interrupted", bulletin=posted["id"], timeout=20)
    assert interrupted["reason"] == "stopped"
    assert "dừng tất cả" in posting_client.get("/audit").text


def test_an_edit_posts_the_same_id_with_the_next_rev(posting_client: TestClient, hub: Hub) -> None:
    client = posting_client
    log_in(client, "van-thu", "mat-khau-1")
    form = {"csrf": csrf_of(client.get("/post").text), "title": "Tiêm phòng", "text": "Tiêm phòng cho trẻ.",
            "priority": "normal", "status": "actual", "targets": "all", "when": "daily", "daily": "06:30",
            "date_until": "2030-12-31", "action": "post"}
    first = client.post("/post", data=form)
    bulletin_id = str(first.url).rsplit("/", 1)[1]
    edit_page = client.get(f"/post?edit={bulletin_id}").text
    assert f'name="bulletin_id" value="{bulletin_id}"' in edit_page and 'name="rev" value="2"' in edit_page
    assert "Tiêm phòng cho trẻ." in edit_page and 'value="06:30"' in edit_page
    client.post("/post", data={**form, "text": "Tiêm phòng cho trẻ dưới 5 tuổi.", "bulletin_id": bulletin_id,
                               "rev": "2"})
    (retained,) = hub.operator().retained_bulletins()
    assert (retained["payload"]["id"], retained["payload"]["rev"]) == (bulletin_id, 2)
    assert retained["payload"]["text"] == "Tiêm phòng cho trẻ dưới 5 tuổi."
    assert retained["payload"]["schedule"]["daily"] == {"times": ["06:30"], "until": "2030-12-31"}


def test_the_emergency_button_needs_its_confirmation_then_posts_to_all(posting_client: TestClient, hub: Hub) -> None:
    log_in(posting_client, "chu-tich", "mat-khau-2")
    csrf = csrf_of(posting_client.get("/emergency").text)
    unconfirmed = posting_client.post("/emergency", data={"csrf": csrf, "text": "Lũ quét!"})
    assert unconfirmed.status_code == 400 and "xác nhận" in unconfirmed.text
    assert hub.operator().retained_bulletins() == []
    posting_client.post("/emergency", data={"csrf": csrf, "text": "Lũ quét!", "confirm": "yes"})
    (posted,) = hub.operator().retained_bulletins()
    assert posted["topic"].endswith(f"/bulletin/all/{posted['payload']['id']}")
    assert (posted["payload"]["priority"], posted["payload"]["author"]) == ("emergency", "chu-tich")
    assert "tin khẩn cấp" in posting_client.get("/audit").text

    # An operator, who may not post an emergency, may not take one off the air either: not by a cancel, not by an
    # edit into a normal bulletin (the same id, the next rev).
    bulletin_id = posted["payload"]["id"]
    log_in(posting_client, "van-thu", "mat-khau-1")
    csrf = csrf_of(posting_client.get("/post").text)
    cancel = posting_client.post(f"/bulletin/{bulletin_id}/cancel", data={"csrf": csrf})
    edit = posting_client.post("/post", data={"csrf": csrf, "text": "Hết lũ.", "priority": "normal",
                                              "status": "actual", "targets": "all", "when": "now", "action": "post",
                                              "bulletin_id": bulletin_id, "rev": "2"})
    assert cancel.status_code == edit.status_code == 403 and "approver" in cancel.text
    (still,) = hub.operator().retained_bulletins()
    assert (still["payload"]["rev"], still["payload"]["priority"]) == (1, "emergency")


def test_the_preview_warns_in_vietnamese_as_radiod_post_warns_in_english(client: TestClient) -> None:
    log_in(client, "van-thu", "mat-khau-1")
    form = {"csrf": csrf_of(client.get("/post").text), "title": "Tiêm phòng", "text": "Tiêm phòng cho trẻ.",
            "priority": "normal", "status": "actual", "targets": "zone-thon-9", "when": "daily", "daily": "06:30",
            "voice": "vi-hue", "action": "preview"}
    page = client.post("/post", data=form)
    assert page.status_code == 200, page.text
    warnings = re.findall(r'<p class="problem warning">([^<]*)</p>', page.text)
    assert any("thon-9" in w and "không có trong cấu hình hub" in w for w in warnings), warnings
    assert any("vi-hue" in w and "giọng đọc" in w for w in warnings), warnings
    assert any("không có ngày kết thúc" in w for w in warnings), warnings


def test_the_preview_marks_the_readings_the_normalizer_guessed(client: TestClient) -> None:
    """An unknown acronym spelled out and a number/number with no day word are guesses: the operator sees them
    marked, with why, before posting; a known abbreviation is read without a mark."""
    log_in(client, "van-thu", "mat-khau-1")
    form = {"csrf": csrf_of(client.get("/post").text), "title": "Họp", "priority": "normal", "status": "actual",
            "text": "Tổ XKLĐ họp, hạn nộp là 5/12, mang theo CCCD.", "targets": "all", "when": "now",
            "action": "preview"}
    page = client.post("/post", data=form)
    assert page.status_code == 200, page.text
    unsure = re.search(r'<div class="unsure-list" id="unsure">(.*?)</div>', page.text, re.S)
    assert unsure, page.text
    items = re.findall(r"<li><b>([^<]*)</b>", unsure.group(1))
    assert items == ["XKLĐ", "5/12"], items
    assert "đọc từng chữ cái" in unsure.group(1) and "có phải là tỉ lệ" in unsure.group(1)
