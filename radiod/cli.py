"""The ``radiod`` command: one entry point for the daemon, the technician and the operator.

Every command prints a clear message and exits non-zero on bad input; a traceback is a bug. Heavy modules
(numpy, gpiozero, paho) are imported inside the command that needs them, so ``radiod --help`` and
``radiod normalize`` start instantly on a Pi.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from radiod import __version__
from radiod.config import Config, load_config
from radiod.errors import ConfigError, RadiodError

EXIT_ERROR = 1
EXIT_INVALID = 2

Handler = Callable[[argparse.Namespace], int]


def _config(args: argparse.Namespace) -> Config:
    return load_config(Path(args.config) if getattr(args, "config", None) else None)


def _read_text(args: argparse.Namespace) -> str:
    """The bulletin text from the TEXT argument or ``-f FILE`` (``-f -`` reads stdin)."""
    if args.file:
        if args.file == "-":
            return sys.stdin.read()
        try:
            return Path(args.file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RadiodError(f"cannot read {args.file}: {exc}") from None
    if not args.text:
        raise RadiodError("give the text to read, or -f FILE")
    return " ".join(args.text)


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a config file and the profile and default voice it names."""
    from radiod.profiles import load_profile
    from radiod.voices import load_voice

    config = load_config(Path(args.config))
    load_profile(config.gpio.profile, Path(config.gpio.profiles_dir))
    load_voice(config.speech.voice, Path(config.speech.voices_dir))
    print(f"{args.config}: ok (node {config.node.id}, profile {config.gpio.profile}, voice {config.speech.voice})")
    return 0


def cmd_voices(args: argparse.Namespace) -> int:
    """List the voices and whether each can run on this machine."""
    from radiod.errors import VoiceError
    from radiod.tts import engine_for
    from radiod.voices import load_voices

    config = _config(args)
    for voice in load_voices(Path(config.speech.voices_dir)):
        try:
            engine_for(voice)
            state = "ok"
        except VoiceError as exc:
            state = f"unavailable: {exc}"
        default = " (default)" if voice.id == config.speech.voice else ""
        print(f"{voice.id:<14} {voice.engine:<10} {voice.region:<8} {voice.description}{default}  [{state}]")
    return 0


def cmd_normalize(args: argparse.Namespace) -> int:
    """Print the spoken form; with ``-`` one output line per input line, so it works in a pipe."""
    from radiod.normalize import explain, normalize
    from radiod.voices import load_voice

    config = _config(args)
    region = load_voice(args.voice or config.speech.voice, Path(config.speech.voices_dir)).region
    if args.text == ["-"]:
        lines: Sequence[str] = (line.rstrip("\n") for line in sys.stdin)
    else:
        lines = [" ".join(args.text)]
    for line in lines:
        if args.explain:
            for span in explain(line, region):
                print(f"{span.source!r:>24} -> {span.spoken!r}  [{span.rule}]")
        else:
            print(" ".join(normalize(line, region).split()))
        sys.stdout.flush()
    return 0


def cmd_speak(args: argparse.Namespace) -> int:
    """Normalize, synthesize and render TEXT; write it to ``-o`` or play it through relays and the output."""
    from radiod.programme import ProgrammeMaker

    config = _config(args)
    text = _read_text(args)
    maker = ProgrammeMaker(config)
    programme = maker.make(text, args.voice or config.speech.voice, chime=not args.no_chime, repeat=args.repeat)
    if args.output:
        from radiod.pcm import write_wav_blocks

        write_wav_blocks(Path(args.output), programme.rate, programme.blocks(8192))
        print(f"{args.output}: {programme.duration_s:.1f} s at {programme.rate} Hz")
        return 0
    from radiod.station import Station

    with Station(config) as station:
        timeline = station.play(programme, name="speak")
    print(timeline.describe())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on an embedded default; see radiod/demo.py."""
    from radiod.demo import run_demo

    return run_demo(keep=args.keep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="radiod",
        description="Commune loudspeaker node: signed bulletins over MQTT, offline Vietnamese speech, relays.",
    )
    parser.add_argument("--version", action="version", version=f"radiod {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config_opt = argparse.ArgumentParser(add_help=False)
    config_opt.add_argument("--config", metavar="F", help="config file (default: built-in defaults)")

    def command(name: str, handler: Handler, help_: str, parents: Sequence[argparse.ArgumentParser] = ()) -> (
        argparse.ArgumentParser
    ):
        p = sub.add_parser(name, help=help_, description=help_, parents=list(parents))
        p.set_defaults(handler=handler)
        return p

    p = command("speak", cmd_speak, "read a text aloud: normalize, synthesize, render, play", [config_opt])
    p.add_argument("text", nargs="*", metavar="TEXT", help="the text to read")
    p.add_argument("-f", "--file", metavar="FILE", help="read the text from FILE (- for stdin)")
    p.add_argument("--voice", metavar="V", help="voice id (see `radiod voices`)")
    p.add_argument("-o", "--output", metavar="OUT.wav", help="write a WAV instead of playing")
    p.add_argument("--no-chime", action="store_true", help="no opening and closing chime")
    p.add_argument("--repeat", type=int, default=1, choices=range(1, 11), metavar="N", help="read it N times")

    command("voices", cmd_voices, "list the voices and whether they can run here", [config_opt])

    p = command("validate", cmd_validate, "check a config file; exit 0 if valid, 2 with every problem if not")
    p.add_argument("--config", metavar="F", required=True, help="the config file to check")

    p = command("normalize", cmd_normalize, "print the spoken form of a text", [config_opt])
    p.add_argument("text", nargs="+", metavar="TEXT", help="the text, or - to read lines from stdin")
    p.add_argument("--voice", metavar="V", help="voice id; its region selects regional readings")
    p.add_argument("--explain", action="store_true", help="show which rule produced each span")

    p = command("demo", cmd_demo, "run the whole node on an embedded default and print what happened")
    p.add_argument("--keep", action="store_true", help="keep the demo's state directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
