"""Sample prompt files in kohya's syntax (reference/trainers.md §1.7).

One prompt per line; `#` starts a comment line. Options after the prompt:
`--n` negative prompt, `--w` width, `--h` height, `--d` seed, `--s` steps (1-1000),
`--l` CFG scale, `--ss` sampler. kohya's model-specific options (--g, --cn, --ctr, --rcfg, --fs)
do not apply to SD1.5/SDXL and are skipped with a note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from lorakiln.core.errors import ConfigError

_OPT = re.compile(r"(?:^|\s)--([a-z]+)\b\s*")
_IGNORED = {"g", "cn", "ctr", "rcfg", "fs", "am"}


@dataclass(frozen=True)
class SamplePrompt:
    prompt: str
    negative: str = ""
    width: int | None = None  # None = training resolution
    height: int | None = None
    seed: int | None = None  # None = the run's seed + the prompt's index
    steps: int = 30
    scale: float = 7.5
    sampler: str | None = None  # None = [train.sample].sample_sampler


def _num(value: str, kind, where: str):
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not a number") from None


def _apply(p: SamplePrompt, key: str, value: str) -> SamplePrompt:
    if key == "n":
        return replace(p, negative=value)
    if key in ("w", "h"):
        v = _num(value, int, f"--{key}")
        v = max(64, v - v % 8)
        return replace(p, **{"width" if key == "w" else "height": v})
    if key == "d":
        return replace(p, seed=_num(value, int, "--d"))
    if key == "s":
        return replace(p, steps=min(1000, max(1, _num(value, int, "--s"))))
    if key == "l":
        return replace(p, scale=_num(value, float, "--l"))
    if key == "ss":
        return replace(p, sampler=value)
    raise ValueError(f"unknown option --{key} (known: --n --w --h --d --s --l --ss)")


def parse_line(line: str) -> tuple[SamplePrompt | None, list[str]]:
    """One line -> (prompt or None for blank/comment lines, notes about skipped options)."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None, []
    matches = list(_OPT.finditer(line))
    text = line[: matches[0].start()] if matches else line
    p, notes = SamplePrompt(prompt=text.strip()), []
    for m, nxt in zip(matches, [*matches[1:], None]):
        key, value = m.group(1), line[m.end(): nxt.start() if nxt else len(line)].strip()
        if key in _IGNORED:
            notes.append(f"--{key} does not apply to SD1.5/SDXL sampling; skipped")
            continue
        p = _apply(p, key, value)
    return p, notes


def parse_prompts(text: str, source: str = "sample prompts") -> tuple[list[SamplePrompt], list[str]]:
    """Every prompt of a file; a bad line raises ConfigError naming the file and line."""
    prompts, notes = [], []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            p, extra = parse_line(line)
        except ValueError as e:
            raise ConfigError(source, f"line {n}: {e}") from None
        notes += [f"line {n}: {x}" for x in extra]
        if p is not None:
            if not p.prompt:
                raise ConfigError(source, f"line {n}: options without a prompt")
            prompts.append(p)
    return prompts, notes


def load_prompts(path: Path) -> tuple[list[SamplePrompt], list[str]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(path, f"cannot read the sample prompt file: {e.strerror}") from None
    return parse_prompts(text, str(path))
