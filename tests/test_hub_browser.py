"""The console in a real browser (Debian's chromium through chromium-driver and Selenium), on the real hub service,
a real broker and a real node with mock relays and a file sink: what a commune clerk does, click by click.

One browser for the module. Set RADIOD_SCREENSHOTS=docs/img to save the screenshots the README shows.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import PREFIX, Hub, ThreadNode, wait_for

from radiod.hub import accounts, recorder
from radiod.hub.config import HubServiceConfig, MediaConfig, NodesConfig, SigningConfig, WebConfig
from radiod.hub.localbroker import Broker
from radiod.hub.service import HubService
from radiod.hub.session import collect_retained
from radiod.protocol.jws import TrustStore
from radiod.protocol.messages import Bulletin, parse_message

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                reason="chromium and chromium-driver are not installed (make test installs them)")

DESKTOP = (1280, 900)
PHONE = (390, 844)
TEXT = "Thông báo: 7h30 ngày 6/12 họp thôn tại nhà văn hóa."


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    profile = tempfile.mkdtemp(prefix="radiod-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or ""
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", f"--window-size={DESKTOP[0]},{DESKTOP[1]}", "--lang=vi"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def console(hub: Hub, broker: Broker, tmp_path: Path) -> Iterator[str]:
    """The real hub service (recorder and console) in a thread; yields the console's address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = HubServiceConfig(
        mqtt=broker.mqtt_config(prefix=PREFIX, reconnect_max_s=1),
        database=str(tmp_path / "hub" / "hub.db"), cache_dir=str(tmp_path / "hub-cache"),
        signing=SigningConfig(kid=hub.kid, key=str(hub.key), public_key=str(hub.public)),
        web=WebConfig(port=port), nodes=NodesConfig(expected=["n01"], zones={"thon-1": ["n01"]}),
        media=MediaConfig(dir=str(tmp_path / "media")),
    )
    db = recorder.connect(config.database)
    accounts.add_user(db, "chu-tich", "mat-khau-2", "admin")
    accounts.add_user(db, "van-thu", "mat-khau-1", "operator")
    db.close()
    service = HubService(config)
    thread = threading.Thread(target=asyncio.run, args=(service.serve(),), daemon=True)
    thread.start()
    wait_for(lambda: service.server.started, 20, "the console to listen")
    yield f"http://127.0.0.1:{port}"
    service.stop()
    thread.join(timeout=30)


def shot(driver: WebDriver, name: str) -> None:
    """Desktop and phone screenshots of the page, when RADIOD_SCREENSHOTS names a folder."""
    folder = os.environ.get("RADIOD_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
        driver.set_window_size(width, height)
        driver.refresh()
        driver.save_screenshot(str(Path(folder) / f"console-{name}-{label}.png"))
    driver.set_window_size(*DESKTOP)


def log_in(driver: WebDriver, base: str, name: str, password: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{base}/login")
    driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#login-form button").click()
    wait_for(lambda: driver.execute_script("return document.readyState") == "complete"
             and (not driver.current_url.endswith("/login") or text_of(driver, "#login-message")), 10,
             "the login's answer")


def confirm(driver: WebDriver) -> None:
    """Say yes to the page's confirmation dialog."""
    alert = wait_for(lambda: _alert(driver), 5, "the confirmation dialog")
    alert.accept()


def _alert(driver: WebDriver) -> object | None:
    try:
        return driver.switch_to.alert
    except NoAlertPresentException:
        return None


def text_of(driver: WebDriver, css: str) -> str:
    """The element's text, read in one step: the live nodes table replaces its rows at any moment."""
    return str(driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.innerText : ''",
                                     css))


def test_clerk_posts_with_preview_sees_it_play_cancels_and_exports_the_report(
    browser: WebDriver, console: str, start_node: Callable[..., ThreadNode],
) -> None:
    log_in(browser, console, "chu-tich", "sai-roi")
    assert "Sai tên đăng nhập hoặc mật khẩu" in text_of(browser, "#login-message")
    shot(browser, "login")
    log_in(browser, console, "chu-tich", "mat-khau-2")
    assert "chu-tich" in text_of(browser, "header .who")

    browser.get(f"{console}/nodes")
    assert "chưa kết nối" in text_of(browser, "tr[data-node=n01]")  # expected, never connected
    start_node()
    wait_for(lambda: "chưa kết nối" not in text_of(browser, "tr[data-node=n01]"), 20,
             "the nodes page to update itself (SSE) when n01 connects")

    browser.get(f"{console}/post")
    browser.find_element(By.NAME, "title").send_keys("Họp thôn")
    browser.find_element(By.NAME, "text").send_keys(TEXT)
    browser.find_element(By.NAME, "chime").click()  # no chimes: the play takes seconds
    browser.find_element(By.ID, "preview-button").click()
    wait_for(lambda: browser.find_elements(By.ID, "preview"), 60, "the preview")
    spoken = browser.find_element(By.ID, "spoken")
    changed = [m.text for m in spoken.find_elements(By.TAG_NAME, "mark")]
    assert any("bảy giờ" in m for m in changed), changed  # 7h30 is read out in words, and highlighted
    assert "giây" in text_of(browser, "#duration")
    audio = browser.find_element(By.ID, "preview-audio")
    assert wait_for(lambda: browser.execute_script("return arguments[0].duration", audio), 10, "the audio to load")
    shot(browser, "preview")

    browser.find_element(By.ID, "post-button").click()
    confirm(browser)
    wait_for(lambda: "/bulletin/" in browser.current_url, 20, "the bulletin's page")

    def played() -> bool:
        browser.refresh()
        summary = browser.find_elements(By.ID, "summary")
        return bool(summary) and summary[0].get_attribute("data-played") == "1"

    wait_for(played, 60, "played on 1 of 1")
    assert "Đã phát trên 1/1 cụm loa" in text_of(browser, "#summary")
    shot(browser, "bulletin")

    browser.get(f"{console}/nodes")
    shot(browser, "nodes")
    browser.get(f"{console}/schedule")
    assert "Họp thôn" in text_of(browser, ".week")
    shot(browser, "schedule")
    browser.get(f"{console}/")
    shot(browser, "home")

    browser.get(f"{console}/")
    browser.find_element(By.CSS_SELECTOR, "#bulletins a").click()
    browser.find_element(By.ID, "cancel").click()
    confirm(browser)
    wait_for(lambda: "đã hủy" in text_of(browser, "main"), 20, "the bulletin shown as cancelled")

    month = dt.datetime.now().astimezone().strftime("%Y-%m")
    browser.get(f"{console}/reports?month={month}")
    shot(browser, "reports")
    browser.set_window_size(*PHONE)  # on a phone every figure is still there, the table scrolls sideways
    hidden = browser.execute_script(
        "return [...document.querySelectorAll('table.report th')].filter(th => !th.offsetParent).length")
    browser.set_window_size(*DESKTOP)
    assert hidden == 0
    body = browser.execute_async_script(
        "fetch(arguments[0]).then(r => r.text()).then(arguments[1])", f"{console}/reports/{month}/nodes.csv")
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows[0][:2] == ["node", "plays_finished"] and rows[1][:2] == ["n01", "1"]

    browser.get(f"{console}/audit")
    audit = text_of(browser, "#audit")
    for action in ("đăng nhập sai", "đăng tin", "hủy tin"):
        assert action in audit


def test_a_form_without_its_csrf_token_and_an_operators_emergency_are_refused(
    browser: WebDriver, console: str,
) -> None:
    log_in(browser, console, "chu-tich", "mat-khau-2")
    browser.get(f"{console}/emergency")
    shot(browser, "emergency")
    browser.execute_script("document.querySelectorAll('input[name=csrf]').forEach(e => e.remove())")
    browser.find_element(By.NAME, "text").send_keys("Thử")
    browser.find_element(By.NAME, "confirm").click()
    browser.find_element(By.CSS_SELECTOR, "form.emergency button").click()
    confirm(browser)
    wait_for(lambda: "CSRF" in text_of(browser, "#error"), 10, "the refusal")

    log_in(browser, console, "van-thu", "mat-khau-1")
    assert not browser.find_elements(By.ID, "emergency-link")
    browser.get(f"{console}/post")
    browser.find_element(By.NAME, "text").send_keys("Cháy rừng ở thôn Đông!")
    browser.find_element(By.CSS_SELECTOR, "select[name=priority] option[value=emergency]").click()
    browser.find_element(By.ID, "post-button").click()
    confirm(browser)
    wait_for(lambda: "approver" in text_of(browser, "#error"), 10, "the refusal")


def test_clerk_uploads_a_tay_recording_and_sets_a_daily_relay(
    browser: WebDriver, console: str, hub: Hub, broker: Broker, tmp_path: Path,
) -> None:
    speech = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-v", "vi", "-w", str(speech), "Chương trình tiếng Tày của xã."], check=True,
                   timeout=60)
    recording = tmp_path / "chuong-trinh-tay.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(speech), "-c:a", "libmp3lame", str(recording)],
                   check=True, timeout=60)
    log_in(browser, console, "van-thu", "mat-khau-1")
    browser.get(f"{console}/")
    browser.find_element(By.ID, "new-media").click()
    browser.find_element(By.ID, "media-file").send_keys(str(recording))
    browser.find_element(By.NAME, "title").send_keys("Chương trình tiếng Tày")
    lang = browser.find_element(By.ID, "lang")
    lang.clear()
    lang.send_keys("tyz")
    browser.find_element(By.CSS_SELECTOR, "input[name=when][value=daily]").click()
    browser.find_element(By.NAME, "daily").send_keys("06:00")
    browser.find_element(By.ID, "preview-button").click()
    wait_for(lambda: browser.find_elements(By.ID, "media"), 30, "the uploaded recording's card")
    assert "0:00:0" in text_of(browser, "#media-duration")
    audio = browser.find_element(By.ID, "media-audio")  # the browser plays it from the hub's /media/
    assert wait_for(lambda: browser.execute_script("return arguments[0].duration", audio), 10, "the audio to load")
    shot(browser, "media")

    browser.find_element(By.ID, "post-button").click()  # the file was kept at the preview: no second upload
    confirm(browser)
    wait_for(lambda: "/bulletin/" in browser.current_url, 20, "the bulletin's page")
    assert "bản ghi âm" in text_of(browser, "#programme") and "tiếng Tày" in text_of(browser, "#programme")
    [media] = retained(hub, broker).values()
    assert media.lang == "tyz" and media.media is not None and media.text == ""
    with urllib.request.urlopen(media.media.url, timeout=10) as answer:
        assert hashlib.sha256(answer.read()).hexdigest() == media.media.sha256

    browser.find_element(By.CSS_SELECTOR, "header a[href='/post']").click()
    browser.find_element(By.ID, "kind-relay").click()
    browser.find_element(By.ID, "relay-url").send_keys("http://dai-huyen.example/live.mp3")
    browser.find_element(By.ID, "relay-duration").send_keys("30m")
    browser.find_element(By.NAME, "title").send_keys("Tiếp sóng đài huyện")
    browser.find_element(By.CSS_SELECTOR, "input[name=when][value=daily]").click()
    browser.find_element(By.NAME, "daily").send_keys("06:00")
    browser.find_element(By.ID, "post-button").click()
    confirm(browser)
    wait_for(lambda: "/bulletin/" in browser.current_url, 20, "the relay's page")
    assert "tiếp sóng" in text_of(browser, "#programme") and "30.0 phút" in text_of(browser, "#programme")
    relays = [b for b in retained(hub, broker).values() if b.relay is not None]
    assert len(relays) == 1 and relays[0].relay is not None and relays[0].relay.duration_s == 1800
    browser.get(f"{console}/")
    assert "tiếp sóng" in text_of(browser, "#bulletins") and "tiếng Tày" in text_of(browser, "#bulletins")


def retained(hub: Hub, broker: Broker) -> dict[str, Bulletin]:
    """Every retained bulletin as node n01 reads it from the broker (signature, topic, schema), by id."""
    found: dict[str, Bulletin] = {}
    for msg in collect_retained(broker.mqtt_config(), "t", f"{PREFIX}/bulletin/#", settle_s=0.3):
        parsed = parse_message(msg.topic, msg.payload, prefix=PREFIX, node_id="n01", zones=["thon-1"],
                               trust=TrustStore({hub.kid: hub.public}, []), require_signature=True, now=time.time())
        assert isinstance(parsed, Bulletin)
        found[parsed.id] = parsed
    return found
