"""kiln merge / resize / extract / merge --into: read the files, call the pure cores in
lorakiln.merge, write the result atomically with provenance, report per-module numbers.

Every operation is idempotent: an existing output whose provenance names the same inputs
(by tensor hash), weights and settings is left alone unless `force`.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from lorakiln.core.errors import KilnError
from lorakiln.core.progress import NullProgress, Progress
from lorakiln.formats.lora_file import (
    HASH_KEYS,
    autov2,
    describe_nonfinite,
    nonfinite,
    edit_metadata,
    read_lora,
    sshs_hashes,
    read_metadata,
    tensor_hash,
    write_lora,
)
from lorakiln.formats.lora_model import parse_lora
from lorakiln.formats.safetensors_io import DTYPES as ST_DTYPES
from lorakiln.formats.safetensors_io import TensorReader, read_header, write_streaming
from lorakiln.merge.arch import check_same_arch, detect_arch
from lorakiln.merge.bake import bake_bias, bake_tensor, plan_bake
from lorakiln.merge.checkpoint_keys import checkpoint_targets
from lorakiln.merge.compat import loader_report, loaders_line
from lorakiln.merge.combine import RankPolicy, merge_svd
from lorakiln.merge.concat import merge_concat
from lorakiln.merge.extract import Extraction, extract_module, finish, wanted
from lorakiln.merge.files import (
    checkpoint_lookup,
    check_weight,
    checkpoint_record,
    dtype_name,
    float_dtype,
    input_record,
    load_source,
)
from lorakiln.merge.info import describe
from lorakiln.merge.metadata import (
    PROVENANCE_KEY,
    arch_keys,
    default_resolution,
    lora_metadata,
    merge_comment,
    merged_inherit,
    modelspec_date,
    provenance_value,
    same_job,
)
from lorakiln.merge.report import OpReport
from lorakiln.merge.resize import resize_comment, resize_model


def _policy_record(policy: RankPolicy) -> dict[str, Any]:
    return {"rank": policy.rank, "conv_rank": policy.conv_rank, "dynamic": policy.method,
            "dynamic_param": policy.param, "alpha_ratio": policy.alpha_ratio, "clamp": policy.clamp}


def _up_to_date(out: Path, provenance: dict, force: bool) -> bool:
    if force or not out.is_file():
        return False
    try:
        return same_job(read_metadata(out), provenance)
    except KilnError:
        return False  # an unreadable old output is simply redone


def _refuse_overwrite(out: Path, inputs: list[Path]) -> None:
    if Path(out).is_dir():
        raise KilnError(f"{out}: is a folder, not a file; give the output a file name")
    for p in inputs:
        if Path(p).resolve() == Path(out).resolve():
            raise KilnError(f"{out}: the output would overwrite an input; choose another -o")


def _check_weights(inputs: list[tuple[Path, float]]) -> None:
    for p, w in inputs:
        check_weight(f"{p}:{w}", float(w))


def dims(tensors: dict[str, torch.Tensor]) -> tuple[int, float, int | None, float | None]:
    """(dim, alpha, conv_dim, conv_alpha): the most common rank/alpha of linear and of k×k modules."""
    lin, conv = Counter(), Counter()
    for key, down in tensors.items():
        if not key.endswith(".lora_down.weight"):
            continue
        name = key[: -len(".lora_down.weight")]
        alpha = float(tensors[f"{name}.alpha"].float()) if f"{name}.alpha" in tensors else float(down.shape[0])
        is_kxk = down.dim() == 4 and down.shape[2] * down.shape[3] > 1
        (conv if is_kxk else lin)[(int(down.shape[0]), alpha)] += 1
    d, a = lin.most_common(1)[0][0] if lin else (conv.most_common(1)[0][0] if conv else (0, 0.0))
    cd, ca = conv.most_common(1)[0][0] if conv else (None, None)
    return d, a, cd, ca


def _ignored_notes(sources) -> list[str]:
    return [f"{s.name}: {len(s.model.ignored)} key(s) of unsupported kinds were left out "
            f"(e.g. {s.model.ignored[0]})" for s in sources if s.model.ignored]


def merge(inputs: list[tuple[Path, float]], out: Path, *, policy: RankPolicy = RankPolicy(), concat: bool = False,
          alpha: float | None = None, base: Path | None = None, dtype: torch.dtype | None = None,
          force: bool = False, progress: Progress | None = None) -> OpReport:
    """Merge LoRAs: the exact weighted sum of their deltas, refactored by SVD or concatenated."""
    if not inputs:
        raise KilnError("merge needs at least one input LoRA")
    out = Path(out)
    _check_weights(inputs)
    if concat and policy != RankPolicy():
        raise KilnError("--concat keeps every rank exactly: --rank, --conv-rank, --dynamic and --clamp-quantile "
                        "do not apply; leave them out, or leave out --concat to refactor by SVD")
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise KilnError(f"--alpha {alpha:g}: alpha must be a finite number above 0")
    _refuse_overwrite(out, [p for p, _ in inputs])
    sources = [load_source(Path(p), w) for p, w in inputs]
    arch = check_same_arch([(s.name, s.model, s.metadata) for s in sources])
    if alpha is not None and not concat:
        if policy.rank is None:
            raise KilnError("--alpha needs --rank (alpha is relative to the rank written)")
        policy = RankPolicy(**{**policy.__dict__, "alpha_ratio": alpha / policy.rank})
    dt = dtype or float_dtype(sources[0])
    prov = {"operation": "merge", "method": "concat" if concat else "svd", "dtype": dtype_name(dt),
            "inputs": [input_record(Path(p), w) for p, w in inputs], "alpha": alpha,
            **({} if concat else _policy_record(policy)),
            "base": checkpoint_record(base) if base else None}
    report = OpReport("merge", str(out), notes=_ignored_notes(sources), extra={"arch": arch, "method": prov["method"]})
    if _up_to_date(out, prov, force):
        report.skipped = True
        return report
    progress = progress or NullProgress()
    names = {n for s in sources for n in s.model.modules}
    with progress.task(f"merge -> {out.name}", total=len(names)) as task:
        advance = lambda r: task.advance(1, err=r.error)  # noqa: E731
        if concat:
            tensors, report.modules = merge_concat(sources, dt, alpha, on_module=advance)
        else:
            lookup = checkpoint_lookup(Path(base)) if base else None
            tensors, report.modules = merge_svd(sources, policy, dt, lookup, on_module=advance)
    check_output(out, tensors, dt)
    d, a, cd, ca = dims(tensors)
    dynamic = policy.method is not None and not concat
    inherit, notes = merged_inherit([(s.name, s.metadata) for s in sources if s.weight != 0])
    report.notes += notes
    comment = merge_comment([(s.name, s.weight) for s in sources], _how(policy, concat, report))
    meta = lora_metadata(arch=arch, title=out.stem, dim="Dynamic" if dynamic else d, alpha="Dynamic" if dynamic else a,
                         conv_dim=cd, conv_alpha=ca, comment=comment,
                         provenance=prov, merged_from=[s.name for s in sources], inherit=inherit)
    write_lora(out, tensors, meta)
    return report


def _how(policy: RankPolicy, concat: bool, report: OpReport) -> str:
    """The true account of what a merge did, for its ss_training_comment."""
    if concat:
        return "ranks concatenated (no approximation)"
    ranks = [m.rank for m in report.modules if m.rank is not None]
    span = f"ranks {min(ranks)}-{max(ranks)}" if ranks and min(ranks) != max(ranks) else f"rank {ranks[0] if ranks else 0}"
    if policy.method:
        cap = f", capped at {policy.rank}" if policy.rank else ""
        return f"refactored by SVD with rank per module by {policy.method} {policy.param:g}{cap} ({span})"
    caps = [c for c in (policy.rank, policy.conv_rank) if c]
    if caps and ranks and max(ranks) < min(caps):
        return f"refactored by SVD keeping every direction, exact ({span}; no module is as wide as the rank asked)"
    if policy.rank:
        return f"refactored by SVD to rank {policy.rank} ({span})"
    return f"refactored by SVD keeping every direction, exact ({span})"


def check_output(out: Path, tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> None:
    """Refuse to write a result holding NaN/Inf (e.g. values beyond fp16's range)."""
    bad = nonfinite(tensors)
    if bad:
        raise KilnError(f"{out}: not written: in {dtype_name(dtype)} the result's {describe_nonfinite(bad)}; "
                        "use --dtype bf16 or fp32")


def resize(path: Path, out: Path, policy: RankPolicy, *, dtype: torch.dtype | None = None,
           base: Path | None = None, force: bool = False, progress: Progress | None = None) -> OpReport:
    """Change a LoRA's rank, keeping its strength; per-module retained energy reported."""
    path, out = Path(path), Path(out)
    _refuse_overwrite(out, [path])
    src = load_source(path)
    dt = dtype or float_dtype(src)
    prov = {"operation": "resize", "input": input_record(path), "dtype": dtype_name(dt), **_policy_record(policy),
            "base": checkpoint_record(base) if base else None}
    arch = detect_arch(src.model, src.metadata)
    report = OpReport("resize", str(out), notes=_ignored_notes([src]), extra={"arch": arch})
    if _up_to_date(out, prov, force):
        report.skipped = True
        return report
    progress = progress or NullProgress()
    lookup = checkpoint_lookup(Path(base)) if base else None
    with progress.task(f"resize -> {out.name}", total=len(src.model.modules)) as task:
        tensors, report.modules = resize_model(src.model, policy, dt, src.name, lookup,
                                               on_module=lambda r: task.advance(1, kept=r.retained))
    check_output(out, tensors, dt)
    d, a, cd, ca = dims(tensors)
    old_dim = src.metadata.get("ss_network_dim") or str(max((m.rank or 0) for m in src.model.modules.values()))
    meta = {k: v for k, v in src.metadata.items() if k not in HASH_KEYS and k != PROVENANCE_KEY}
    meta.update({k: v for k, v in arch_keys(arch, src.metadata).items() if k not in meta})
    dynamic = policy.method is not None
    fresh = lora_metadata(arch=arch, title=meta.get("modelspec.title") or out.stem,
                          dim="Dynamic" if dynamic else d, alpha="Dynamic" if dynamic else a,
                          conv_dim=cd, conv_alpha=ca,
                          comment=resize_comment(old_dim, policy, src.metadata.get("ss_training_comment", ""),
                                                 [m.rank for m in report.modules if m.rank is not None]),
                          provenance=prov)
    for key in ("ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_network_args",
                "ss_training_comment", PROVENANCE_KEY):
        meta[key] = fresh[key]
    meta.setdefault("ss_output_name", out.stem)
    meta.setdefault("modelspec.title", meta["ss_output_name"])
    meta.setdefault("modelspec.sai_model_spec", "1.0.1")
    meta["modelspec.date"] = fresh["modelspec.date"]  # this file's date, not the input's
    write_lora(out, tensors, meta)
    return report


def extract(tuned: Path, base: Path, out: Path, policy: RankPolicy, *, min_diff: float = 0.01,
            dtype: torch.dtype = torch.float16, force: bool = False, progress: Progress | None = None) -> OpReport:
    """A LoRA from tuned − base, per kohya's targets and naming."""
    tuned, base, out = Path(tuned), Path(base), Path(out)
    if not (math.isfinite(min_diff) and min_diff >= 0):
        raise KilnError(f"--min-diff {min_diff:g}: must be a finite number of at least 0")
    _refuse_overwrite(out, [tuned, base])
    th, bh = read_header(tuned), read_header(base)
    arch, targets = checkpoint_targets(bh)
    tuned_arch, _ = checkpoint_targets(th)
    if tuned_arch != arch:
        raise KilnError(f"{tuned.name} is {tuned_arch} but {base.name} is {arch}; extract needs two checkpoints of one model")
    chosen = [t for t in targets.values() if wanted(t, policy)]
    for t in chosen:
        info = th.tensors.get(t.key)
        if info is None or tuple(info.shape) != tuple(bh.tensors[t.key].shape):
            raise KilnError(f"{tuned.name}: weight {t.key} is missing or has another shape than in {base.name}")
    prov = {"operation": "extract", "tuned": checkpoint_record(tuned), "base": checkpoint_record(base),
            "min_diff": min_diff, "dtype": dtype_name(dtype), **_policy_record(policy)}
    report = OpReport("extract", str(out), extra={"arch": arch})
    if _up_to_date(out, prov, force):
        report.skipped = True
        return report
    ex = Extraction()
    with TensorReader(tuned, th) as ft, TensorReader(base, bh) as fb, \
            (progress or NullProgress()).task(f"extract -> {out.name}", total=len(chosen)) as task:
        for t in sorted(chosen, key=lambda t: t.key):
            a, b = ft.get(t.key), fb.get(t.key)
            for path, w in ((tuned, a), (base, b)):
                if w.is_floating_point() and not bool(torch.isfinite(w).all()):
                    raise KilnError(f"{path}: weight {t.key} holds {int((~torch.isfinite(w)).sum())} NaN/Inf "
                                    "values; the checkpoint is broken and cannot be extracted from")
            extract_module(ex, t, a[t.rows] if t.rows else a, b[t.rows] if t.rows else b, policy, dtype)
            task.advance(1)
    tensors, report.modules, te_kept = finish(ex, min_diff)
    if not tensors:
        raise KilnError(f"{tuned.name} and {base.name} do not differ in any LoRA-able weight; nothing to extract")
    if not te_kept:
        report.notes.append(f"text encoder unchanged (max |Δ| {ex.te_max_diff:.3g} <= min_diff {min_diff:g}): "
                            "extracted the U-Net only")
    if ex.unchanged:
        report.notes.append(f"{ex.unchanged} weight(s) identical in both checkpoints: left out")
    check_output(out, tensors, dtype)
    d, a, cd, ca = dims(tensors)
    meta = lora_metadata(arch=arch, title=out.stem, dim=d, alpha=a, conv_dim=cd, conv_alpha=ca,
                         comment=f"extracted by lorakiln from {tuned.name} - {base.name}", provenance=prov)
    meta["ss_sd_model_name"] = base.name
    resolution = th.metadata.get("modelspec.resolution") or default_resolution(arch)
    if resolution:  # the tuned checkpoint's own word, else its architecture's native size (as kohya)
        meta["modelspec.resolution"] = resolution
    write_lora(out, tensors, meta)
    return report


def bake(base: Path, inputs: list[tuple[Path, float]], out: Path, *, force: bool = False,
         progress: Progress | None = None) -> OpReport:
    """A single-file checkpoint with the LoRAs merged in, streamed tensor by tensor."""
    base, out = Path(base), Path(out)
    _check_weights(inputs)
    _refuse_overwrite(out, [base, *[p for p, _ in inputs]])
    header = read_header(base)
    arch, targets = checkpoint_targets(header)
    sources = [load_source(Path(p), w) for p, w in inputs]
    for s in sources:
        a = detect_arch(s.model, s.metadata)
        if a not in (arch, "unknown"):
            raise KilnError(f"{s.name} is a LoRA for {a}, but {base.name} is an {arch} checkpoint")
    plan = plan_bake(targets, sources)
    prov = {"operation": "bake", "base": checkpoint_record(base), "inputs": [input_record(Path(p), w) for p, w in inputs]}
    report = OpReport("bake", str(out), notes=_ignored_notes(sources),
                      extra={"arch": arch, "weights_changed": len(plan.weights), "modules_applied": plan.applied,
                             "modules_unmatched": len(plan.unmatched)})
    report.notes += [f"no target in the checkpoint: {u}" for u in plan.unmatched[:20]]
    if _up_to_date(out, prov, force):
        report.skipped = True
        return report
    order = sorted(header.tensors, key=lambda k: header.tensors[k].start)
    specs = [(k, ST_DTYPES[header.tensors[k].dtype], header.tensors[k].shape) for k in order]
    meta = {k: v for k, v in header.metadata.items() if k not in HASH_KEYS}  # the base's hashes are not ours
    meta.update({PROVENANCE_KEY: provenance_value(prov), "modelspec.title": out.stem, "modelspec.date": modelspec_date()})
    with TensorReader(base, header) as fh, \
            (progress or NullProgress()).task(f"bake -> {out.name}", total=len(order)) as task:
        def tensors():
            for k in order:
                t = fh.get(k)
                if k in plan.weights:
                    t = _finite(out, k, bake_tensor(t, plan.weights[k]))
                elif k in plan.biases:
                    t = _finite(out, k, bake_bias(t, plan.biases[k]))
                task.advance(1)
                yield t

        write_streaming(out, specs, tensors(), meta)
    return report


def _finite(out: Path, key: str, t: torch.Tensor) -> torch.Tensor:
    if not bool(torch.isfinite(t).all()):
        raise KilnError(f"{out}: not written: baked weight {key} holds NaN/Inf in the checkpoint's dtype "
                        "(the LoRA weights are too large for it?)")
    return t


def info(path: Path, top: int = 20) -> dict[str, Any]:
    """`kiln info`: the file described, with its hashes (AutoV3 12-hex as A1111 shows it, AutoV2)."""
    path = Path(path)
    tensors, meta = read_lora(path)
    model = parse_lora(tensors, path.name)
    desc = describe(model, meta, top)
    bad = nonfinite(tensors)
    desc["nonfinite"] = {"tensors": len(bad), "values": sum(bad.values()), "keys": dict(list(bad.items())[:20]),
                         "message": describe_nonfinite(bad) if bad else None}
    desc["loaders"] = loader_report(model) if not bad else {}
    desc["loaders_line"] = loaders_line(desc["loaders"]) if not bad else None
    v3 = tensor_hash(path)
    stored = meta.get("sshs_model_hash")
    desc["file"] = {"name": path.name, "bytes": path.stat().st_size}
    desc["hashes"] = {"autov3": v3[:12], "tensor_sha256": v3, "autov2": autov2(path),
                      "sshs_model_hash": stored, "sshs_legacy_hash": meta.get("sshs_legacy_hash"),
                      "sshs_matches_file": None if stored is None else stored in (v3, sshs_hashes(tensors, meta)[0])}
    return desc


def set_metadata(path: Path, updates: dict[str, str | None]) -> dict[str, str]:
    """Edit metadata in place without touching tensor bytes (AutoV3 stays, AutoV2 changes)."""
    return edit_metadata(Path(path), updates)
