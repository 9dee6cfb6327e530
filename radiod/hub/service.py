"""``radiod hub --config hub.yaml``: the commune hub's long-running service, the recorder and the web console.

One process beside the hub's Mosquitto: the :class:`~radiod.hub.recorder.Recorder` stores what the nodes send,
and uvicorn serves the console (:mod:`radiod.hub.web.app`) over the same database. It holds the signing key, so
operators never touch it. Under systemd (``systemd/radiod-hub.service``, Type=notify) it says READY once the
console listens, and pings the watchdog from the event loop only while the recorder's writer is alive: a
recorder that died or an event loop that hangs stops the pings, and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from radiod.hub import recorder as recorder_mod
from radiod.hub.config import HubServiceConfig
from radiod.hub.recorder import Recorder
from radiod.hub.web.app import create_app
from radiod.node.sdnotify import Notifier
from radiod.protocol.jws import TrustStore

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 3
"""How long a stop waits for open requests: a live nodes page (SSE) never ends by itself."""


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: it re-raises SIGTERM after shutting down, which would
    end the process before the recorder has stored what it received. :func:`run_hub` handles the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HubService:
    """The recorder and the console, started and stopped together."""

    def __init__(self, config: HubServiceConfig, notifier: Notifier | None = None) -> None:
        self.config = config
        self.notifier = notifier or Notifier()
        trusted = config.signing.public_key
        trust = TrustStore({config.signing.kid: Path(trusted)}, []) if trusted else None
        self.recorder = Recorder(config.mqtt, config.database, trust)
        self.db = recorder_mod.connect(config.database)
        app = create_app(config, self.db, self.recorder.wait_changed)
        web = config.web
        self.server = _Server(uvicorn.Config(
            app, host=web.address, port=web.port, ssl_certfile=web.tls_cert, ssl_keyfile=web.tls_key,
            log_level=config.log_level, access_log=config.log_level == "debug", lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        ))

    @property
    def url(self) -> str:
        scheme = "https" if self.config.web.tls_cert else "http"
        return f"{scheme}://{self.config.web.address}:{self.config.web.port}/"

    async def serve(self) -> None:
        """Run until SIGTERM/SIGINT (or ``stop()``); the recorder keeps storing while the console serves."""
        self.recorder.start()
        serving = asyncio.create_task(self.server.serve())
        while not self.server.started and not serving.done():
            await asyncio.sleep(0.05)
        if serving.done():
            await serving  # the port is taken or the certificate unreadable: uvicorn has said why
            return
        self.notifier.ready(f"console at {self.url}, recording {self.config.mqtt.prefix}")
        log.info("radiod hub: console at %s, recorder on %s:%s", self.url, self.config.mqtt.host,
                 self.config.mqtt.port)
        try:
            while not serving.done():
                if self.recorder.alive():
                    self.notifier.ping()
                await asyncio.sleep(min(1.0, max(0.05, self.notifier.ping_due_in())))
        finally:
            self.notifier.stopping()
            self.server.should_exit = True
            await serving
            self.recorder.stop()
            self.db.close()

    def stop(self) -> None:
        self.server.should_exit = True


def run_hub(config: HubServiceConfig) -> int:
    """The ``radiod hub`` command: serve until SIGTERM or SIGINT, then stop cleanly and exit 0."""
    logging.basicConfig(level=config.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    service = HubService(config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop)
        await service.serve()

    asyncio.run(main())
    return 0
