"""kiln lora convert: read a LoRA, rewrite the modules the target loader would apply wrongly
(merge/convert.py), write it with honest metadata, and check the written file with the
target's own rules before reporting."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lorakiln.core.errors import KilnError
from lorakiln.core.progress import NullProgress, Progress
from lorakiln.formats.loaders import LOADERS, TARGETS
from lorakiln.formats.lora_file import HASH_KEYS, read_lora, write_lora
from lorakiln.formats.lora_model import parse_lora
from lorakiln.formats.meta_json import decode_dict
from lorakiln.merge.arch import detect_arch
from lorakiln.merge.combine import check_rank
from lorakiln.merge.compat import loader_report
from lorakiln.merge.convert import LOST_BIAS, convert_model, overall_error
from lorakiln.merge.files import checkpoint_lookup, checkpoint_record, dtype_name, float_dtype, input_record, load_source
from lorakiln.merge.metadata import PROVENANCE_KEY, arch_keys, modelspec_date, provenance_value
from lorakiln.merge.report import OpReport
from lorakiln.services.merge import _refuse_overwrite, _up_to_date, check_output, dims

_LYCORIS_ARGS = ("algo", "dora_wd", "wd_on_output", "factor", "decompose_both", "use_tucker", "use_cp",
                 "full_matrix", "unbalanced_factorization")


def convert(path: Path, out: Path, target: str, *, rank: int | None = None, base: Path | None = None,
            dtype: torch.dtype | None = None, force: bool = False, progress: Progress | None = None) -> OpReport:
    """Write `out`: `path` rewritten so that `target`'s loader(s) apply it exactly."""
    path, out = Path(path), Path(out)
    if target not in TARGETS:
        raise KilnError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")
    check_rank(rank)
    _refuse_overwrite(out, [path] + ([Path(base)] if base else []))
    src = load_source(path)
    dt = dtype or float_dtype(src)
    prov = {"operation": "convert", "target": target, "input": input_record(path), "rank": rank,
            "dtype": dtype_name(dt), "base": checkpoint_record(base) if base else None}
    arch = detect_arch(src.model, src.metadata)
    report = OpReport("convert", str(out), extra={"arch": arch, "target": target})
    if src.model.ignored:
        report.notes.append(f"{len(src.model.ignored)} key(s) of unsupported kinds were left out "
                            f"(e.g. {src.model.ignored[0]}); loaders ignore them too")
    if _up_to_date(out, prov, force):
        report.skipped = True
        return report
    lookup = checkpoint_lookup(Path(base)) if base else None
    with (progress or NullProgress()).task(f"convert -> {out.name}", total=len(src.model.modules)) as task:
        tensors, report.modules = convert_model(src.model, target, rank=rank, dtype=dt, source=src.name, base=lookup,
                                                on_module=lambda r: task.advance(1, err=r.error))
    check_output(out, tensors, dt)
    rewritten = [m for m in report.modules if m.note != "kept"]
    report.extra.update({"modules_rewritten": len(rewritten), "modules_kept": len(report.modules) - len(rewritten),
                         "error_overall": overall_error(rewritten) or 0.0})
    lost = [m.name for m in rewritten if LOST_BIAS in m.note]
    if lost:
        report.notes.append(f"{len(lost)} full module(s) also change a bias (diff_b), which a LoRA cannot carry; "
                            f"left out (e.g. {lost[0]})")
    cut = [m for m in rewritten if m.error and m.error > 1e-3]
    if cut and rank is None:
        report.notes.append(f"{len(cut)} module(s) change the weight at a rank above what fits in a LoRA smaller than "
                            f"the weight itself and were cut there (error up to {max(m.error for m in cut):.2g}); "
                            "--rank N sets the rank (the full width is exact)")
    write_lora(out, tensors, _metadata(src.metadata, tensors, arch, target, len(rewritten), len(report.modules), prov))
    report.extra["verified"] = _verify(out, target, lookup, report)
    return report


def _metadata(source: dict[str, str], tensors: dict[str, torch.Tensor], arch: str, target: str,
              rewritten: int, total: int, prov: dict) -> dict[str, str]:
    """The input's metadata (it describes the same training), with the network keys, comment,
    date and provenance of this file."""
    meta = {k: v for k, v in source.items() if k not in HASH_KEYS and k != PROVENANCE_KEY}
    meta.update({k: v for k, v in arch_keys(arch, source).items() if k not in meta})
    model = parse_lora(tensors, "converted")
    if model.algos() <= {"lora"} and not model.has_dora():
        d, a, cd, ca = dims(tensors)
        args = {k: v for k, v in decode_dict(meta.get("ss_network_args")).items()
                if k not in _LYCORIS_ARGS and k not in ("conv_dim", "conv_alpha")}
        if cd:
            args.update({"conv_dim": str(cd), "conv_alpha": str(ca)})
        meta.update({"ss_network_module": "networks.lora", "ss_network_dim": str(d), "ss_network_alpha": str(a),
                     "ss_network_args": json.dumps(args)})
    label = " / ".join(LOADERS.get(n).label for n in TARGETS[target])
    note = f"[converted by lorakiln for {label}: {rewritten} of {total} modules rewritten as plain LoRA]"
    meta["ss_training_comment"] = f"{meta.get('ss_training_comment', '')} {note}".strip()
    meta.setdefault("ss_output_name", Path(prov["input"]["file"]).stem)
    meta.setdefault("modelspec.title", meta["ss_output_name"])
    meta.setdefault("modelspec.sai_model_spec", "1.0.1")
    meta["modelspec.date"] = modelspec_date()
    meta[PROVENANCE_KEY] = provenance_value(prov)
    return meta


def _verify(out: Path, target: str, lookup, report: OpReport) -> bool:
    """Read the written file back and judge it with the target loaders' rules."""
    tensors, _ = read_lora(out)
    verdict = loader_report(parse_lora(tensors, out.name), lookup, TARGETS[target])
    ok = all(v["exact"] for v in verdict.values())
    if not ok:
        for v in verdict.values():
            for reason, n in v["reasons"].items():
                report.notes.append(f"{v['label']} still applies {n} module(s) differently: {reason}")
    return ok
