"""The hub service's configuration (``radiod hub --config hub.yaml``): one YAML file, this schema, these defaults.

The hub service is not a node, so it has its own file; it is read by the same typed loader as the node's
(:mod:`radiod.schema`: every problem at once with file and line, "did you mean" for unknown keys, secrets masked
by ``to_plain``) and reuses the node's sections where the meaning is the same (the broker, speech). The operator
tools (:class:`~radiod.hub.operator.Operator`) take a node :class:`~radiod.config.Config`; :meth:`operator_config`
builds the one they need from this file, so a bulletin posted from the console is built and signed by the same
code as ``radiod post``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from radiod import schema
from radiod.config import (
    NAME_PATTERN,
    Config,
    HubConfig,
    MqttConfig,
    NodeConfig,
    QuietHours,
    ScheduleConfig,
    SecurityConfig,
    SpeechConfig,
    StorageConfig,
    unknown_zone,
)
from radiod.schema import setting


@dataclass(frozen=True, kw_only=True)
class SigningConfig:
    kid: str = setting("hub-1", doc="key id the hub signs with; the nodes list it in security.trusted_keys")
    key: str | None = setting(
        None, doc="the hub's Ed25519 private key PEM (radiod keygen); without it the console cannot post"
    )
    public_key: str | None = setting(None, doc="its public key PEM, to tell the hub's own signed bulletins apart")
    default_expiry_h: float = setting(24.0, doc="a bulletin posted without an expiry expires after this", min=0.1)


@dataclass(frozen=True, kw_only=True)
class WebConfig:
    address: str = setting("127.0.0.1", doc="where the console listens; 0.0.0.0 to reach it from the LAN")
    port: int = setting(8080, doc="the console's TCP port", min=1, max=65535)
    tls_cert: str | None = setting(None, doc="certificate PEM for HTTPS (e.g. issued by hub-setup's CA)")
    tls_key: str | None = setting(None, doc="its private key PEM")
    session_hours: float = setting(12.0, doc="a login lasts this long", min=0.1, max=720)
    login_attempts: int = setting(5, doc="failed logins per user name and address before a pause", min=1)
    login_pause_s: int = setting(300, doc="how long the pause lasts", min=1)
    secure_cookies: bool | None = setting(
        None, doc="mark cookies Secure (HTTPS only); default: on when tls_cert is set"
    )


@dataclass(frozen=True, kw_only=True)
class MediaConfig:
    dir: str = setting("/var/lib/radiod-hub/media", doc="the media library: recordings kept as <sha256>.<format>, "
                       "served by the console at /media/")
    base_url: str | None = setting(
        None, doc="the URL the nodes fetch the library from; default: the console's own address and port + /media/ "
        "(set it when the nodes reach the hub by another name)", pattern=r"https?://\S+",
    )


@dataclass(frozen=True, kw_only=True)
class NodesConfig:
    expected: list[str] = setting(factory=list, doc="nodes the commune has, shown even before they connect",
                                  pattern=NAME_PATTERN)
    setup_dir: str | None = setting(
        None, doc="hub-setup's --out folder: each nodes/<id> in it is an expected node too"
    )
    zones: dict[str, list[str]] = setting(
        factory=dict, doc="zone -> its nodes, for the post form's targets and the 'played on N of M' count"
    )
    health_interval_s: int = setting(60, doc="the nodes' health.interval_s: three missed reports is 'silent'",
                                     min=5)


@dataclass(frozen=True, kw_only=True)
class HubServiceConfig:
    mqtt: MqttConfig = setting(factory=MqttConfig, doc="the commune's broker (on this machine, usually)")
    timezone: str = setting("Asia/Ho_Chi_Minh", doc="IANA time zone of the schedule and reports",
                            check=unknown_zone)
    database: str = setting("/var/lib/radiod-hub/hub.db", doc="the recorder's and the console's SQLite database")
    signing: SigningConfig = setting(factory=SigningConfig, doc="the key bulletins are signed with")
    nodes: NodesConfig = setting(factory=NodesConfig, doc="which nodes the commune has")
    web: WebConfig = setting(factory=WebConfig, doc="the web console")
    speech: SpeechConfig = setting(factory=SpeechConfig, doc="voices for the preview, as on the nodes")
    media: MediaConfig = setting(factory=MediaConfig, doc="recordings for bulletins with media (radiod media add)")
    cache_dir: str = setting("/var/cache/radiod-hub", doc="the preview's speech cache and rendered audio")
    quiet_hours: list[QuietHours] = setting(factory=list, doc="the nodes' quiet hours, for the post form's warning")
    log_level: Literal["debug", "info", "warning", "error"] = setting("info", doc="journal verbosity")

    def expected_nodes(self) -> list[str]:
        """The nodes the commune has: those listed, those in zones, and hub-setup's node folders."""
        names = set(self.nodes.expected)
        for members in self.nodes.zones.values():
            names.update(members)
        if self.nodes.setup_dir:
            folder = Path(self.nodes.setup_dir) / "nodes"
            if folder.is_dir():
                names.update(p.name for p in folder.iterdir() if p.is_dir())
        return sorted(names)

    def media_base_url(self) -> str:
        """Where the nodes fetch the media library: ``media.base_url``, else the console's own address (this
        machine's name when it listens on every interface, which is no address to fetch from) + ``/media/``."""
        if self.media.base_url:
            return self.media.base_url
        scheme = "https" if self.web.tls_cert else "http"
        host = self.web.address
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(host)
            host = socket.getfqdn() if address.is_unspecified else f"[{host}]" if address.version == 6 else host
        return f"{scheme}://{host}:{self.web.port}/media/"

    def operator_config(self) -> Config:
        """The node-shaped Config the operator tools and the preview's ProgrammeMaker read."""
        trusted = {self.signing.kid: self.signing.public_key} if self.signing.public_key else {}
        return Config(
            node=NodeConfig(id="hub", timezone=self.timezone),
            mqtt=self.mqtt,
            security=SecurityConfig(trusted_keys=trusted),
            storage=StorageConfig(dir=self.cache_dir, cache_dir=str(Path(self.cache_dir) / "speech")),
            speech=self.speech,
            schedule=ScheduleConfig(quiet_hours=list(self.quiet_hours)),
            hub=HubConfig(kid=self.signing.kid, signing_key=self.signing.key,
                          default_expiry_h=self.signing.default_expiry_h, media_dir=self.media.dir,
                          media_base_url=self.media_base_url()),
        )


def load_hub_config(path: Path) -> HubServiceConfig:
    """Read hub.yaml; raises ConfigError listing every problem with its line."""
    return schema.load(path, HubServiceConfig)
