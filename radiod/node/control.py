"""The daemon's control socket: the server ``radiod health``, ``status`` and ``test`` talk to.

A Unix stream socket, never a network port: only root and the members of ``control.group`` can use it (mode
0660), so a technician needs SSH and the group, an attacker on the commune LAN gets nothing. It lives in
``/run/radiod`` (systemd's ``RuntimeDirectory``) or, where that directory does not exist, in ``storage.dir``.
The client side (the CLI) is :mod:`radiod.technician`; this module knows nothing of the daemon but the
callables it is given.

Protocol: the client sends one JSON object on one line, ``{"cmd": "health"}``; the server answers with zero or
more ``{"progress": {...}}`` lines (the steps of a test, as they end) and one final line, ``{"ok": true,
"result": ...}`` or ``{"ok": false, "error": "..."}``, then closes. Line-delimited JSON, so ``socat`` or ``nc -U``
is enough to debug it.

Threads: the server accepts in its own thread and answers each connection in a short-lived one. Those threads
never touch the daemon's state: every request runs on the daemon's main loop (the ``on_main_loop`` given to
:func:`daemon_server`), the one thread allowed to, and the connection waits for the answer. A main loop that
does not answer within :data:`MAIN_LOOP_TIMEOUT_S` is reported as stalled, which is exactly what ``radiod
health`` must say then.

SIGUSR1 (:func:`install_stack_dump`) is the other lever a technician has on a running daemon: it writes every
thread's stack to the journal, to see where a stalled daemon is stuck before the watchdog restarts it.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import signal
import socket
import stat
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from types import FrameType
from typing import Any

from radiod.config import Config
from radiod.errors import RadiodError

log = logging.getLogger(__name__)

RUN_DIR = Path("/run/radiod")
"""systemd's ``RuntimeDirectory=radiod``: used when it exists and is writable, never created by radiod."""
SOCKET_NAME = "control.sock"
MAX_REQUEST = 64 * 1024
MAIN_LOOP_TIMEOUT_S = 10.0
"""How long a request waits for the main loop; the loop normally answers in milliseconds."""
TEST_TIMEOUT_S = 600.0
"""How long ``radiod test`` waits for its result: queued behind a long bulletin, then a few lines tested."""
_SUN_PATH_MAX = 100
"""Unix socket paths longer than this (the kernel takes 107 bytes) are reached through /proc/self/fd."""

Progress = Callable[[dict[str, Any]], None]
Handler = Callable[[dict[str, Any], Progress], Any]
"""Answers one request on a connection thread; ``Progress`` sends an intermediate line to the client."""
TestRunner = Callable[[list[str] | None, Progress, Callable[[dict[str, Any]], None]], Any]
"""Queues the technician's test of some speaker lines (None: all), with a progress and a done callback."""


# ----- where the socket is -----------------------------------------------------------------------------------------


def socket_paths(config: Config) -> list[Path]:
    """Where a daemon with this config may have its socket: the configured path, or the two defaults."""
    if config.control.socket:
        return [Path(config.control.socket)]
    return [RUN_DIR / SOCKET_NAME, Path(config.storage.dir) / SOCKET_NAME]


def server_path(config: Config) -> Path:
    """The socket the daemon binds: /run/radiod when systemd made it for us, else under storage.dir (a test,
    a daemon started by hand), so two daemons on one machine never meet there."""
    paths = socket_paths(config)
    if len(paths) == 1 or os.access(RUN_DIR, os.W_OK | os.X_OK):
        return paths[0]
    return paths[1]


@contextlib.contextmanager
def reachable(path: Path) -> Iterator[str]:
    """``path`` as an address bind/connect accept: itself, or via an open descriptor of its directory when it
    is too long for a Unix socket address (pytest's temporary directories easily are)."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


# ----- the server, in the daemon -----------------------------------------------------------------------------------


class ControlServer:
    """Listens on ``path`` (0660, group ``group``) and answers each request with ``handlers[cmd]``."""

    def __init__(self, path: Path, group: str | None, handlers: Mapping[str, Handler]) -> None:
        self.path = path
        self.group = group
        self.handlers = dict(handlers)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        """Bind and listen; raises RadiodError naming the path when it cannot, or when a daemon answers there."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            with reachable(self.path) as address:
                sock.bind(address)
            os.chmod(self.path, 0o660)
            self._set_group()
            sock.listen(8)
            sock.settimeout(0.5)  # accept() wakes up this often to see stop()
        except OSError as exc:
            sock.close()
            raise RadiodError(f"control socket {self.path}: {exc.strerror or exc}") from exc
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._thread.start()
        log.info("control socket %s (mode 0660, group %s)", self.path, self._group_name())

    def stop(self) -> None:
        """Stop accepting, remove the socket file; a request still running finishes on its own thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def _remove_stale(self) -> None:
        """A socket file left by a daemon that died is removed; one a live daemon answers on is an error."""
        if not self.path.exists() and not self.path.is_symlink():
            return
        if not stat.S_ISSOCK(self.path.lstat().st_mode):
            raise RadiodError(f"control socket {self.path}: a file that is not a socket is in the way")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            with reachable(self.path) as address:
                probe.connect(address)
        except OSError:
            self.path.unlink()  # nobody listens: left by a daemon that was killed
            return
        finally:
            probe.close()
        raise RadiodError(f"control socket {self.path}: another radiod answers there; two daemons with one "
                          "config would share the store and the relays")

    def _set_group(self) -> None:
        """Hand the socket to ``group`` so its members may connect; without that group, root only (logged)."""
        if not self.group:
            return
        try:
            gid = grp.getgrnam(self.group).gr_gid
        except KeyError:
            log.warning("control socket %s: group %r does not exist: only root and this user can use it",
                        self.path, self.group)
            return
        if self.path.stat().st_gid == gid:
            return  # already (the service runs with Group=radiod): no chown, which the unit's seccomp filter denies
        try:
            os.chown(self.path, -1, gid)
        except PermissionError:
            log.warning("control socket %s: this user is not in group %r: only root and this user can use it",
                        self.path, self.group)

    def _group_name(self) -> str:
        gid = self.path.stat().st_gid
        try:
            return grp.getgrgid(gid).gr_name
        except KeyError:
            return str(gid)

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if not self._stopping.is_set():
                    log.error("control socket %s: accept failed: %s", self.path, exc)
                    time.sleep(0.5)
                continue
            threading.Thread(target=self._answer, args=(conn,), name="control-conn", daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(MAIN_LOOP_TIMEOUT_S)
            send = _Sender(conn)
            cmd: object = None
            try:
                request = _read_request(conn)
                cmd = request.get("cmd")
                handler = self.handlers.get(cmd) if isinstance(cmd, str) else None
                if handler is None:
                    raise RadiodError(f"unknown command {cmd!r} (known: {', '.join(sorted(self.handlers))})")
                uid = _peer_uid(conn)
                log.info("control: %s requested by uid %s", cmd, uid)
                result = handler(request, send.progress)
            except RadiodError as exc:
                send.line({"ok": False, "error": str(exc)})
                return
            except Exception as exc:
                log.exception("control: %s failed", cmd)  # a bug: the traceback goes to the journal
                send.line({"ok": False, "error": f"internal error ({type(exc).__name__}: {exc}): journalctl -u radiod"})
                return
            send.line({"ok": True, "result": result})


class _Sender:
    """Writes response lines; a client that went away (Ctrl-C) must not break the work it asked for."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._gone = False

    def line(self, message: dict[str, Any]) -> None:
        if self._gone:
            return
        try:
            self._conn.sendall(json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n")
        except OSError:
            self._gone = True

    def progress(self, step: dict[str, Any]) -> None:
        self.line({"progress": step})


def _read_request(conn: socket.socket) -> dict[str, Any]:
    data = b""
    while b"\n" not in data:
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            raise RadiodError("no request line received") from None
        except OSError as exc:
            raise RadiodError(f"connection dropped: {exc}") from None
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise RadiodError(f"request longer than {MAX_REQUEST} bytes")
    try:
        request = json.loads(data.split(b"\n", 1)[0])
    except ValueError as exc:
        raise RadiodError(f"request is not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise RadiodError("request must be a JSON object like {\"cmd\": \"health\"}")
    return request


def _peer_uid(conn: socket.socket) -> int:
    """Who connected (SO_PEERCRED), for the journal: a test switches the amplifier on."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


# ----- the daemon's answers ----------------------------------------------------------------------------------------


def daemon_server(
    config: Config,
    on_main_loop: Callable[[Callable[[], Any]], Future[Any]],
    *,
    health: Callable[[], Any],
    status: Callable[[], Any],
    test: TestRunner,
) -> ControlServer:
    """The daemon's control server: ``health``, ``status`` and ``test`` each run on the main loop through
    ``on_main_loop`` (which returns a future of the answer); ``test`` finishes later, through its done callback."""

    def on_loop(fn: Callable[[], Any]) -> Any:
        try:
            return on_main_loop(fn).result(timeout=MAIN_LOOP_TIMEOUT_S)
        except FutureTimeout:
            raise RadiodError(f"the daemon's main loop did not answer within {MAIN_LOOP_TIMEOUT_S:.0f} s: it is "
                              "stalled (systemd's watchdog restarts it; `kill -USR1` dumps its threads to the "
                              "journal)") from None

    def answer_health(request: dict[str, Any], progress: Progress) -> Any:
        return on_loop(lambda: {"pid": os.getpid(), "report": health()})

    def answer_status(request: dict[str, Any], progress: Progress) -> Any:
        return on_loop(status)

    def answer_test(request: dict[str, Any], progress: Progress) -> Any:
        lines = request.get("lines")
        if lines is not None and not (isinstance(lines, list) and all(isinstance(x, str) for x in lines)):
            raise RadiodError("lines must be a list of speaker-line names, or null for all")
        finished: Future[dict[str, Any]] = Future()
        on_loop(lambda: test(lines, progress, finished.set_result))
        try:
            return finished.result(timeout=TEST_TIMEOUT_S)
        except FutureTimeout:
            raise RadiodError(f"the test did not finish within {TEST_TIMEOUT_S:.0f} s; its events tell how far "
                              "it got (radiod watch)") from None

    return ControlServer(server_path(config), config.control.group,
                         {"health": answer_health, "status": answer_status, "test": answer_test})


# ----- SIGUSR1 -----------------------------------------------------------------------------------------------------


def install_stack_dump() -> None:
    """On SIGUSR1, log every thread's stack (main thread only: Python's rule for signal handlers).

    It runs in the signal handler itself, not through the main loop: a stalled main loop is exactly when it is
    needed. Logging from the handler is safe here, as logging's locks are re-entrant.
    """
    signal.signal(signal.SIGUSR1, dump_stacks)


def dump_stacks(signum: int | None = None, frame: FrameType | None = None) -> None:
    """Every thread's stack, by thread name, one log record each (so journalctl keeps them together)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    frames = sys._current_frames()
    log.warning("SIGUSR1: stacks of %d threads follow", len(frames))
    for ident, stack in frames.items():
        text = "".join(traceback.format_stack(stack))
        log.warning("thread %s (%s):\n%s", names.get(ident, "?"), ident, text.rstrip())
