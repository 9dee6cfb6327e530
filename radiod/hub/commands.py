"""The ``radiod hub`` command line: ``radiod hub --config hub.yaml`` runs the service, ``radiod hub user add``
creates an account (the first admin, before anyone can log in to the console).

Kept apart from :mod:`radiod.cli` so the hub's options live beside the hub; cli.py only registers them.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from radiod.errors import RadiodError

if TYPE_CHECKING:  # every radiod command registers these: the hub's config module is imported when one runs
    from radiod.hub.config import HubServiceConfig

Register = Callable[..., None]

DEFAULT_HUB_CONFIG_PATH = Path("/etc/radiod/hub.yaml")


HUB_CONFIG_ENV = "RADIOD_HUB_CONFIG"
"""Where the hub's config is when --config is not given (then /etc/radiod/hub.yaml)."""


def register(command: Register) -> None:
    """Add ``hub`` (with ``hub user add``) and ``media add`` with cli.py's
    ``command(name, handler, help, parents, options)``."""
    config_help = (f"the hub's config: F, else ${HUB_CONFIG_ENV}, else {DEFAULT_HUB_CONFIG_PATH} "
                   "(the node's --config rule, with the hub's own file)")
    config_opt = argparse.ArgumentParser(add_help=False)
    config_opt.add_argument("--config", metavar="F", default=None, help=config_help)
    # On "user add" and "media add" too, SUPPRESSed: a --config given before them is not overwritten by a default
    config_sub = argparse.ArgumentParser(add_help=False)
    config_sub.add_argument("--config", metavar="F", default=argparse.SUPPRESS, help=config_help)

    def hub_options(p: argparse.ArgumentParser) -> None:
        users = p.add_subparsers(dest="hub_command", metavar="user")
        user = users.add_parser("user", help="console accounts").add_subparsers(dest="user_command", required=True)
        add = user.add_parser("add", help="create a console account", description="create a console account; the "
                              "password is asked for, or read from stdin with --password-stdin", parents=[config_sub])
        add.add_argument("name", help="user name (lower-case letters, digits, - and _)")
        add.add_argument("--role", choices=["operator", "approver", "admin"], default="operator",
                         help="operator: normal and priority bulletins; approver: also emergencies and stop all; "
                         "admin: also accounts (default operator)")
        add.add_argument("--password-stdin", action="store_true",
                         help="read the password from the first line of stdin")
        add.set_defaults(handler=cmd_user_add)

    command("hub", cmd_hub, "the hub service: records every node's reports and serves the web console",
            [config_opt], hub_options)

    def media_options(p: argparse.ArgumentParser) -> None:
        actions = p.add_subparsers(dest="media_command", metavar="add", required=True)
        add = actions.add_parser("add", help="check, measure and keep a recording; prints its URL and sha256",
                                 description="check that FILE decodes, measure its duration and loudness, and keep "
                                 "it in media.dir as <sha256>.<format>, served at media.base_url; adding it again "
                                 "is harmless", parents=[config_sub])
        add.add_argument("file", metavar="FILE", help="mp3, m4a/aac, ogg/opus, flac or wav")
        add.set_defaults(handler=cmd_media_add)

    command("media", cmd_media_add, "the hub's media library: recordings the nodes fetch from the console",
            [config_opt], media_options)


def _load(args: argparse.Namespace) -> HubServiceConfig:
    from radiod.hub.config import load_hub_config

    path = Path(args.config or os.environ.get(HUB_CONFIG_ENV) or DEFAULT_HUB_CONFIG_PATH)
    if not path.is_file():
        raise RadiodError(f"{path}: no such file (see docs/hub.md for an example hub.yaml)")
    return load_hub_config(path)


def _hub_extra() -> None:
    """The hub's web libraries are an extra (a node does not need them): say how to get them."""
    import importlib.util

    missing = [name for name in ("starlette", "jinja2", "uvicorn", "multipart", "argon2")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise RadiodError(f"the hub service needs {', '.join(missing)}: pip install 'radiod[hub]' (docs/hub.md)")


def cmd_hub(args: argparse.Namespace) -> int:
    _hub_extra()
    from radiod.hub.service import run_hub

    return run_hub(_load(args))


def cmd_media_add(args: argparse.Namespace) -> int:
    """``radiod media add FILE``: the recording kept in the hub's library, and what a bulletin needs of it."""
    from radiod.hub.media import MediaLibrary, length_text, loudness_text

    config = _load(args)
    info = MediaLibrary(Path(config.media.dir), config.media_base_url()).add(Path(args.file), args.file)
    print(f"url:      {info.url}")
    print(f"sha256:   {info.sha256}")
    print(f"duration: {length_text(info.duration_s)}")
    print(f"loudness: {loudness_text(info.lufs)}")
    print(f"format:   {info.format}, {info.bytes} bytes")
    print(f"post it:  radiod post --media {info.url} --daily HH:MM [--lang tyz] [--title ...]")
    return 0


def cmd_user_add(args: argparse.Namespace) -> int:
    _hub_extra()
    from radiod.hub import accounts, recorder

    config = _load(args)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise RadiodError("the two passwords differ")
    db = recorder.connect(config.database)
    try:
        user = accounts.add_user(db, args.name, password, args.role)
        accounts.audit(db, "(command line)", "user_add", name=user.name, role=str(user.role))
    finally:
        db.close()
    print(f"{user.name}: {user.role} account created in {config.database}")
    return 0
