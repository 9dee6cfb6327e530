"""Typed YAML loading: a dataclass is the schema, its defaults and its documentation.

Config, firmware profiles and voice files are all loaded through :func:`load`. A schema is a frozen
dataclass whose fields are declared with :func:`setting`; the loader checks every key and value against the
type hints and constraints, keeps the YAML line of each key, and reports *every* problem at once with its file,
line and dotted key, plus a "did you mean" for unknown keys. Nothing here raises anything but
:class:`~radiod.errors.ConfigError`, so a command can print the problems and exit 2, never a traceback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from radiod.errors import ConfigError, Problem

T = TypeVar("T")

_MISSING = dataclasses.MISSING


def setting(
    default: Any = _MISSING,
    *,
    doc: str,
    factory: typing.Callable[[], Any] | None = None,
    min: float | None = None,  # noqa: A002 - mirrors the schema vocabulary
    max: float | None = None,  # noqa: A002
    pattern: str | None = None,
    secret: bool = False,
    check: typing.Callable[[Any], str | None] | None = None,
) -> Any:
    """Declare one schema field: its default, a one-line doc, and the constraints the loader checks.

    ``check`` is for what a type and a pattern cannot say (a time zone the system knows): it gets each value and
    returns what is wrong with it, or None.
    """
    meta = {"doc": doc, "min": min, "max": max, "pattern": pattern, "secret": secret, "check": check}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class _Mapping(dict):
    """A YAML mapping that remembers the line of each key (1-based) and of itself."""

    line: int = 0
    key_lines: dict[Any, int]


class _Sequence(list):
    """A YAML sequence that remembers the line of each item."""

    line: int = 0
    item_lines: list[int]


# libyaml's parser when PyYAML was built with it: the pure-Python scanner was most of the time it took to load
# the pronunciation lexicon on every ``radiod speak``. Its nodes carry the same marks, so lines are still kept.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeBase):  # type: ignore[misc,valid-type]
    """SafeLoader that records line numbers, and refuses duplicate keys (a classic hand-edit mistake)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _Mapping:  # type: ignore[override]
        mapping = _Mapping()
        mapping.line = node.start_mark.line + 1
        mapping.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in mapping:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            mapping[key] = self.construct_object(value_node, deep=True)
            mapping.key_lines[key] = key_node.start_mark.line + 1
        return mapping

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> _Sequence:  # type: ignore[override]
        seq = _Sequence(self.construct_object(child, deep=True) for child in node.value)
        seq.line = node.start_mark.line + 1
        seq.item_lines = [child.start_mark.line + 1 for child in node.value]
        return seq


_LineLoader.add_constructor("tag:yaml.org,2002:map", _LineLoader.construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _LineLoader.construct_sequence)


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, turning a syntax error into a ConfigError with the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, "", f"cannot read file: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(str(path), None, "", f"not UTF-8: {exc.reason}")]) from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text; ``source`` names it in error messages."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([Problem(source, line, "", f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(source, None, "", f"YAML error: {exc}")]) from None


def load(path: Path, schema: type[T]) -> T:
    """Read ``path`` and build ``schema`` from it; an empty file gives all the defaults."""
    data = read_yaml(path)
    return build(schema, data, str(path))


def build(schema: type[T], data: Any, source: str) -> T:
    """Build ``schema`` from parsed YAML ``data``, or raise ConfigError listing every problem."""
    ctx = _Ctx(source, [])
    if data is None:
        data = _Mapping()
        data.line = 1
        data.key_lines = {}
    value = _convert(schema, data, "", 1, ctx)
    if ctx.problems:
        raise ConfigError(ctx.problems)
    return typing.cast(T, value)


def key_line(data: Any, key: str) -> int | None:
    """The YAML line of dotted ``key`` in parsed ``data`` (from :func:`read_yaml`), None when it is not there."""
    node, line = data, None
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        line = getattr(node, "key_lines", {}).get(part, line)
        node = node[part]
    return line


def key_value(data: Any, key: str) -> Any:
    """The value of dotted ``key`` in parsed ``data``, None when it is not there."""
    node = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def type_name(tp: Any) -> str:
    """A reader's name for a type hint: 'a whole number', 'one of: a, b'."""
    origin = typing.get_origin(tp)
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if tp is dt.time:
        return "a time HH:MM"
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {type_name(typing.get_args(tp)[0]).removeprefix('a ')}s"
    if origin is dict:
        return f"a mapping of names to {type_name(typing.get_args(tp)[1]).removeprefix('a ')}s"
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else type_name(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


@dataclasses.dataclass
class _Ctx:
    """What every check needs besides the value: the file name and the problems found so far."""

    source: str
    problems: list[Problem]


def _container_of(tp: Any) -> type | tuple[()]:
    """dict for a section or mapping type, list for a list type, else ``()`` (no value is an instance of it)."""
    if dataclasses.is_dataclass(tp) or typing.get_origin(tp) is dict:
        return dict
    if typing.get_origin(tp) is list:
        return list
    return ()


def _convert(tp: Any, value: Any, key: str, line: int, ctx: _Ctx) -> Any:
    """Check ``value`` against type hint ``tp``; on a mismatch record a Problem and return None."""

    def bad(message: str) -> None:
        ctx.problems.append(Problem(ctx.source, line, key or "(top level)", message))

    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and isinstance(value, _container_of(others[0])):
            # an optional section or list given as one: what is wrong inside it is named, not "expected a mapping
            # or null, got a mapping"
            return _convert(others[0], value, key, line, ctx)
        for arg in others:
            trial = _Ctx(ctx.source, [])
            result = _convert(arg, value, key, line, trial)
            if not trial.problems:
                return result
        return bad(f"expected {type_name(tp)}, got {_describe(value)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            return bad(f"expected a mapping, got {_describe(value)}")
        return _convert_section(tp, value, key, ctx)
    if origin is Literal:
        if value not in typing.get_args(tp):
            return bad(f"expected {type_name(tp)}, got {_describe(value)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            return bad(f"expected {type_name(tp)}, got {_describe(value)}")
        (item_tp,) = typing.get_args(tp)
        lines = getattr(value, "item_lines", [line] * len(value))
        return [
            _convert(item_tp, item, f"{key}[{i}]", lines[i], ctx) for i, item in enumerate(value)
        ]
    if origin is dict:
        if not isinstance(value, dict):
            return bad(f"expected {type_name(tp)}, got {_describe(value)}")
        _, item_tp = typing.get_args(tp)
        lines = getattr(value, "key_lines", {})
        return {
            str(k): _convert(item_tp, v, f"{key}.{k}", lines.get(k, line), ctx)
            for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            return bad(f"expected true or false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return bad(f"expected a whole number, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return bad(f"expected a number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if value is None:  # "output: null" means the null output to its writer, nothing at all to YAML
            return bad('expected a string, got nothing (null); for the word null itself, put it in quotes: "null"')
        if not isinstance(value, str):
            return bad(f"expected a string, got {_describe(value)}")
        return value
    if tp is dt.time:
        if isinstance(value, str) and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            return dt.time(int(value[:2]), int(value[3:]))
        return bad(f"expected a time HH:MM in quotes, got {_describe(value)}")
    raise TypeError(f"schema type {tp!r} is not supported")  # a programming error, not bad input


def _convert_section(tp: Any, value: dict, key: str, ctx: _Ctx) -> Any:
    hints = typing.get_type_hints(tp)
    fields = {f.name: f for f in dataclasses.fields(tp)}
    key_lines: dict[Any, int] = getattr(value, "key_lines", {})
    section_line = getattr(value, "line", 1)
    kwargs: dict[str, Any] = {}
    before_section = len(ctx.problems)
    for name, item in value.items():
        path = f"{key}.{name}" if key else str(name)
        item_line = key_lines.get(name, section_line)
        if name not in fields:
            hint = difflib.get_close_matches(str(name), list(fields), n=1)
            known = f" (did you mean '{hint[0]}'?)" if hint else f" (known keys: {', '.join(fields)})"
            ctx.problems.append(Problem(ctx.source, item_line, path, f"unknown key '{name}'{known}"))
            continue
        before = len(ctx.problems)
        converted = _convert(hints[name], item, path, item_line, ctx)
        if len(ctx.problems) == before:
            _check_constraints(fields[name].metadata, converted, path, item_line, ctx)
        kwargs[name] = converted
    for name, f in fields.items():
        if name not in value and f.default is _MISSING and f.default_factory is _MISSING:
            path = f"{key}.{name}" if key else name
            missing = f"required key is missing: {f.metadata['doc']}"
            ctx.problems.append(Problem(ctx.source, section_line, path, missing))
    if len(ctx.problems) > before_section:
        return None
    return tp(**kwargs)


def _check_constraints(meta: Any, value: Any, key: str, line: int, ctx: _Ctx) -> None:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            if meta.get("min") is not None and item < meta["min"]:
                ctx.problems.append(Problem(ctx.source, line, key, f"must be at least {meta['min']}, got {item}"))
            if meta.get("max") is not None and item > meta["max"]:
                ctx.problems.append(Problem(ctx.source, line, key, f"must be at most {meta['max']}, got {item}"))
        if isinstance(item, str) and meta.get("pattern") and not re.fullmatch(meta["pattern"], item):
            mismatch = f"{item!r} does not match the pattern {meta['pattern']}"
            ctx.problems.append(Problem(ctx.source, line, key, mismatch))
        elif meta.get("check") is not None and (wrong := meta["check"](item)) is not None:
            ctx.problems.append(Problem(ctx.source, line, key, wrong))


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, dt.date):
        return f"the date {value} (quote it to make it text)"
    return type(value).__name__


def to_plain(obj: Any, *, mask_secrets: bool = True) -> Any:
    """A schema object as plain data for printing; secrets are shown as '********'."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if mask_secrets and f.metadata.get("secret") and value:
                out[f.name] = "********"
            else:
                out[f.name] = to_plain(value, mask_secrets=mask_secrets)
        return out
    if isinstance(obj, list):
        return [to_plain(v, mask_secrets=mask_secrets) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v, mask_secrets=mask_secrets) for k, v in obj.items()}
    if isinstance(obj, dt.time):
        return obj.strftime("%H:%M")
    return obj


def field_docs(schema: type, prefix: str = "") -> list[tuple[str, str, Any]]:
    """Every key of a schema as (dotted key, doc, default), for docs and the example config's test."""
    out: list[tuple[str, str, Any]] = []
    for f in dataclasses.fields(schema):
        path = f"{prefix}{f.name}"
        hint = typing.get_type_hints(schema)[f.name]
        if dataclasses.is_dataclass(hint):
            out.append((path, f.metadata.get("doc", ""), None))
            out.extend(field_docs(hint, path + "."))
        else:
            default = f.default if f.default is not _MISSING else (
                f.default_factory() if f.default_factory is not _MISSING else None
            )
            out.append((path, f.metadata.get("doc", ""), default))
    return out
