"""The CLIP BPE tokenizer, built offline from the merges file bundled in configs/clip/.

CLIP's own construction (openai/CLIP simple_tokenizer.py): the 256 byte-unicode characters,
the same with '</w>', then the first 49152-256-2 merges joined, then <|startoftext|> and
<|endoftext|> -- 49408 entries. vocab.json/merges.txt are written once into a cache folder so
transformers' CLIPTokenizer loads them like any downloaded tokenizer.
"""

from __future__ import annotations

import gzip
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from lorakiln.core.atomic import write_text

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
VOCAB_SIZE = 49408
N_MERGES = 49152 - 256 - 2
PAD_TOKENS = {"eos": EOS, "bang": "!"}  # SD1/SDXL te1 pad with <|endoftext|>; SDXL te2 with "!" (id 0)


def cache_root() -> Path:
    """Where derived files live: $KILN_CACHE_DIR, else $XDG_CACHE_HOME/lorakiln, else ~/.cache/lorakiln."""
    if os.environ.get("KILN_CACHE_DIR"):
        return Path(os.environ["KILN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lorakiln"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode table, in CLIP's order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def clip_merges() -> list[tuple[str, str]]:
    raw = (resources.files("lorakiln.train.families") / "configs" / "clip" / "bpe_simple_vocab_16e6.txt.gz").read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").split("\n")[1 : N_MERGES + 1]
    return [tuple(line.split()) for line in lines]  # type: ignore[misc]


def clip_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}


def tokenizer_folder(pad: str = "eos") -> Path:
    """A folder with vocab.json, merges.txt and tokenizer_config.json; derived once, atomically."""
    folder = cache_root() / "clip-tokenizer" / pad
    if (folder / "tokenizer_config.json").is_file():
        return folder
    try:
        return _derive(folder, pad)
    except OSError:  # read-only home: derive into the temp folder instead
        import tempfile

        return _derive(Path(tempfile.gettempdir()) / "lorakiln-clip-tokenizer" / pad, pad)


def _derive(folder: Path, pad: str) -> Path:
    if (folder / "tokenizer_config.json").is_file():
        return folder
    merges = clip_merges()
    vocab = clip_vocab(merges)
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    write_text(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    write_text(folder / "merges.txt", "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": BOS, "eos_token": EOS,
              "unk_token": EOS, "pad_token": PAD_TOKENS[pad], "do_lower_case": True}
    write_text(folder / "tokenizer_config.json", json.dumps(config, indent=2))  # written last: marks completion
    return folder


@lru_cache(maxsize=4)
def _load(pad: str, folder: str):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(folder, local_files_only=True)


def load_clip_tokenizer(pad: str = "eos"):
    """transformers CLIPTokenizer with CLIP's real vocabulary; pad 'eos' (te1) or 'bang' (SDXL te2)."""
    if pad not in PAD_TOKENS:
        raise ValueError(f"pad must be one of {sorted(PAD_TOKENS)}")
    return _load(pad, str(tokenizer_folder(pad)))
