"""Reading TOML (and other config text) so that every failure names the file and, where it can, the line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import tomlkit
from tomlkit.exceptions import ParseError, TOMLKitError

from lorakiln.core.errors import ConfigError

_AT = re.compile(r"\(at line (\d+), column (\d+)\)$")


def read_config_text(path: Path, what: str = "") -> str:
    """The file as text: UTF-8, with or without a byte-order mark (Windows editors add one)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(path, f"cannot read{' ' + what if what else ''}: {e.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(path, f"not UTF-8 text (byte 0x{data[e.start]:02x} on line {line}); "
                                "save the file as UTF-8") from None


def parse_toml(text: str, path: Path) -> tomlkit.TOMLDocument:
    """tomlkit's document (comments kept), or a ConfigError saying where the file is malformed."""
    try:
        return tomlkit.parse(text)
    except ParseError as e:
        problem = _stdlib_opinion(text) or f"line {e.line}, column {e.col + 1}: {_reason(e)}"
    except (TOMLKitError, ValueError, RecursionError) as e:  # tomlkit's checks that carry no position
        problem = _stdlib_opinion(text) or str(e) or type(e).__name__
    raise ConfigError(path, f"not valid TOML: {problem}")


def _stdlib_opinion(text: str) -> str | None:
    """tomllib's message when it names a line: it points at the start of a repeated table, where
    tomlkit points at its end."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = _AT.search(str(e))
        if m:
            return f"line {m.group(1)}, column {m.group(2)}: {str(e)[: m.start()].rstrip()}"
    except (ValueError, RecursionError):
        pass
    return None


def load_toml(path: Path, what: str = "") -> tomlkit.TOMLDocument:
    path = Path(path)
    return parse_toml(read_config_text(path, what), path)


def _reason(e: ParseError) -> str:
    """tomlkit's message without its own ' at line L col C' tail (we say it first, 1-based)."""
    msg = str(e)
    tail = f" at line {e.line} col {e.col}"
    return msg[: -len(tail)] if msg.endswith(tail) else msg
