"""Find LoRA files by the names prompts use (`<lora:NAME:w>`) and know their aliases and hashes.

A name matches a file's stem or name first (A1111's `lora_preferred_name = filename`), then its
alias (`ss_output_name`). Every checkpoint of a run shares one alias, so an alias matching
several files picks the one whose stem is the alias (the final file), else the newest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from lorakiln.core.errors import KilnError
from lorakiln.evaluate.lora_hash import content_hash
from lorakiln.formats.lora_file import read_metadata


class LoraLibrary:
    def __init__(self, files: Iterable[Path] = (), dirs: Iterable[Path] = (), cache_dir: Path | None = None):
        self.cache_dir = cache_dir  # where content hashes are remembered (None: per library only)
        self.files: list[Path] = []
        for f in files:
            self._add(Path(f))
        for d in dirs:
            d = Path(d)
            if d.is_dir():
                for f in sorted(d.rglob("*.safetensors")):
                    self._add(f)
        self._meta: dict[Path, dict[str, str]] = {}
        self._hash: dict[Path, str] = {}

    def _add(self, f: Path) -> None:
        f = f.expanduser()
        if f not in self.files:
            self.files.append(f)

    def metadata(self, path: Path) -> dict[str, str]:
        path = Path(path)
        if path not in self._meta:
            try:
                self._meta[path] = read_metadata(path)
            except KilnError:
                self._meta[path] = {}
        return self._meta[path]

    def alias(self, path: Path) -> str:
        return self.metadata(path).get("ss_output_name") or Path(path).stem

    def hash(self, path: Path) -> str:
        """AutoV3 (full hex), computed from the file's tensor bytes: the picture caches are keyed by it,
        so the stored sshs_model_hash, which an edited file may still carry, is never used."""
        path = Path(path)
        if path not in self._hash:
            if not path.is_file():
                raise KilnError(f"{path}: LoRA file not found")
            self._hash[path] = content_hash(path, self.cache_dir)
        return self._hash[path]

    def resolve(self, name: str) -> Path:
        direct = Path(name).expanduser()
        if direct.suffix == ".safetensors" and direct.is_file():
            return direct
        by_stem = [f for f in self.files if f.stem == name or f.name == name]
        if by_stem:
            return by_stem[0]
        by_alias = [f for f in self.files if self.alias(f) == name]
        if by_alias:
            exact = [f for f in by_alias if f.stem == name]
            return exact[0] if exact else max(by_alias, key=lambda f: f.stat().st_mtime)
        where = sorted({str(f.parent) for f in self.files}) or ["(no LoRA folders)"]
        raise KilnError(f"<lora:{name}>: no LoRA file with that name or alias in {', '.join(where)}; "
                        "pass the file with --lora FILE or its folder with --lora-dir DIR")
