"""The console's routes: log in, post with preview, schedule, nodes (live), reports, audit, accounts, emergency.

Every page is rendered on the server from the hub database; the JavaScript (static/app.js) only asks for
confirmation and feeds the nodes table from Server-Sent Events. Every POST checks the session's CSRF token, and
every action checks the role (:class:`~radiod.hub.accounts.Role`). The database connection belongs to the event
loop's thread; what blocks (signing and publishing, synthesis) runs in the thread pool without touching it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from radiod.errors import MediaError, RadiodError
from radiod.hub import accounts, drafts, recorder, reports
from radiod.hub.accounts import LoginThrottle, Role, User
from radiod.hub.config import HubServiceConfig
from radiod.hub.media import MediaInfo, MediaLibrary, length_text
from radiod.hub.nodes import NodeList
from radiod.hub.operator import COMMAND_LIFETIME_S, Operator, OperatorError, PostRequest, relay_for
from radiod.hub.session import publish_once
from radiod.hub.web import sessions, views
from radiod.protocol import builders
from radiod.protocol.enums import Action, Priority, Status
from radiod.protocol.topics import command_topic

if TYPE_CHECKING:
    from radiod.node.programme import ProgrammeMaker

STATIC = Path(__file__).with_name("static")
PRIORITY_LABEL = {"normal": "thường", "priority": "ưu tiên", "emergency": "khẩn cấp"}
STATUS_LABEL = {"actual": "thật", "exercise": "diễn tập", "test": "thử"}
DELIVERY_LABEL = {"accepted": "đã nhận", "started": "đang phát", "finished": "đã phát", "interrupted": "bị ngắt",
                  "failed": "lỗi", "skipped": "bỏ qua", "rejected": "từ chối"}
ACTION_LABEL = {"login": "đăng nhập", "login_failed": "đăng nhập sai", "post": "đăng tin", "cancel": "hủy tin",
                "stop": "dừng tất cả", "emergency": "tin khẩn cấp", "user_add": "thêm tài khoản", "logout": "đăng xuất",
                "draft": "lưu nháp", "approve": "duyệt tin", "drop": "bỏ nháp"}
COLUMN_LABEL = {"node": "Cụm loa", "bulletin": "Bản tin", "title": "Tiêu đề", "priority": "Mức", "status": "Loại",
                "plays_finished": "Lượt phát trọn", "interrupted": "Bị ngắt", "failed": "Lỗi", "skipped": "Bỏ qua",
                "airtime_min": "Thời lượng (phút)", "bulletins": "Số bản tin", "nodes": "Số cụm loa",
                "kind": "Chương trình", "lang": "Ngôn ngữ"}
KIND_LABEL = {"text": "bản tin", "media": "bản ghi âm", "relay": "tiếp sóng"}
LANG_LABEL = {"vi": "tiếng Việt", "tyz": "tiếng Tày", "nut": "tiếng Nùng", "hnj": "tiếng Hmông", "blu": "tiếng Hmông",
              "khm": "tiếng Khmer", "cja": "tiếng Chăm"}
"""The languages the console names; any other BCP 47 tag is shown as it is."""
MEDIA_TYPES = {"mp3": "audio/mpeg", "aac": "audio/aac", "m4a": "audio/mp4", "ogg": "audio/ogg", "opus": "audio/ogg",
               "flac": "audio/flac", "wav": "audio/wav"}
WEEKDAYS = ["Thứ hai", "Thứ ba", "Thứ tư", "Thứ năm", "Thứ sáu", "Thứ bảy", "Chủ nhật"]


@dataclass
class Console:
    """What the routes share: the config, the database (event-loop thread only), the operator, and the recorder
    whose commits wake the live pages (None when the recorder runs elsewhere)."""

    config: HubServiceConfig
    db: sqlite3.Connection
    operator: Operator
    throttle: LoginThrottle
    wait_changed: Callable[[int, float], int] | None
    tz: ZoneInfo
    maker: ProgrammeMaker | None = None  # the preview's, made on first use: loading voices takes a moment
    maker_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def library(self) -> MediaLibrary:
        return MediaLibrary(Path(self.config.media.dir), self.config.media_base_url())

    @property
    def preview_dir(self) -> Path:
        return Path(self.config.cache_dir) / "preview"

    def programme_maker(self) -> ProgrammeMaker:
        with self.maker_lock:
            if self.maker is None:
                from radiod.node.programme import ProgrammeMaker

                self.maker = ProgrammeMaker(self.config.operator_config())
            return self.maker

    def preview(self, payload: dict[str, Any], token: str) -> views.Preview:
        """The spoken preview of ``payload``; blocks (the first call loads the profile and the voices, then speech
        is synthesized), so the routes run it in the thread pool, never on the event loop."""
        return views.render_preview(payload, self.programme_maker(), self.preview_dir, token)


def _env() -> Environment:
    env = Environment(loader=PackageLoader("radiod.hub.web", "templates"), autoescape=select_autoescape())
    env.globals.update(PRIORITY_LABEL=PRIORITY_LABEL, STATUS_LABEL=STATUS_LABEL, DELIVERY_LABEL=DELIVERY_LABEL,
                       ACTION_LABEL=ACTION_LABEL, STATE_LABEL=views.STATE_LABEL, WEEKDAYS=WEEKDAYS,
                       COLUMN_LABEL=COLUMN_LABEL, KIND_LABEL=KIND_LABEL, LANG_LABEL=LANG_LABEL,
                       describe_schedule=views.describe_schedule, ago=views.ago, kind_of=reports.kind_of,
                       length_text=length_text)
    return env


def create_app(config: HubServiceConfig, db: sqlite3.Connection,
               wait_changed: Callable[[int, float], int] | None = None) -> Starlette:
    """The console over ``db`` (the recorder's database); ``wait_changed`` is the recorder's, for live pages."""
    accounts.init(db)
    sessions.init(db)
    drafts.init(db)
    operator = Operator(config.operator_config())
    console = Console(config, db, operator, LoginThrottle(config.web.login_attempts, config.web.login_pause_s),
                      wait_changed, ZoneInfo(config.timezone))
    env = _env()
    secure = config.web.secure_cookies if config.web.secure_cookies is not None else bool(config.web.tls_cert)
    env.filters["localtime"] = lambda ts, fmt="%d/%m/%Y %H:%M": (
        dt.datetime.fromtimestamp(float(ts), console.tz).strftime(fmt) if ts else "—"
    )

    def page(request: Request, name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
        user = request.state.user if hasattr(request.state, "user") else None
        body = env.get_template(name).render(request=request, user=user, csrf=getattr(request.state, "csrf", ""),
                                             Role=Role, **values)
        return HTMLResponse(body, status_code=status_code)

    def refuse(request: Request, status_code: int, message: str) -> HTMLResponse:
        return page(request, "error.html", status_code=status_code, message=message)

    def is_emergency(bulletin_id: str | None) -> bool:
        """Whether the posted bulletin ``bulletin_id`` is an emergency: only an approver may cancel or replace it,
        as only an approver may post one."""
        payload = recorder.bulletin(db, bulletin_id) if bulletin_id else None
        return payload is not None and payload.get("priority") == Priority.EMERGENCY

    Handler = Callable[[Request], Awaitable[Response]]

    def signed_in(role: Role = Role.OPERATOR) -> Callable[[Handler], Handler]:
        """Routes below need a live session with at least ``role``; a POST also needs the session's CSRF token."""

        def wrap(handler: Handler) -> Handler:
            async def route(request: Request) -> Response:
                found = sessions.session_user(db, request.cookies.get(sessions.SESSION_COOKIE))
                if found is None:
                    return RedirectResponse("/login", status_code=303)
                request.state.user, request.state.csrf = found
                if request.method == "POST":
                    form = await request.form()
                    request.state.form = form
                    if not sessions.same(found[1], _text(form, "csrf")):
                        return refuse(request, 403, "Thiếu hoặc sai mã bảo vệ biểu mẫu (CSRF). Tải lại trang.")
                if not found[0].role.may(role):
                    return refuse(request, 403, f"Việc này cần quyền {role}.")
                return await handler(request)

            return route

        return wrap

    # ----- login -----
    async def login_form(request: Request, message: str = "", status_code: int = 200) -> Response:
        token = secrets.token_urlsafe(24)
        response = page(request, "login.html", status_code=status_code, login_csrf=token, message=message)
        response.set_cookie(sessions.LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure,
                            max_age=3600)
        return response

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return await login_form(request)
        form = await request.form()
        if not sessions.same(request.cookies.get(sessions.LOGIN_CSRF_COOKIE), _text(form, "csrf")):
            return await login_form(request, "Thiếu mã bảo vệ biểu mẫu. Vui lòng thử lại.", 403)
        name, password = _text(form, "name").strip(), _text(form, "password")
        address = request.client.host if request.client else "?"
        wait = console.throttle.blocked_for(name, address)
        if wait > 0:
            return await login_form(request, f"Sai mật khẩu quá nhiều lần. Thử lại sau {int(wait) + 1} giây.", 429)
        user = await run_in_threadpool(accounts.verify, db, name, password)
        if user is None:
            console.throttle.failed(name, address)
            accounts.audit(db, name or "?", "login_failed", address=address)
            return await login_form(request, "Sai tên đăng nhập hoặc mật khẩu.", 401)
        console.throttle.succeeded(name, address)
        accounts.audit(db, user.name, "login", address=address)
        token = sessions.open_session(db, user.name, config.web.session_hours * 3600)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(sessions.SESSION_COOKIE, token, httponly=True, samesite="strict", secure=secure,
                            max_age=int(config.web.session_hours * 3600))
        response.delete_cookie(sessions.LOGIN_CSRF_COOKIE)
        return response

    @signed_in()
    async def logout(request: Request) -> Response:
        sessions.close_session(db, request.cookies.get(sessions.SESSION_COOKIE))
        accounts.audit(db, request.state.user.name, "logout")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(sessions.SESSION_COOKIE)
        return response

    # ----- bulletins -----
    @signed_in()
    async def home(request: Request) -> Response:
        items = []
        for b in recorder.bulletins(db, 50):
            found = reports.delivery(db, b["id"], config.expected_nodes(), config.nodes.zones)
            items.append((b, found))
        return page(request, "home.html", items=items, now=time.time())

    @signed_in()
    async def bulletin_page(request: Request) -> Response:
        bulletin_id = request.path_params["id"]
        payload = recorder.bulletin(db, bulletin_id)
        if payload is None:
            return refuse(request, 404, f"Không có bản tin {bulletin_id}.")
        found = reports.delivery(db, bulletin_id, config.expected_nodes(), config.nodes.zones)
        return page(request, "bulletin.html", b=payload, delivery=found, now=time.time())

    @signed_in()
    async def post_page(request: Request) -> Response:
        kind = request.query_params.get("kind", "text")
        values: dict[str, Any] = {"priority": "normal", "status": "actual", "targets": "all", "when": "now",
                                  "repeat": 1, "chime": True, "voice": config.speech.voice, "lang": "vi",
                                  "kind": kind if kind in KIND_LABEL else "text"}
        if (edit := request.query_params.get("edit")) and (payload := recorder.bulletin(db, edit)):
            values = _form_values(payload)
        elif (draft_id := request.query_params.get("draft", "")).isdigit() and (draft := drafts.get(db, int(draft_id))):
            values = {**draft.form, "draft_id": draft.id}
        return page(request, "post.html", v=values, preview=None, problems=[], zones=sorted(config.nodes.zones),
                    nodes=_known_nodes(console), media=_media_of(console.library, values))

    @signed_in()
    async def post_submit(request: Request) -> Response:
        form: FormData = request.state.form
        user: User = request.state.user
        values = {k: _text(form, k) for k in form if k != "csrf"}
        values["chime"] = "chime" in form
        values["weekdays"] = [int(d) for d in form.getlist("weekdays") if str(d).isdigit()]
        common: dict[str, Any] = {"v": values, "zones": sorted(config.nodes.zones), "nodes": _known_nodes(console)}
        upload = form.get("media_file")
        if values.get("kind") == "media" and isinstance(upload, UploadFile) and upload.filename:
            try:
                added = await run_in_threadpool(_keep_upload, console.library, upload)
            except MediaError as exc:
                return page(request, "post.html", status_code=400, preview=None, media=None,
                            problems=[f"Tệp ghi âm: {exc}"], **common)
            values["media_name"] = added.name
        common["media"] = _media_of(console.library, values)
        try:
            req = _post_request(values, user.name, console.library)
        except (ValueError, OperatorError) as exc:
            return page(request, "post.html", status_code=400, preview=None, problems=[str(exc)], **common)
        if values.get("action") == "draft":
            form_values = {k: v for k, v in values.items() if k not in ("action", "draft_id", "bulletin_id", "rev")}
            draft_id = drafts.save(db, user.name, form_values)
            accounts.audit(db, user.name, "draft", draft=draft_id, title=req.title or "", priority=str(req.priority))
            return RedirectResponse("/drafts", status_code=303)
        if req.priority is Priority.EMERGENCY and not user.role.may(Role.APPROVER):
            return refuse(request, 403, "Chỉ người duyệt (approver) được đăng tin khẩn cấp.")
        if values.get("action") == "post" and is_emergency(req.bulletin_id) and not user.role.may(Role.APPROVER):
            return refuse(request, 403, "Chỉ người duyệt (approver) được sửa tin khẩn cấp.")
        try:
            plan = operator.plan(req)
        except OperatorError as exc:
            return page(request, "post.html", status_code=400, preview=None, problems=[str(exc)], **common)
        if values.get("action") != "post":
            nodes = NodeList(frozenset(common["nodes"]), {z: tuple(m) for z, m in config.nodes.zones.items()})
            problems = [views.warning_text(w) for w in operator.checks(plan, nodes)]
            if not req.text:  # a recording or a relay alone: nothing to speak, the page shows what plays
                return page(request, "post.html", preview=None, problems=problems, **common)
            token = secrets.token_urlsafe(12)
            spoken = {k: v for k, v in plan.payload.items() if k not in ("media", "relay")}  # the introduction
            try:
                preview = await run_in_threadpool(console.preview, spoken, token)
            except RadiodError as exc:
                return page(request, "post.html", status_code=400, preview=None, problems=[*problems, str(exc)],
                            **common)
            return page(request, "post.html", preview=preview, problems=[*problems, *preview.warnings], **common)
        try:
            posted = await run_in_threadpool(operator.publish, plan)
        except RadiodError as exc:
            return page(request, "post.html", status_code=502, preview=None, problems=[str(exc)], **common)
        accounts.audit(db, user.name, "emergency" if req.priority is Priority.EMERGENCY else "post",
                       bulletin=posted["id"], rev=posted["rev"], title=posted["title"], targets=posted["targets"])
        with db:
            recorder.store_bulletin(db, posted, "console", True, time.time())
        if str(values.get("draft_id", "")).isdigit():
            drafts.close(db, int(values["draft_id"]), "posted")
        return RedirectResponse(f"/bulletin/{posted['id']}", status_code=303)

    @signed_in()
    async def drafts_page(request: Request) -> Response:
        return page(request, "drafts.html", drafts=drafts.open_drafts(db))

    @signed_in(Role.APPROVER)
    async def approve(request: Request) -> Response:
        user: User = request.state.user
        draft = drafts.get(db, int(request.path_params["id"]))
        if draft is None or draft.state != "open":
            return refuse(request, 404, "Bản nháp không còn.")
        try:
            req = _post_request(draft.form, f"{draft.author}, duyệt: {user.name}", console.library)
            posted = await run_in_threadpool(operator.post, req)
        except (ValueError, RadiodError) as exc:
            return refuse(request, 400, f"Không đăng được bản nháp: {exc}")
        drafts.close(db, draft.id, "posted")
        accounts.audit(db, user.name, "approve", draft=draft.id, drafter=draft.author, bulletin=posted["id"],
                       title=posted["title"], priority=posted["priority"], targets=posted["targets"])
        with db:
            recorder.store_bulletin(db, posted, "console", True, time.time())
        return RedirectResponse(f"/bulletin/{posted['id']}", status_code=303)

    @signed_in()
    async def drop(request: Request) -> Response:
        draft = drafts.get(db, int(request.path_params["id"]))
        if draft is not None and draft.state == "open":
            drafts.close(db, draft.id, "dropped")
            accounts.audit(db, request.state.user.name, "drop", draft=draft.id, drafter=draft.author)
        return RedirectResponse("/drafts", status_code=303)

    async def preview_audio(request: Request) -> Response:
        if sessions.session_user(db, request.cookies.get(sessions.SESSION_COOKIE)) is None:
            return Response(status_code=401)
        name = request.path_params["name"]
        path = console.preview_dir / name
        if not name.endswith(".wav") or "/" in name or not path.is_file():
            raise HTTPException(404)
        return FileResponse(path, media_type="audio/wav")

    @signed_in()
    async def cancel(request: Request) -> Response:
        bulletin_id = request.path_params["id"]
        user: User = request.state.user
        if is_emergency(bulletin_id) and not user.role.may(Role.APPROVER):
            return refuse(request, 403, "Chỉ người duyệt (approver) được hủy tin khẩn cấp.")
        try:
            tombstone = await run_in_threadpool(operator.cancel, bulletin_id)
        except RadiodError as exc:
            return refuse(request, 502, f"Không hủy được: {exc}")
        accounts.audit(db, user.name, "cancel", bulletin=bulletin_id, rev=tombstone["rev"])
        with db:
            recorder.store_bulletin(db, tombstone, "console", True, time.time())
        return RedirectResponse(f"/bulletin/{bulletin_id}", status_code=303)

    # ----- emergency and stop all (approver) -----
    @signed_in(Role.APPROVER)
    async def emergency_page(request: Request) -> Response:
        return page(request, "emergency.html")

    @signed_in(Role.APPROVER)
    async def emergency(request: Request) -> Response:
        form: FormData = request.state.form
        user: User = request.state.user
        text = _text(form, "text").strip()
        if form.get("confirm") != "yes" or not text:
            return page(request, "emergency.html", status_code=400,
                        problems=["Nhập nội dung và đánh dấu xác nhận trước khi phát tin khẩn cấp."])
        req = PostRequest(text=text, title=_text(form, "title").strip() or None, priority=Priority.EMERGENCY,
                          author=user.name)
        try:
            posted = await run_in_threadpool(operator.post, req)
        except RadiodError as exc:
            return refuse(request, 502, f"Không phát được: {exc}")
        accounts.audit(db, user.name, "emergency", bulletin=posted["id"], rev=posted["rev"], title=posted["title"],
                       targets=posted["targets"])
        with db:
            recorder.store_bulletin(db, posted, "console", True, time.time())
        return RedirectResponse(f"/bulletin/{posted['id']}", status_code=303)

    @signed_in(Role.APPROVER)
    async def stop_all(request: Request) -> Response:
        user: User = request.state.user
        if request.state.form.get("confirm") != "yes":
            return page(request, "emergency.html", status_code=400, problems=["Đánh dấu xác nhận để dừng tất cả."])
        try:
            command_id = await run_in_threadpool(_stop_all, operator)
        except RadiodError as exc:
            return refuse(request, 502, f"Không gửi được lệnh dừng: {exc}")
        accounts.audit(db, user.name, "stop", command=command_id, targets=["all"])
        return RedirectResponse("/nodes", status_code=303)

    # ----- schedule, nodes -----
    @signed_in()
    async def schedule_page(request: Request) -> Response:
        today = dt.datetime.now(console.tz).date()
        try:
            offset = int(request.query_params.get("week", "0"))
        except ValueError:
            offset = 0
        monday = today - dt.timedelta(days=today.weekday()) + dt.timedelta(weeks=offset)
        plays = views.week_plays(recorder.bulletins(db), monday, console.tz, time.time())
        days = [(monday + dt.timedelta(days=i), [p for p in plays if p.start.date() == monday + dt.timedelta(days=i)])
                for i in range(7)]
        return page(request, "schedule.html", days=days, week=offset, today=today)

    def node_table() -> str:
        rows = views.node_rows(db, config.expected_nodes(), config.nodes.health_interval_s, time.time())
        return env.get_template("nodes_rows.html").render(rows=rows, now=time.time())

    @signed_in()
    async def nodes_page(request: Request) -> Response:
        return page(request, "nodes.html", table=node_table())

    @signed_in()
    async def nodes_stream(request: Request) -> Response:
        async def updates() -> AsyncIterator[str]:
            seen, last = -1, ""
            while not await request.is_disconnected():
                if console.wait_changed is not None:
                    seen = await run_in_threadpool(console.wait_changed, seen, 5.0)
                else:
                    await asyncio.sleep(2)
                table = node_table()
                if table != last:
                    last = table
                    yield "event: nodes\ndata: " + table.replace("\n", "\ndata: ") + "\n\n"
                else:
                    yield ": keep-alive\n\n"

        return StreamingResponse(updates(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    # ----- reports, audit, accounts -----
    @signed_in()
    async def reports_page(request: Request) -> Response:
        month = _month(request.query_params.get("month"), console.tz)
        per_node, per_bulletin = reports.monthly(db, month)
        return page(request, "reports.html", month=month, node_rows=reports.node_rows(per_node),
                    bulletin_rows=reports.bulletin_rows(db, per_bulletin), node_columns=reports.NODE_COLUMNS,
                    bulletin_columns=reports.BULLETIN_COLUMNS, language_columns=reports.LANGUAGE_COLUMNS,
                    language_rows=reports.node_rows(reports.by_language(db, month)),
                    printable="print" in request.query_params)

    @signed_in()
    async def report_csv(request: Request) -> Response:
        month = _month(request.path_params["month"], console.tz)
        per_node, per_bulletin = reports.monthly(db, month)
        if request.path_params["kind"] == "nodes":
            body = reports.to_csv(reports.NODE_COLUMNS, reports.node_rows(per_node))
        elif request.path_params["kind"] == "languages":
            body = reports.to_csv(reports.LANGUAGE_COLUMNS, reports.node_rows(reports.by_language(db, month)))
        else:
            body = reports.to_csv(reports.BULLETIN_COLUMNS, reports.bulletin_rows(db, per_bulletin))
        name = f"radiod-{request.path_params['kind']}-{month}.csv"
        return Response(body, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @signed_in()
    async def audit_page(request: Request) -> Response:
        return page(request, "audit.html", entries=accounts.audit_log(db))

    @signed_in(Role.ADMIN)
    async def users_page(request: Request) -> Response:
        problems: list[str] = []
        status_code = 200
        if request.method == "POST":
            form: FormData = request.state.form
            try:
                account = await run_in_threadpool(accounts.new_account, _text(form, "name").strip(),
                                                  _text(form, "password"), _text(form, "role"))
                made = accounts.store_user(db, *account)  # on the event loop, which owns the connection
                accounts.audit(db, request.state.user.name, "user_add", name=made.name, role=str(made.role))
            except accounts.AccountError as exc:
                problems, status_code = [str(exc)], 400
        return page(request, "users.html", status_code=status_code, users=accounts.users(db), problems=problems)

    async def media_file(request: Request) -> Response:
        """A recording of the library, for the nodes (no login: a node checks the signed sha256, so the file
        needs no secrecy and no trust in this server); only ``<sha256>.<format>`` names, no listing."""
        path = console.library.file(request.path_params["name"])
        if path is None:
            raise HTTPException(404)
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix.lstrip(".")])

    async def health(request: Request) -> Response:
        return Response("ok\n", media_type="text/plain")

    routes = [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", home),
        Route("/post", post_page),
        Route("/post", post_submit, methods=["POST"]),
        Route("/preview/{name}", preview_audio),
        Route("/drafts", drafts_page),
        Route("/drafts/{id:int}/approve", approve, methods=["POST"]),
        Route("/drafts/{id:int}/drop", drop, methods=["POST"]),
        Route("/bulletin/{id}", bulletin_page),
        Route("/bulletin/{id}/cancel", cancel, methods=["POST"]),
        Route("/emergency", emergency_page),
        Route("/emergency", emergency, methods=["POST"]),
        Route("/stop", stop_all, methods=["POST"]),
        Route("/schedule", schedule_page),
        Route("/nodes", nodes_page),
        Route("/nodes/stream", nodes_stream),
        Route("/reports", reports_page),
        Route("/reports/{month}/{kind:str}.csv", report_csv),
        Route("/audit", audit_page),
        Route("/users", users_page, methods=["GET", "POST"]),
        Route("/healthz", health),
        Route("/media/{name}", media_file, methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])


class SecurityHeaders:
    """Headers on every answer: the pages use only their own scripts, styles and audio, may not be framed (a
    click-jacked "stop all"), and are not cached by a shared browser."""

    HEADERS: tuple[tuple[bytes, bytes], ...] = (
        (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"cache-control", b"no-store"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def _known_nodes(console: Console) -> list[str]:
    return sorted({*console.config.expected_nodes(), *(r["node"] for r in recorder.nodes(console.db))})


def _month(text: str | None, tz: ZoneInfo) -> str:
    if text and len(text) == 7 and text[4] == "-" and text[:4].isdigit() and text[5:].isdigit():
        return text
    return dt.datetime.now(tz).strftime("%Y-%m")


def _keep_upload(library: MediaLibrary, upload: UploadFile) -> MediaInfo:
    """An uploaded recording checked and kept in the library (Starlette has spooled it to a temporary file)."""
    upload.file.seek(0)
    with tempfile.NamedTemporaryFile(prefix="radiod-upload-") as tmp:
        shutil.copyfileobj(upload.file, tmp, 1 << 20)
        tmp.flush()
        return library.add(Path(tmp.name), upload.filename or "tệp tải lên")


def _media_of(library: MediaLibrary, v: dict[str, Any]) -> MediaInfo | None:
    """The recording the form's ``media_name`` names in the library, if any."""
    name = str(v.get("media_name", "")).strip()
    return library.get(name) if v.get("kind") == "media" and name else None


def _programme(v: dict[str, Any], library: MediaLibrary) -> tuple[dict | None, dict | None]:
    """The form's recording or relay as the bulletin's ``media`` and ``relay``; ValueError in the form's words."""
    kind = v.get("kind", "text")
    if kind == "media":
        info = _media_of(library, v)
        if info is None:
            raise ValueError("Tệp ghi âm: chọn tệp âm thanh (mp3, m4a, ogg, opus, flac, wav) để tải lên.")
        return info.descriptor(), None
    if kind != "relay":
        return None, None
    url = str(v.get("relay_url", "")).strip()
    if not url.startswith(("http://", "https://")):
        raise ValueError("Địa chỉ luồng phát: nhập địa chỉ http:// hoặc https:// của đài huyện, tỉnh.")
    duration, until = str(v.get("relay_duration", "")).strip(), str(v.get("relay_until", "")).strip()
    if bool(duration) == bool(until):
        raise ValueError("Tiếp sóng: nhập thời lượng (ví dụ 30m, 1h30m) hoặc giờ kết thúc, chỉ một trong hai.")
    try:
        return None, relay_for(url, duration or None, until or None)
    except OperatorError:  # both or neither is refused above: what is left is a length it cannot read
        raise ValueError(f"Thời lượng «{duration}»: viết như 30m, 90s hoặc 1h30m, tối đa 6 giờ.") from None


def _post_request(v: dict[str, Any], author: str, library: MediaLibrary) -> PostRequest:
    """The post form as a PostRequest; ValueError naming the field that cannot be read."""
    text = str(v.get("text", "")).strip()
    media, relay = _programme(v, library)
    if not text and not (media or relay):
        raise ValueError("Nội dung: chưa có chữ nào để đọc.")
    targets = tuple(t.strip() for t in str(v.get("targets", "all")).replace(",", " ").split() if t.strip())
    when = v.get("when", "now")
    at = (str(v.get("at", "")).strip(),) if when == "at" else ()
    if when == "at" and not at[0]:
        raise ValueError("Giờ phát: chọn ngày giờ.")
    daily = tuple(t.strip() for t in str(v.get("daily", "")).split(",") if t.strip()) if when == "daily" else ()
    if when == "daily" and not daily:
        raise ValueError("Phát hằng ngày: nhập giờ, ví dụ 06:30, 17:00.")
    volume = str(v.get("volume", "")).strip()
    gap = str(v.get("gap_s", "")).strip()
    return PostRequest(
        text=text,
        title=str(v.get("title", "")).strip() or None,
        targets=targets or ("all",),
        at=tuple(a.replace("T", " ") for a in at),
        daily=daily,
        weekdays=tuple(v.get("weekdays", ())) if when == "daily" else (),
        date_from=(str(v.get("date_from", "")).strip() or None) if when == "daily" else None,
        date_until=(str(v.get("date_until", "")).strip() or None) if when == "daily" else None,
        priority=Priority(v.get("priority", "normal")),
        status=Status(v.get("status", "actual")),
        voice=str(v.get("voice", "")).strip() or None,
        repeat=int(v.get("repeat") or 1),
        gap_s=float(gap) if gap else None,
        chime=bool(v.get("chime")),
        volume=float(volume) if volume else None,
        bulletin_id=str(v.get("bulletin_id", "")).strip() or None,
        rev=int(v.get("rev") or 1),
        author=author,
        lang=str(v.get("lang", "")).strip() or "vi",
        media=media,
        relay=relay,
    )


def _form_values(payload: dict[str, Any]) -> dict[str, Any]:
    """A posted bulletin as the post form's values, for an edit: same id, the next rev."""
    schedule = payload.get("schedule") or {}
    daily = schedule.get("daily") or {}
    relay = payload.get("relay") or {}
    when = "at" if "at" in schedule else "daily" if daily else "now"
    return {
        "text": payload.get("text", ""), "title": payload.get("title", ""),
        "priority": payload.get("priority", "normal"), "status": payload.get("status", "actual"),
        "targets": " ".join(payload.get("targets", ["all"])), "when": when,
        "at": (schedule.get("at") or [""])[0][:16], "daily": ", ".join(daily.get("times", [])),
        "weekdays": daily.get("weekdays", []), "date_from": daily.get("from", ""), "date_until": daily.get("until", ""),
        "repeat": schedule.get("repeat", 1), "gap_s": schedule.get("gap_s", ""), "voice": payload.get("voice", ""),
        "chime": payload.get("chime", True), "volume": payload.get("volume", ""),
        "bulletin_id": payload["id"], "rev": int(payload.get("rev", 1)) + 1,
        "lang": payload.get("lang", "vi"), "kind": reports.kind_of(payload),
        "media_name": (payload.get("media") or {}).get("url", "").rpartition("/")[2],
        "relay_url": relay.get("url", ""), "relay_until": relay.get("until", ""),
        "relay_duration": f"{relay['duration_s']:g}s" if "duration_s" in relay else "",
    }


def _stop_all(operator: Operator) -> str:
    """Sign and send a ``stop`` command to every node; returns its id."""
    now = int(time.time())
    command_id = f"c-stop-{dt.datetime.fromtimestamp(now, operator.tz).strftime('%Y%m%d-%H%M%S')}"
    payload = builders.command(id=command_id, iat=now, exp=now + COMMAND_LIFETIME_S, action=Action.STOP)
    publish_once(operator.config.mqtt, "console-stop", [(command_topic(operator.prefix, "all"),
                                                         operator.sign(payload), False)], timeout=10)
    return command_id


