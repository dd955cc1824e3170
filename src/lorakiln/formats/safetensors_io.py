"""Low-level safetensors: read and check the header without loading tensors, write a file
tensor by tensor (checkpoints far larger than memory), and rewrite only the header.

File layout: 8-byte little-endian header length N, N bytes of JSON header (tensor name ->
dtype/shape/data_offsets, plus an optional "__metadata__" of string -> string), then the
data section. Pickled PyTorch files are refused here, by name and by content; they are never
unpickled.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import torch

from lorakiln.core.atomic import atomic_open
from lorakiln.core.errors import KilnError

MAX_HEADER = 100 * 1024 * 1024  # what the safetensors library itself accepts
PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle"}
_CHUNK = 1 << 20

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
DTYPE_NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}


class FormatError(KilnError):
    """A model file that cannot be read: the message names the file and what is wrong."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    start: int  # offsets inside the data section
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


@dataclass
class Header:
    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    data_start: int = 0  # 8 + N
    data_size: int = 0


def _refuse_pickle(path: Path, head: bytes) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES or head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04",
                                                              b"\x80\x05") or head[:4] == b"PK\x03\x04":
        raise FormatError(path, "is a pickled PyTorch file (.ckpt/.pt); lorakiln never unpickles files, "
                                "because loading a pickle can run code; use a .safetensors version")


def _tensor_info(path: Path, name: str, entry) -> TensorInfo:
    try:
        start, end = (int(x) for x in entry["data_offsets"])
        shape = tuple(int(s) for s in entry["shape"])
        dtype = str(entry["dtype"])
    except (KeyError, TypeError, ValueError):
        raise FormatError(path, f"header entry {name!r} lacks dtype/shape/data_offsets") from None
    if dtype not in DTYPES:
        raise FormatError(path, f"tensor {name!r} has unsupported dtype {dtype}")
    if end < start or end - start != math.prod(shape) * DTYPES[dtype].itemsize:
        raise FormatError(path, f"tensor {name!r}: data_offsets {start}..{end} do not match shape {list(shape)} {dtype}")
    return TensorInfo(dtype, shape, start, end)


def check_file(path: Path) -> None:
    """A FormatError unless `path` is an existing regular file (a folder is named as one)."""
    if path.is_dir():
        raise FormatError(path, "is a folder, not a file")
    if not path.is_file():
        raise FormatError(path, "no such file" if not path.exists() else "is not a regular file")


def read_header(path: Path | str) -> Header:
    """Parse and check the header; raises FormatError for pickles, truncation and bad JSON."""
    path = Path(path)
    check_file(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        _refuse_pickle(path, head)
        if len(head) < 8:
            raise FormatError(path, f"is not a safetensors file ({size} bytes, shorter than the 8-byte header length)")
        n = int.from_bytes(head, "little")
        if n > MAX_HEADER:
            raise FormatError(path, "is not a safetensors file (its first 8 bytes are not a plausible header length)")
        if 8 + n > size:
            raise FormatError(path, f"is truncated: the header says {n} bytes but the file has {size - 8} after the length")
        raw = fh.read(n)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(path, f"is not a safetensors file: its header is not JSON ({e.__class__.__name__})") from None
    except RecursionError:
        raise FormatError(path, "is not a safetensors file: its header's JSON is nested too deeply to read") from None
    except ValueError as e:  # an integer beyond Python's digit limit
        raise FormatError(path, f"is not a safetensors file: its header holds a value that cannot be read ({e})") from None
    if not isinstance(obj, dict):
        raise FormatError(path, "is not a safetensors file: its header is not a JSON object")
    meta = obj.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError(path, "__metadata__ must map strings to strings")
    tensors = {k: _tensor_info(path, k, v) for k, v in obj.items()}
    data_size = size - 8 - n
    need = max((t.end for t in tensors.values()), default=0)
    if need > data_size:
        raise FormatError(path, f"is truncated: the header needs {need} bytes of tensor data, the file has {data_size}")
    return Header(path, tensors, dict(meta), 8 + n, data_size)


def encode_header(tensors: dict[str, TensorInfo], metadata: dict[str, str]) -> bytes:
    """Length prefix + JSON header padded with spaces to a multiple of 8 (as safetensors does)."""
    obj: dict = {"__metadata__": dict(metadata)} if metadata else {}
    for name, t in tensors.items():
        obj[name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [t.start, t.end]}
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    body += b" " * (-len(body) % 8)
    return len(body).to_bytes(8, "little") + body


def iter_data(path: Path, start: int, length: int | None = None) -> Iterator[bytes]:
    """The file's bytes from `start`, in chunks."""
    with open(path, "rb") as fh:
        fh.seek(start)
        left = length
        while left is None or left > 0:
            chunk = fh.read(_CHUNK if left is None else min(_CHUNK, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The raw little-endian bytes of a CPU tensor of any dtype (bf16 included), without a copy."""
    t = t.detach().to("cpu").contiguous()
    if not t.numel():
        return memoryview(b"")
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())


def _read_tensor(fh, path: Path, header: Header, name: str) -> torch.Tensor:
    info = header.tensors[name]
    fh.seek(header.data_start + info.start)
    raw = bytearray(info.nbytes)
    if fh.readinto(raw) != info.nbytes:
        raise FormatError(path, f"is truncated inside tensor {name!r}")
    flat = torch.frombuffer(raw, dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
    return flat.view(DTYPES[info.dtype]).reshape(info.shape)


def load_tensor(path: Path, header: Header, name: str) -> torch.Tensor:
    with open(path, "rb") as fh:
        return _read_tensor(fh, Path(path), header, name)


class TensorReader:
    """Reads tensors one at a time with plain reads (no memory map), so a streamed pass over a
    multi-GB checkpoint holds one tensor in memory, not the mapped file."""

    def __init__(self, path: Path | str, header: Header | None = None):
        self.path = Path(path)
        self.header = header or read_header(self.path)
        self._fh = open(self.path, "rb")

    def get(self, name: str) -> torch.Tensor:
        return _read_tensor(self._fh, self.path, self.header, name)

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "TensorReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_streaming(path: Path | str, specs: Iterable[tuple[str, torch.dtype, tuple[int, ...]]],
                    tensors: Iterable[torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a safetensors file atomically, one tensor at a time: `specs` (name, dtype, shape)
    fixes the header; `tensors` yields them in the same order. Memory stays one tensor."""
    infos: dict[str, TensorInfo] = {}
    offset = 0
    for name, dtype, shape in specs:
        size = math.prod(shape) * dtype.itemsize
        infos[name] = TensorInfo(DTYPE_NAMES[dtype], tuple(shape), offset, offset + size)
        offset += size
    with atomic_open(Path(path), "wb") as fh:
        fh.write(encode_header(infos, metadata))
        it = iter(tensors)
        for name, info in infos.items():
            t = next(it)
            if tuple(t.shape) != info.shape or DTYPE_NAMES.get(t.dtype) != info.dtype:
                raise KilnError(f"{path}: tensor {name!r} is {t.dtype} {list(t.shape)}, "
                                f"the header promised {info.dtype} {list(info.shape)}")
            fh.write(tensor_bytes(t))


def rewrite_header(src: Path | str, dst: Path | str, metadata: dict[str, str]) -> None:
    """Copy `src` to `dst` (may be the same file) with new metadata; tensor bytes are copied
    unchanged, so the data-section hash stays the same."""
    src, dst = Path(src), Path(dst)
    header = read_header(src)
    with atomic_open(dst, "wb") as fh:
        fh.write(encode_header(header.tensors, metadata))
        for chunk in iter_data(src, header.data_start, header.data_size):
            fh.write(chunk)
