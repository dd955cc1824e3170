"""The content hash of a LoRA file: what its pictures depend on, computed from its tensors.

Picture names (the eval and sample caches) and the infotext's "Lora hashes" use it. It is the
SHA-256 of the file's data section as on disk (AutoV3, A1111's LoRA hash; for a file written by
safetensors the same as kohya's `sshs_model_hash`). The stored `sshs_model_hash` is never trusted:
a file whose tensors were edited and saved with its old metadata still claims the old hash, and
its old pictures would be reused. Hashing reads the whole file, so the result is remembered in
`<cache>/lora_hashes.json` by resolved path, size and modification time (ns): a rewritten file
gets a new modification time and is hashed again.
"""

from __future__ import annotations

import json
from pathlib import Path

from lorakiln.core.atomic import write_json
from lorakiln.formats.lora_file import tensor_hash

STORE = "lora_hashes.json"


def file_key(path: Path) -> str:
    """resolved path | size | mtime in ns: changes whenever the file is rewritten."""
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _load(store: Path) -> dict[str, str]:
    try:
        doc = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # missing or damaged: recomputed, never an error
    return {k: v for k, v in doc.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(doc, dict) else {}


def content_hash(path: Path | str, cache_dir: Path | str | None = None) -> str:
    """SHA-256 (full hex) of the tensor data of `path`, remembered by path, size and mtime."""
    path = Path(path)
    key = file_key(path)
    store = Path(cache_dir) / STORE if cache_dir is not None else None
    known = _load(store) if store is not None else {}
    if key not in known:
        known[key] = tensor_hash(path)
        if store is not None:
            live = {k: v for k, v in known.items() if _still_there(k)}
            try:
                write_json(store, live)
            except OSError:
                pass  # a read-only cache only costs the hashing next time
    return known[key]


def _still_there(key: str) -> bool:
    """Entries of files that no longer exist (or were rewritten) are dropped when the store is saved."""
    where, _, _ = key.rsplit("|", 2) if key.count("|") >= 2 else (key, "", "")
    p = Path(where)
    try:
        return p.is_file() and file_key(p) == key
    except OSError:
        return False
