"""A real Icecast server on a free loopback port, and ffmpeg feeding it live: the district radio as a node hears
it, for ``make demo``, the relay tests and bench/media.py (as :mod:`radiod.hub.localbroker` is the hub's broker).

Icecast (Debian's ``icecast2``) runs with its own config in a private directory. It refuses to run as root unless
the config names a user to drop to (``<changeowner>``); Debian's package makes the user ``icecast2`` (group
``icecast``), so as root the directory is handed to that user, and it is made under the system's temporary
directory rather than pytest's ``tmp_path``, whose parents only root may enter. When the source (ffmpeg) stops,
Icecast drops the mount and its listeners, as a real station's server does when the studio's encoder goes off.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from radiod.hub.localbroker import free_port, terminate

HOST = "127.0.0.1"
SOURCE_PASSWORD = "radiod-source"  # noqa: S105 - a loopback-only server of the demo and the tests
MOUNT = "/live.mp3"
ICECAST_USER, ICECAST_GROUP = "icecast2", "icecast"

_CONFIG = """\
<icecast>
  <location>test</location>
  <admin>test@localhost</admin>
  <limits>
    <clients>20</clients>
    <sources>4</sources>
    <queue-size>524288</queue-size>
    <client-timeout>30</client-timeout>
    <header-timeout>15</header-timeout>
    <source-timeout>5</source-timeout>
    <burst-on-connect>1</burst-on-connect>
    <burst-size>65535</burst-size>
  </limits>
  <authentication>
    <source-password>{password}</source-password>
    <admin-user>admin</admin-user>
    <admin-password>{password}</admin-password>
  </authentication>
  <hostname>{host}</hostname>
  <listen-socket><port>{port}</port><bind-address>{host}</bind-address></listen-socket>
  <fileserve>1</fileserve>
  <paths>
    <basedir>{dir}</basedir>
    <logdir>{dir}</logdir>
    <webroot>/usr/share/icecast2/web</webroot>
    <adminroot>/usr/share/icecast2/admin</adminroot>
  </paths>
  <logging>
    <accesslog>access.log</accesslog>
    <errorlog>error.log</errorlog>
    <loglevel>3</loglevel>
  </logging>
  <security>
    <chroot>0</chroot>
    {changeowner}
  </security>
</icecast>
"""


class Icecast:
    """``icecast2 -c <dir>/icecast.xml`` on a free loopback port; a context manager that stops it afterwards.

    :meth:`feed` starts an ffmpeg source on ``/live.mp3`` (a 128 kbit/s MP3 tone, in real time); the returned
    :class:`Source` can be stopped and started again, as a studio's encoder goes off and on the air.
    """

    def __init__(self) -> None:
        if shutil.which("icecast2") is None or shutil.which("ffmpeg") is None:
            raise RuntimeError("the relay tests need Debian's icecast2 and ffmpeg: apt-get install icecast2 ffmpeg")
        self.dir = Path(tempfile.mkdtemp(prefix="radiod-icecast-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The mount a node relays."""
        return f"http://{HOST}:{self.port}{MOUNT}"

    def start(self) -> Icecast:
        """Start Icecast; returns once it listens."""
        changeowner = ""
        if os.geteuid() == 0:  # icecast2 will not run as root: it drops to Debian's icecast2 user
            changeowner = f"<changeowner><user>{ICECAST_USER}</user><group>{ICECAST_GROUP}</group></changeowner>"
            os.chown(self.dir, pwd.getpwnam(ICECAST_USER).pw_uid, grp.getgrnam(ICECAST_GROUP).gr_gid)
        config = self.dir / "icecast.xml"
        config.write_text(
            _CONFIG.format(password=SOURCE_PASSWORD, host=HOST, port=self.port, dir=self.dir, changeowner=changeowner),
            encoding="utf-8",
        )
        with (self.dir / "stdout.log").open("ab") as log:
            self._proc = subprocess.Popen(["icecast2", "-c", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"icecast2 exited with {self._proc.returncode}: {self._log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"icecast2 did not listen on {HOST}:{self.port} in 10 s: {self._log_tail()}")

    def _log_tail(self) -> str:
        texts = [p.read_text(errors="replace")[-1500:] for p in (self.dir / "stdout.log", self.dir / "error.log")
                 if p.exists()]
        return "\n".join(texts)

    def feed(self, *, frequency: float = 1000.0, amplitude: float = 0.125, bitrate: str = "128k",
             tone_s: float | None = None, loop: Path | None = None) -> Source:
        """An ffmpeg source sending a sine of ``amplitude`` (peak, 0.125 is -18 dBFS) on the mount, started;
        with ``tone_s``, digital silence after that many seconds (the studio's fader down, the encoder still on);
        with ``loop``, that audio file over and over instead of the sine (a programme, for the demo)."""
        source = Source(self, frequency=frequency, amplitude=amplitude, bitrate=bitrate, tone_s=tone_s, loop=loop)
        source.start()
        return source

    def mounted(self) -> bool:
        """Whether a source is on the mount now (Icecast answers 404 for a mount without one)."""
        try:
            with urllib.request.urlopen(self.url, timeout=2) as response:  # noqa: S310 - our own http:// URL
                return bool(response.read(1))
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop Icecast and remove its directory."""
        if self._proc is not None:
            terminate(self._proc, 10)
            self._proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Icecast:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class Source:
    """``ffmpeg -re`` encoding a tone (or a looped file) to MP3 and sending it to the Icecast mount: the studio's
    encoder."""

    def __init__(self, server: Icecast, *, frequency: float, amplitude: float, bitrate: str,
                 tone_s: float | None = None, loop: Path | None = None) -> None:
        self.server = server
        tone = f"{amplitude}*sin(2*PI*{frequency}*t)"
        if tone_s is not None:
            tone = f"if(lt(t\\,{tone_s})\\,{tone}\\,0)"
        given = ["-f", "lavfi", "-i", f"aevalsrc={tone}:s=44100:c=stereo"]
        if loop is not None:
            given = ["-stream_loop", "-1", "-i", str(loop)]
        self.command = [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", *given,
            "-c:a", "libmp3lame", "-b:a", bitrate, "-content_type", "audio/mpeg", "-f", "mp3",
            f"icecast://source:{SOURCE_PASSWORD}@{HOST}:{server.port}{MOUNT}",
        ]
        self._proc: subprocess.Popen[bytes] | None = None
        self.stopped_at: float | None = None  # time.time() when the last stop() began

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, timeout: float = 10.0) -> None:
        """Start the encoder and wait until Icecast has the mount."""
        log = (self.server.dir / "ffmpeg.log").open("ab")
        with log:
            self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"ffmpeg exited with {self._proc.returncode}; see {self.server.dir}/ffmpeg.log")
            if self.server.mounted():
                return
            time.sleep(0.1)
        raise RuntimeError(f"Icecast has no source on {MOUNT} {timeout:g} s after ffmpeg started")

    def stop(self) -> None:
        """The encoder goes off the air: Icecast drops the mount and its listeners."""
        if self._proc is not None:
            self.stopped_at = time.time()
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None
