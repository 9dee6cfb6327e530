"""The ``radiod`` command: one entry point for the daemon, the technician and the operator.

Every command prints a clear message and exits non-zero on bad input; a traceback is a bug. Heavy modules
(numpy, gpiozero, paho) are imported inside the command that needs them, so ``radiod --help`` and
``radiod normalize`` start instantly on a Pi.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from radiod import __version__
from radiod.config import CONFIG_RULE, DEFAULTS_CLAUSE, Config, find_config, load_config
from radiod.errors import ConfigError, RadiodError
from radiod.hub import commands as hub_commands
from radiod.protocol.enums import Action, Priority, Status

if TYPE_CHECKING:
    from radiod.hub.operator import Operator

EXIT_ERROR = 1
EXIT_INVALID = 2
EXIT_UNKNOWN = 3
"""`radiod health` is a monitoring plugin: its usage errors are UNKNOWN (3), not CRITICAL (argparse's 2)."""

Handler = Callable[[argparse.Namespace], int]

# numpy's OpenBLAS starts a thread per core on import and spins them up: about 40 ms of CPU per process (more on
# a Pi's four cores) for linear algebra radiod never does; its audio maths is element-wise. Set before any command
# imports numpy; a value set by the caller is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _config(args: argparse.Namespace) -> Config:
    return load_config(find_config(getattr(args, "config", None)))


def _config_file(args: argparse.Namespace) -> Path:
    """The config file of ``run`` and ``validate``, which have no use for the built-in defaults."""
    path = find_config(args.config)
    if path is None:
        raise RadiodError(f"no config file: {CONFIG_RULE.removesuffix(DEFAULTS_CLAUSE)}")
    return path


def _read_text(args: argparse.Namespace, required: bool = True) -> str:
    """The bulletin text from the TEXT argument or ``-f FILE`` (``-f -`` reads stdin); "" when neither is given
    and it is not ``required``."""
    if args.file:
        if args.file == "-":
            return sys.stdin.read()
        try:
            return Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RadiodError(f"cannot read {args.file}: {exc}") from None
    if not args.text:
        if not required:
            return ""
        raise RadiodError("give the text to read, or -f FILE")
    return " ".join(args.text)


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a config file and everything it names that `run` needs (radiod/preflight.py)."""
    from radiod.preflight import check_config

    path = _config_file(args)
    config = check_config(path)
    print(f"{path}: ok (node {config.node.id}, profile {config.gpio.profile}, voice {config.speech.voice})")
    return 0


def cmd_voices(args: argparse.Namespace) -> int:
    """List the voices and whether each can run on this machine."""
    from radiod.errors import VoiceError
    from radiod.speech.tts import engine_for
    from radiod.speech.tts.piper import memory_warning
    from radiod.speech.voices import load_voices

    config = _config(args)
    for voice in load_voices(Path(config.speech.voices_dir)):
        try:
            engine_for(voice)
            state = "ok"
        except VoiceError as exc:
            state = f"unavailable: {exc}" + (f"; falls back on {voice.fallback}" if voice.fallback else "")
        warning = memory_warning(voice)
        state += f"; warning: {warning}" if warning else ""
        default = " (default)" if voice.id == config.speech.voice else ""
        print(f"{voice.id:<14} {voice.engine:<10} {voice.region:<8} {voice.description}{default}  [{state}]")
    return 0


def cmd_voices_install(args: argparse.Namespace) -> int:
    """Check a Piper model and its config, copy them into the voices folder and write the voice file."""
    from radiod.speech.voice_install import install

    voices_dir = Path(_config(args).speech.voices_dir)
    for done in install(
        Path(args.path), voices_dir, voice_id=args.id, region=args.region, fallback=args.fallback, force=args.force
    ):
        c = done.config
        print(f"{done.voice_id}: installed {done.model} ({c.sample_rate} Hz, espeak-ng voice {c.espeak_voice}, "
              f"{c.num_speakers} speaker(s)); voice file {done.voice_file}")
        print(f"  test sentence: {done.test_audio_s:.1f} s of speech in {done.test_synthesis_s:.2f} s "
              f"(real-time factor {done.test_synthesis_s / done.test_audio_s:.2f} here, with the model cold)")
        print(f"  fallback: {done.fallback or 'none: set fallback: in the voice file'}")
        print(f"  try it: radiod speak --voice {done.voice_id} -o /tmp/test.wav \"Xin chào bà con.\"")
    return 0


def cmd_normalize(args: argparse.Namespace) -> int:
    """Print the spoken form; with ``-`` one output line per input line, so it works in a pipe."""
    from radiod.speech.normalize import explain, load_lexicon, normalize
    from radiod.speech.voices import load_voice

    config = _config(args)
    region = load_voice(args.voice or config.speech.voice, Path(config.speech.voices_dir)).region
    if args.text == ["-"]:
        lines: Sequence[str] = (line.rstrip("\n") for line in sys.stdin)
    else:
        lines = [" ".join(args.text)]
    lexicon = load_lexicon(Path(config.speech.voices_dir))
    for line in lines:
        if args.explain:
            for span in explain(line, region, lexicon):
                if span.rule != "text":
                    unsure = f"\n{'':>28}    ? {span.unsure}" if span.unsure else ""
                    print(f"{span.source!r:>28} -> {span.spoken!r}  [{span.rule}]{unsure}")
        else:
            print(" ".join(normalize(line, region, lexicon).split()))
        sys.stdout.flush()
    return 0


def cmd_speak(args: argparse.Namespace) -> int:
    """Normalize, synthesize and render TEXT; write it to ``-o`` or play it through relays and the output."""
    config = _config(args)
    text = _read_text(args)
    voice = args.voice or config.speech.voice
    if args.output:
        output = Path(args.output)
        rate, n_samples = _speak_to_file(config, text, voice, args, output)
        print(f"{output}: {n_samples / rate:.1f} s at {rate} Hz")
        return 0
    from radiod.node.programme import ProgrammeMaker

    programme = ProgrammeMaker(config).make(text, voice, chime=not args.no_chime, repeat=args.repeat)
    from radiod.audio.station import Station

    with Station(config) as station:
        timeline = station.play(programme, name=time.strftime("speak-%Y%m%dT%H%M%S"))
        t0 = timeline.amp_on
        for at, relay, on in station.relays.history():
            print(f"{at - t0:+7.2f} s  {relay:<16} {'ON' if on else 'off'}")
    print(f"audio {timeline.audio_start - t0:+.2f} s to {timeline.audio_end - t0:+.2f} s"
          f"{'' if timeline.completed else ' (interrupted)'}")
    if timeline.path:
        print(f"played to {timeline.path}")
    return 0


def _speak_to_file(config: Config, text: str, voice: str, args: argparse.Namespace, output: Path) -> tuple[int, int]:
    """(rate, samples) of the programme written to ``output``: copied from the cache when it was made before (by its
    link, without the audio stack's imports), else made and written as fast as it is synthesized."""
    from radiod.node.programme_file import CorruptProgramme
    from radiod.node.programme_index import ProgrammeLinks, ProgrammeRequest

    request = ProgrammeRequest(text, voice, chime=not args.no_chime, repeat=args.repeat)
    try:
        with _writing(output):
            replayed = ProgrammeLinks(config).replay_to_wav(request, output)
    except CorruptProgramme as exc:
        print(f"radiod speak: dropped a corrupt programme cache entry ({exc}); making it again", file=sys.stderr)
        replayed = None
    if replayed is not None:
        # Every file is closed and every thread joined: the interpreter's shutdown has nothing to collect, and
        # its collections over all that was imported would cost a tenth of this replay. Freezing leaves them out.
        gc.freeze()
        return replayed.rate, replayed.n_samples
    from radiod.audio.pcm import write_wav_blocks
    from radiod.audio.render import BLOCK
    from radiod.node.programme import ProgrammeMaker
    from radiod.node.programme_cache import CachedProgramme

    programme = ProgrammeMaker(config).make(**request._asdict(), progressive=True)  # the request its link is named by
    with _writing(output):
        if isinstance(programme, CachedProgramme):  # made before, but not linked (by an older radiod): copied
            programme.write_wav(output)
        else:
            write_wav_blocks(output, programme.rate, programme.int16_blocks(BLOCK))
    return programme.rate, programme.n_samples


@contextlib.contextmanager
def _writing(output: Path) -> Iterator[None]:
    """An OSError while writing ``output`` (a folder that is not there, a full disk) said, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise RadiodError(f"cannot write {output}: {exc.strerror or exc}") from None


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on an embedded default; see radiod/demo.py."""
    from radiod.demo import run_demo

    return run_demo(keep=args.keep)


def cmd_run(args: argparse.Namespace) -> int:
    """The node daemon."""
    from radiod.logs import setup_logging
    from radiod.node.daemon import Daemon

    config = load_config(_config_file(args))
    setup_logging(config.log_level)
    return Daemon(config).run()


def cmd_keygen(args: argparse.Namespace) -> int:
    """Write an Ed25519 key pair for the hub; the private key is created 0600."""
    from radiod.protocol.jws import generate_keypair

    try:
        private, public = generate_keypair(args.kid, Path(args.dir))
    except (FileExistsError, ValueError) as exc:
        raise RadiodError(str(exc)) from None
    print(f"private key: {private}  (keep it on the hub; mode 0600)")
    print(f"public key:  {public}  (copy to each node and list it under security.trusted_keys.{args.kid})")
    return 0


def _operator(args: argparse.Namespace) -> Operator:
    from radiod.hub.operator import Operator

    key, kid = getattr(args, "key", None), getattr(args, "kid", None)  # `test --node` signs with hub.signing_key
    return Operator(_config(args), key=Path(key) if key else None, kid=kid)


def _weekdays(text: str | None) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in text.split(",")) if text else ()
    except ValueError:
        raise RadiodError(f"--weekdays {text}: expected ISO weekday numbers, e.g. 1,2,3,4,5 (1 = Monday)") from None


def cmd_post(args: argparse.Namespace) -> int:
    """Check a bulletin as the nodes will, warn, sign and publish it (retained), then say what was understood."""
    from radiod.hub.nodes import NodeList, known_nodes
    from radiod.hub.operator import PostRequest, targets_from

    operator = _operator(args)
    media, relay, date_until = _programme(args, operator)
    text = _read_text(args, required=False)
    if not text and not (media or relay):
        raise RadiodError("give the text to read, or -f FILE, or a programme: --media, --relay")
    bed = _bed(args, operator, text, media or relay)
    req = PostRequest(
        text=text,
        targets=targets_from(args.zone or (), args.node or ()),
        at=tuple(args.at or ()),
        daily=tuple(t.strip() for group in args.daily or () for t in group.split(",") if t.strip()),
        weekdays=_weekdays(args.weekdays),
        date_from=args.date_from,
        date_until=date_until,
        priority=args.priority,
        status=args.status,
        voice=args.voice,
        repeat=args.repeat,
        gap_s=args.gap,
        expires=args.expires,
        title=args.title,
        chime=not args.no_chime,
        volume=args.volume,
        bulletin_id=args.id,
        rev=args.rev,
        lang=args.lang,
        media=media,
        relay=relay,
        bed=bed,
    )
    plan = operator.plan(req)
    nodes = NodeList.build(operator.config) if args.preview else known_nodes(operator.config)
    for warning in operator.warnings(plan, nodes):
        print(f"warning: {warning}", file=sys.stderr)
    if args.preview:
        if not req.text:
            raise RadiodError("--preview reads the text aloud, and this bulletin has none: listen to the "
                              "recording or the stream itself")
        sentences, duration_s = operator.preview(plan, Path(args.output))
        print("\n".join(sentences))
        print(f"{args.output}: {duration_s:.1f} s; not posted")
        return 0
    payload = operator.publish(plan)
    print(payload["id"])
    print("\n".join(operator.understood(plan, nodes)))
    return 0


def _programme(args: argparse.Namespace, operator: Operator) -> tuple[dict | None, dict | None, str | None]:
    """``post``'s ``--media``, ``--relay`` with ``--duration`` or ``--until HH:MM``, and ``--until`` as the last
    day of ``--daily`` (YYYY-MM-DD): (media, relay, date_until). A file given to --media is added to the hub's
    library first."""
    import re

    from radiod.hub.media import describe
    from radiod.hub.operator import relay_for

    until_time = args.date_until if args.date_until and re.fullmatch(r"\d{1,2}:\d{2}", args.date_until) else None
    date_until = None if until_time else args.date_until
    if args.media and args.relay:
        raise RadiodError("--media and --relay: a bulletin carries a recording or a relay, not both")
    if args.duration and not args.relay:
        raise RadiodError("--duration only with --relay: a recording plays as long as it lasts")
    if until_time and not args.relay:
        raise RadiodError(f"--until {until_time}: a time of day ends a --relay; with --daily give the last day as "
                          "YYYY-MM-DD")
    if args.relay:
        return None, relay_for(args.relay, args.duration, until_time), date_until
    if args.media:
        info = operator.media(args.media)
        print(f"media: {info.url}: {describe(info)}", file=sys.stderr)
        return info.descriptor(), None, date_until
    return None, None, date_until


def _bed(args: argparse.Namespace, operator: Operator, text: str, programme: dict | None) -> dict | None:
    """``post --bed FILE|URL``: music under the text, added to the hub's library as --media is."""
    from radiod.hub.media import describe

    if not args.bed:
        return None
    if not text or programme:
        raise RadiodError("--bed: music lies under the text to read, which it needs; not with --media or --relay")
    info = operator.media(args.bed, "--bed")
    print(f"bed: {info.url}: {describe(info)}", file=sys.stderr)
    return info.descriptor()


def cmd_cancel(args: argparse.Namespace) -> int:
    """Publish a signed tombstone for a bulletin; one already cancelled is said so, and left as it is."""
    from radiod.hub.operator import AlreadyCancelled

    try:
        tombstone = _operator(args).cancel(args.id)
    except AlreadyCancelled as done:
        print(done)
        return 0
    print(f"{tombstone['id']} cancelled (rev {tombstone['rev']})")
    return 0


def cmd_bulletins(args: argparse.Namespace) -> int:
    """The active bulletins, read from the broker's retained messages; ``--prune`` clears the expired ones."""
    import json

    from radiod.clock import rfc3339
    from radiod.hub.operator import bulletin_state, describe_schedule

    operator = _operator(args)
    now = time.time()
    if args.prune:
        cleared = operator.prune(now)
        print("\n".join(f"cleared {topic}" for topic in cleared) or f"no expired bulletin on {operator.prefix}")
        return 0
    every = sorted(operator.retained_bulletins(), key=lambda b: (b["payload"].get("id", ""), b["topic"]))
    rows = [row for row in every if args.all or bulletin_state(row["payload"], now) == "active"]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(f"no {'retained' if args.all else 'active'} bulletins on {operator.prefix}")
    for row in rows:
        p = row["payload"]
        state = bulletin_state(p, now)
        mark = "" if row["verified"] else "  [signature not verified]"
        exp = rfc3339(p["exp"], operator.tz, ms=False) if isinstance(p.get("exp"), (int, float)) else "?"
        print(f"{p.get('id', '?'):<28} r{p.get('rev', '?'):<3} {state:<9} {p.get('priority', '-'):<9} "
              f"{','.join(p.get('targets', [])):<16} {describe_schedule(p.get('schedule')):<28} exp {exp}  "
              f"{p.get('title', '')[:40]}{mark}")
    if hidden := len(every) - len(rows):
        print(f"({hidden} expired or cancelled not shown: --all shows them, --prune clears the expired)")
    return 0


def _level(text: str) -> float:
    """``radiod volume LEVEL``: the protocol's 0.0 to 1.0, refused before it reaches a node that would refuse it."""
    try:
        level = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0.0 to 1.0") from None
    if not 0.0 <= level <= 1.0:
        hint = f" ({level / 100:g} for {level:g} %)" if 1 < level <= 100 else ""
        raise argparse.ArgumentTypeError(f"{text} is not from 0.0 to 1.0{hint}")
    return level


def _command(args: argparse.Namespace, action: Action, targets: tuple[str, ...], *, level: float | None = None,
             timeout_s: float) -> int:  # fmt: skip
    """Send a signed command, print each node's answer as it comes, then who did not answer; exit 1 if one
    that is online (by its retained state) did not answer or refused."""
    from radiod.hub.nodes import known_nodes

    operator = _operator(args)
    nodes = known_nodes(operator.config)
    expected = frozenset(nodes.reach(targets) & nodes.online)
    print(f"{action} sent to {', '.join(targets)}; waiting up to {timeout_s:g} s for "
          f"{', '.join(sorted(expected)) or 'any node'}", flush=True)
    final: dict[str, str] = {}
    for answer in operator.command(action, targets, level=level, timeout_s=timeout_s, expected=expected):
        event = answer.event
        if event.type == "rejected":
            text = f"REJECTED {event.reason}: {event.message}"
        elif event.step:
            text = f"{event.step}: {event.result} {event.detail or ''}".rstrip()
        else:
            text = event.result or ""
        print(f"{answer.node:<10} {text}", flush=True)
        if answer.final:
            final[answer.node] = event.type
    silent = sorted(expected - final.keys())
    if silent:
        print(f"no answer within {timeout_s:g} s: {', '.join(silent)}")
    offline = sorted(nodes.reach(targets) - nodes.online - final.keys())
    if offline:
        print(f"not online, not asked to answer: {', '.join(offline)}")
    refused = [n for n, kind in final.items() if kind == "rejected"]
    return 1 if silent or refused or not final else 0


def cmd_stop(args: argparse.Namespace) -> int:
    """Stop what the nodes are playing now, relays off."""
    from radiod.hub.operator import targets_from

    return _command(args, Action.STOP, targets_from(args.zone or (), args.node or ()), timeout_s=args.timeout)


def cmd_volume(args: argparse.Namespace) -> int:
    """Set the nodes' level (kept across restarts)."""
    from radiod.hub.operator import targets_from

    targets = targets_from(args.zone or (), args.node or ())
    return _command(args, Action.VOLUME, targets, level=args.level, timeout_s=args.timeout)


def cmd_watch(args: argparse.Namespace) -> int:
    """Decode live events, health and state of every node for a person to read."""
    from zoneinfo import ZoneInfo

    from radiod.hub.operator import describe_event
    from radiod.hub.session import stream
    from radiod.protocol.topics import NODE_TOPIC_KINDS, node_topic

    config = _config(args)
    tz = ZoneInfo(config.node.timezone)
    filters = [node_topic(config.mqtt.prefix, "+", kind) for kind in NODE_TOPIC_KINDS]
    for msg in stream(config.mqtt, "watch", filters, duration_s=args.seconds):
        for line in describe_event(msg.topic, msg.payload, tz):
            print(line, flush=True)
    return 0


def cmd_hub_setup(args: argparse.Namespace) -> int:
    """Make the hub broker's TLS, logins, ACL and config, and one credentials folder per node and operator."""
    import shutil

    from radiod.hub.hubsetup import HubSetup, setup_hub, split_names

    setup = HubSetup(
        prefix=args.prefix,
        hosts=tuple(args.host),
        nodes=split_names(args.node),
        operators=split_names(args.operator),
        out=Path(args.out),
        port=args.port,
        bind=args.bind,
        hub_dir=args.hub_dir,
        client_dir=args.client_dir,
        trusted_keys=tuple(Path(k) for k in args.trusted_key or ()),
        revoked_keys=split_names(args.revoked_key),
        force=args.force,
    )
    for line in setup_hub(setup, mosquitto_passwd=shutil.which("mosquitto_passwd")).lines():
        print(line)
    return 0


def _node_config(args: argparse.Namespace) -> Path | None:
    """The config file by the one rule (None: the defaults), for the commands that print which one they read."""
    return find_config(args.config)


def cmd_health(args: argparse.Namespace) -> int:
    """Every check, one line each or JSON; exit 0 ok, 1 warn, 2 crit, also when the config or daemon is broken."""
    from radiod.technician.health import show_health

    return show_health(_node_config(args), as_json=args.json)


def cmd_status(args: argparse.Namespace) -> int:
    """Now playing, the queue, the next plays and the last ten, from the running daemon."""
    from radiod.technician.status import show_status

    return show_status(load_config(_node_config(args)), as_json=args.json)


def cmd_test(args: argparse.Namespace) -> int:
    """The technician's test, run by the daemon between two plays; each step printed as it ends."""
    if args.node:  # the operator's remote test, by the signed command
        return _command(args, Action.TEST, tuple(f"node-{n}" for n in args.node), timeout_s=args.timeout)
    from radiod.technician.speakertest import run_test

    return run_test(load_config(_node_config(args)), args.line)


def cmd_config(args: argparse.Namespace) -> int:
    """The merged config (file over defaults) as YAML, secrets masked, so it can be pasted into a ticket."""
    import yaml

    from radiod.schema import to_plain

    path = _node_config(args)
    print(f"# {path or 'no config file'} merged over the built-in defaults; secrets masked")
    print(yaml.safe_dump(to_plain(load_config(path)), allow_unicode=True, sort_keys=False), end="")
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    """Every node of the commune from the broker's retained state and health; exit 2 if one is down."""
    from radiod.hub.nodes import show_nodes

    return show_nodes(load_config(_node_config(args)), as_json=args.json)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``radiod`` parser; with ``only``, the parser of that one command alone, when it is one (``main`` asks
    so: setting up all thirty commands' parsers costs about 8 ms, a tenth of replaying a programme by
    ``radiod speak -o``). ``radiod --help`` and a mistyped command get them all."""
    parser = argparse.ArgumentParser(
        prog="radiod",
        description="Commune loudspeaker node: signed bulletins over MQTT, offline Vietnamese speech, relays.",
    )
    parser.add_argument("--version", action="version", version=f"radiod {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config_opt = argparse.ArgumentParser(add_help=False)
    config_help = f"config file ({CONFIG_RULE})"
    config_opt.add_argument("--config", metavar="F", help=config_help)
    file_opt = argparse.ArgumentParser(add_help=False)  # run and validate: a file there must be, no defaults
    file_opt.add_argument("--config", metavar="F", help=f"config file ({CONFIG_RULE.removesuffix(DEFAULTS_CLAUSE)})")

    added: list[str] = []

    def command(
        name: str,
        handler: Handler,
        help_: str,
        parents: Sequence[argparse.ArgumentParser] = (),
        options: Callable[[argparse.ArgumentParser], None] | None = None,
    ) -> None:
        """Add command ``name``, its own ``options`` set up on its parser (only when it is the one asked for)."""
        if only is not None and name != only:
            return
        p = sub.add_parser(name, help=help_, description=help_, parents=list(parents))
        p.set_defaults(handler=handler)
        if options is not None:
            options(p)
        added.append(name)

    def speak_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("text", nargs="*", metavar="TEXT", help="the text to read")
        p.add_argument("-f", "--file", metavar="FILE", help="read the text from FILE (- for stdin)")
        p.add_argument("--voice", metavar="V", help="voice id (see `radiod voices`)")
        p.add_argument("-o", "--output", metavar="OUT.wav", help="write a WAV instead of playing")
        p.add_argument("--no-chime", action="store_true", help="no opening and closing chime")
        p.add_argument("--repeat", type=int, default=1, choices=range(1, 11), metavar="N", help="read it N times")

    command("speak", cmd_speak, "read a text aloud: normalize, synthesize, render, play", [config_opt], speak_options)

    def voices_options(p: argparse.ArgumentParser) -> None:
        actions = p.add_subparsers(dest="voices_action", metavar="ACTION")
        install_help = "check a Piper model (.onnx + .onnx.json) and install it as a voice (docs/piper.md)"
        install = actions.add_parser("install", help=install_help, description=install_help)
        # SUPPRESS: a --config given before "install" must not be overwritten by this one's default
        install.add_argument("--config", metavar="F", default=argparse.SUPPRESS, help=config_help)
        install.set_defaults(handler=cmd_voices_install)
        install.add_argument("path", metavar="PATH_OR_DIR", help="the .onnx, its .onnx.json, or a folder holding them")
        install.add_argument("--id", help="voice id (default: from the model name, e.g. vi-vais1000-medium)")
        install.add_argument("--region", choices=("north", "central", "south"), default="north",
                             help="regional reading of numbers and words (default north)")  # fmt: skip
        install.add_argument("--fallback", metavar="V", help="voice to read with when this one cannot run or keep up "
                             "(default: the espeak-ng voice of the region)")  # fmt: skip
        install.add_argument("--force", action="store_true", help="replace an existing voice file or model")

    command("voices", cmd_voices, "list the voices and whether they can run here; install a Piper voice",
            [config_opt], voices_options)  # fmt: skip

    command("validate", cmd_validate, "check a config file; exit 0 if valid, 2 with every problem if not", [file_opt])

    def normalize_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("text", nargs="+", metavar="TEXT", help="the text, or - to read lines from stdin")
        p.add_argument("--voice", metavar="V", help="voice id; its region selects regional readings")
        p.add_argument("--explain", action="store_true", help="show which rule produced each span")

    command("normalize", cmd_normalize, "print the spoken form of a text", [config_opt], normalize_options)

    command("run", cmd_run, "run the node daemon (as systemd does)", [file_opt])

    def keygen_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--kid", required=True, help="key id, e.g. hub-1 (nodes trust keys by id)")
        p.add_argument("--dir", default=".", help="where to write <kid>.key.pem and <kid>.pub.pem")

    command("keygen", cmd_keygen, "make an Ed25519 key pair for signing bulletins on the hub", options=keygen_options)

    signer = argparse.ArgumentParser(add_help=False, parents=[config_opt])
    signer.add_argument("--key", metavar="FILE", help="the hub's private key (default: hub.signing_key)")
    signer.add_argument("--kid", help="its key id (default: hub.kid)")

    def post_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("text", nargs="*", metavar="TEXT", help="the text to read out")
        p.add_argument("-f", "--file", metavar="FILE", help="read the text from FILE (- for stdin)")
        target = p.add_argument_group("target (default: all clusters)")
        target.add_argument("--zone", action="append", metavar="Z", help="a village zone (repeatable)")
        target.add_argument("--node", action="append", metavar="N", help="one node (repeatable)")
        when = p.add_mutually_exclusive_group()
        when.add_argument("--now", action="store_true", help="play as soon as it arrives (the default)")
        when.add_argument("--at", action="append", metavar="T",
                          help="start time: HH:MM, 'YYYY-MM-DD HH:MM' or RFC 3339")  # fmt: skip
        when.add_argument("--daily", action="append", metavar="HH:MM,...", help="every day at these times")
        p.add_argument("--weekdays", metavar="1,2,...", help="with --daily: ISO weekdays (1 = Monday)")
        p.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="with --daily: first day")
        p.add_argument("--until", dest="date_until", metavar="YYYY-MM-DD|HH:MM",
                       help="with --daily: last day (default: hub.daily_expiry_days); with --relay: HH:MM, the local "
                       "time the relay ends")  # fmt: skip
        programme = p.add_argument_group("recordings and relays (the text, if any, is read first)")
        programme.add_argument("--media", metavar="FILE|URL", help="play a recording: a FILE is checked and added to "
                               "the hub's library (hub.media_dir), a URL is fetched once to measure it")
        programme.add_argument("--bed", metavar="FILE|URL", help="music under the text, ducked while it is read: a "
                               "FILE or URL as with --media")
        programme.add_argument("--relay", metavar="URL", help="relay a live stream (with --duration or --until HH:MM)")
        programme.add_argument("--duration", metavar="LEN", help="with --relay: how long, e.g. 30m, 90s, 1h30m")
        p.add_argument("--lang", default="vi", metavar="TAG",
                       help="the programme's language, a BCP 47 tag: vi, tyz (Tày), nut (Nùng), hnj (Hmong), ... "
                       "(default vi); kept in the nodes' events and the reports")  # fmt: skip
        p.add_argument("--priority", choices=tuple(Priority), default=Priority.NORMAL)
        p.add_argument("--status", choices=tuple(Status), default=Status.ACTUAL)
        p.add_argument("--voice", metavar="V", help="voice id on the nodes")
        p.add_argument("--repeat", type=int, default=1, choices=range(1, 11), metavar="N", help="plays per occurrence")
        p.add_argument("--gap", type=float, metavar="S", help="seconds between repeats (default 3)")
        p.add_argument("--expires", metavar="T", help="expiry: 90m, 2h, 7d, or a time (default: 1 h after the last "
                       "--at, the end of --until, hub.daily_expiry_days for --daily, else hub.default_expiry_h)")
        p.add_argument("--title", help="title for people and logs (default: the first line)")
        p.add_argument("--no-chime", action="store_true", help="no opening and closing chime")
        p.add_argument("--volume", type=float, metavar="0..1", help="gain relative to each node's level")
        p.add_argument("--id", help="bulletin id (default: a new one); with --rev to replace a bulletin")
        p.add_argument("--rev", type=int, default=1, help="revision (default 1)")
        p.add_argument("--preview", action="store_true", help="print the text as it will be read and write it as a WAV "
                       "(-o); do not post")  # fmt: skip
        p.add_argument("-o", "--output", metavar="OUT.wav", default="bulletin-preview.wav",
                       help="with --preview: where to write the WAV (default bulletin-preview.wav)")  # fmt: skip

    command("post", cmd_post, "sign and publish a bulletin; prints its id", [signer], post_options)

    def cancel_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("id", help="the bulletin id")

    command("cancel", cmd_cancel, "cancel a bulletin: publish its signed tombstone", [signer], cancel_options)

    def bulletins_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--all", action="store_true", help="also the expired and cancelled ones")
        p.add_argument("--prune", action="store_true", help="clear the expired ones from the broker")

    command("bulletins", cmd_bulletins, "list the active bulletins retained on the broker", [signer], bulletins_options)

    commanded = argparse.ArgumentParser(add_help=False, parents=[signer])
    commanded.add_argument("--zone", action="append", metavar="Z", help="a village zone (repeatable; default: all)")
    commanded.add_argument("--node", action="append", metavar="N", help="one node (repeatable; default: all)")
    commanded.add_argument("--timeout", type=float, default=10.0, metavar="S",
                           help="how long to wait for the nodes' answers (default 10)")  # fmt: skip
    command("stop", cmd_stop, "stop what the nodes play now and switch their amplifiers off", [commanded])

    def volume_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("level", type=_level, metavar="LEVEL", help="0.0 to 1.0")

    command("volume", cmd_volume, "set the nodes' level, kept across restarts", [commanded], volume_options)

    def watch_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")

    command("watch", cmd_watch, "show live events, health and state of every node", [config_opt], watch_options)

    def hub_setup_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--prefix", required=True, help="topic prefix P, e.g. radio/yen-hoa")
        p.add_argument("--host", action="append", required=True, metavar="NAME",
                       help="the hub's name or IP as nodes reach it (repeatable; the first goes into their config)")
        p.add_argument("--node", action="append", required=True, metavar="ID[,ID...]", help="node ids (repeatable)")
        p.add_argument("--operator", action="append", metavar="NAME[,NAME...]", help="operator logins (repeatable)")
        p.add_argument("--out", required=True, metavar="DIR", help="where to write ca/, hub/, nodes/, operators/")
        p.add_argument("--port", type=int, default=8883, help="the broker's TLS port (default 8883)")
        p.add_argument("--bind", metavar="IP", help="listen on this address only (default: every interface)")
        p.add_argument("--hub-dir", default="/etc/mosquitto/radiod", metavar="DIR",
                       help="where hub/ is installed on the hub (default /etc/mosquitto/radiod)")
        p.add_argument("--client-dir", default="/etc/radiod/mqtt", metavar="DIR",
                       help="where a node's folder is installed on it (default /etc/radiod/mqtt)")
        p.add_argument("--trusted-key", action="append", metavar="KID.pub.pem",
                       help="a hub signing key the nodes trust (from `radiod keygen`; repeatable)")
        p.add_argument("--revoked-key", action="append", metavar="KID", help="a key id the nodes refuse (repeatable)")
        p.add_argument("--force", action="store_true", help="replace every existing key, certificate and password")

    command("hub-setup", cmd_hub_setup, "make the hub broker's certificates, logins, ACL and config, "
            "and one folder per node and operator (see hub/README.md)", options=hub_setup_options)  # fmt: skip

    def health_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="machine-readable output")

    command("health", cmd_health, "check this node; exit 0 ok, 1 warn, 2 crit, as monitoring plugins do",
            [config_opt], health_options)  # fmt: skip

    def status_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="machine-readable output")

    command("status", cmd_status, "now playing, the queue, the next plays and the last ten plays", [config_opt],
            status_options)  # fmt: skip

    def test_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--line", action="append", metavar="L", help="only this speaker line (repeatable; default: all)")
        p.add_argument("--node", action="append", metavar="N", help="operator: test node N over MQTT (repeatable)")
        p.add_argument("--timeout", type=float, default=120.0, metavar="S", help="with --node: wait this long")

    command("test", cmd_test, "technician's test: a tone and a phrase through each speaker line", [config_opt],
            test_options)  # fmt: skip

    def config_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--show", action="store_true", help="print it as YAML (what it does anyway)")

    command("config", cmd_config, "print the merged config with secrets masked", [config_opt], config_options)

    def nodes_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="machine-readable output")

    command("nodes", cmd_nodes, "the whole commune from the broker: online, status, next play, failing checks",
            [config_opt], nodes_options)  # fmt: skip

    hub_commands.register(command)

    def demo_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--keep", action="store_true", help="keep the demo's state directory")

    command("demo", cmd_demo, "run the whole node on an embedded default and print what happened", options=demo_options)
    if only is not None and not added:  # not a command: argparse says so, naming them all
        return build_parser()
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(words[0] if words else None).parse_args(words)
    except SystemExit as exc:
        if exc.code == EXIT_INVALID and [w for w in words if not w.startswith("-")][:1] == ["health"]:
            return EXIT_UNKNOWN
        raise
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    except RadiodError as exc:
        print(f"radiod {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
