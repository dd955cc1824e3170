"""Benchmark: merging SDXL-shaped LoRAs — lorakiln's factored SVD vs the dense SVD kohya's
svd_merge_lora.py computes, and the error of kohya's plain (add-mode) merge; plus the peak
memory of baking into a checkpoint streamed tensor by tensor vs loaded whole.

1. Shapes: the full SDXL module list (U-Net with LoCon convs + both text encoders, 1052 modules)
   from the sdxl family built on the meta device. Two random LoRAs of --rank (alphas rank/2 and
   rank), weights 0.6 / 0.4. For --sample modules spread over the list (all with --sample 0),
   each method merges to rank --out-rank:
     - baseline "dense": Σ wᵢ ΔWᵢ as an out×in matrix, torch.linalg.svd + truncation, exactly the
       work of kohya's svd_merge_lora.py per module (timed: the SVD and truncation only);
     - lorakiln "factored": the same sum as stacked factors, QR + (2r×2r) SVD, factors, and the
       per-module error measurement lorakiln reports (timed: all of `combine.refactor`);
   single thread, no I/O; the ratio and the extrapolation to all modules are printed, and both
   results' error vs the exact sum.
   kohya's add-mode merge (ups and downs summed, ratio on both) is scored on the same modules.
2. Bake memory (unless --no-bake): a full-size SD1.5 checkpoint (real key names and shapes, random
   fp16 values, ~1.7 GB) and one rank-16 LoRA on every U-Net attention and text-encoder weight; peak RSS of `services.merge.bake` (streaming)
   vs load_file + patch + save_file (what a load-everything script does), each in a fresh
   subprocess.

    .venv/bin/python bench/merge.py [--rank 32] [--out-rank 32] [--sample 60] [--no-bake] [--no-merge]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lorakiln.formats.lora_model import parse_lora
from lorakiln.merge.combine import RankPolicy, refactor
from lorakiln.merge.delta import Source, weighted_delta, weighted_factors
from lorakiln.merge.svd import rel_error


def sdxl_shapes() -> dict[str, tuple[int, ...]]:
    from lorakiln.train.families import FAMILIES

    fam = FAMILIES.get("sdxl")
    comps = fam.build_empty("meta")
    return {n: tuple(m.weight.shape) for n, m in fam.lora_targets(comps, conv=True, text_encoder=True).items()}


def random_lora(shapes, rank, alpha, seed) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, (out_f, in_f, *k) in shapes.items():
        sd[f"{name}.lora_down.weight"] = torch.randn(rank, in_f, *k, generator=g) / math.sqrt(in_f)
        sd[f"{name}.lora_up.weight"] = torch.randn(out_f, rank, *([1] * len(k)), generator=g) * 0.01
        sd[f"{name}.alpha"] = torch.tensor(float(alpha))
    return sd


def kohya_svd(exact: torch.Tensor, rank: int, full: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """svd_merge_lora.py's step: dense SVD of the summed ΔW (kohya: full_matrices, the default),
    keep `rank`, up = U·S, down = Vh."""
    U, S, Vh = torch.linalg.svd(exact.reshape(exact.shape[0], -1), full_matrices=full)
    r = min(rank, len(S))
    return U[:, :r] @ torch.diag(S[:r]), Vh[:r]


def kohya_add(sources, name, shape) -> torch.Tensor:
    """merge_lora.py without --concat: scale = sqrt(alpha_i/alpha_0)·ratio; up·|scale|, down·scale, summed."""
    mods = [(s, s.model.modules[name]) for s in sources]
    a0 = mods[0][1].alpha
    up = sum(m.tensors["lora_up.weight"].flatten(1) * abs(math.sqrt(m.alpha / a0) * s.weight) for s, m in mods)
    down = sum(m.tensors["lora_down.weight"].flatten(1) * (math.sqrt(m.alpha / a0) * s.weight) for s, m in mods)
    return ((up @ down) * (a0 / mods[0][1].rank)).reshape(shape)


def bench_merge(args) -> None:
    torch.set_num_threads(1)
    shapes = sdxl_shapes()
    names = sorted(shapes)
    picked = names if args.sample <= 0 else names[:: max(1, len(names) // args.sample)][: args.sample]
    sub = {n: shapes[n] for n in picked}
    sources = [Source("a", parse_lora(random_lora(sub, args.rank, args.rank / 2, 1)), 0.6),
               Source("b", parse_lora(random_lora(sub, args.rank, args.rank, 2)), 0.4)]
    policy = RankPolicy(rank=args.out_rank)
    t_dense = t_thin = t_fact = 0.0
    e_dense, e_fact, e_kohya = [], [], []
    for name in picked:
        shape = shapes[name]
        exact = weighted_delta(name, sources, shape)
        t0 = time.perf_counter()
        up_d, down_d = kohya_svd(exact, args.out_rank)  # the baseline's work only: SVD + truncation
        t1 = time.perf_counter()
        kohya_svd(exact, args.out_rank, full=False)
        t2 = time.perf_counter()
        _, rep_f = refactor(name, None, weighted_factors(name, sources), shape, policy, torch.float32)
        t3 = time.perf_counter()  # lorakiln's includes its per-module error measurement
        t_dense, t_thin, t_fact = t_dense + (t1 - t0), t_thin + (t2 - t1), t_fact + (t3 - t2)
        e_dense.append(rel_error((up_d @ down_d).reshape(shape), exact))
        e_fact.append(rep_f.error)
        e_kohya.append(rel_error(kohya_add(sources, name, shape), exact))
    scale = len(names) / len(picked)
    print(f"SDXL LoRA modules: {len(names)}; measured {len(picked)}; inputs rank {args.rank}, output rank {args.out_rank}")
    print(f"  dense SVD (kohya svd_merge_lora): {t_dense:8.2f} s   -> all modules ~{t_dense * scale:8.1f} s")
    print(f"  dense thin SVD (full_matrices=False): {t_thin:4.2f} s   -> all modules ~{t_thin * scale:8.1f} s")
    print(f"  factored QR+SVD (lorakiln):       {t_fact:8.2f} s   -> all modules ~{t_fact * scale:8.1f} s")
    print(f"  speed-up: {t_dense / t_fact:.1f}x vs kohya's dense SVD, {t_thin / t_fact:.1f}x vs a thin dense SVD")
    print(f"  rel. error vs exact sum: dense max {max(e_dense):.2e}, factored max {max(e_fact):.2e}, "
          f"kohya add mode mean {sum(e_kohya) / len(e_kohya):.3f} max {max(e_kohya):.3f}")


_CHILD = """
import resource, sys, torch
from pathlib import Path
mode, base, lora, out = sys.argv[1:5]
if mode == "stream":
    from lorakiln.services.merge import bake
    bake(Path(base), [(Path(lora), 0.8)], Path(out), force=True)
else:
    from safetensors.torch import load_file, save_file
    from lorakiln.formats.safetensors_io import read_header
    from lorakiln.merge.checkpoint_keys import checkpoint_targets
    from lorakiln.merge.bake import bake_tensor, plan_bake
    from lorakiln.merge.files import load_source
    _, targets = checkpoint_targets(read_header(base))
    plan = plan_bake(targets, [load_source(Path(lora), 0.8)])
    sd = load_file(base)
    for k, patches in plan.weights.items():
        sd[k] = bake_tensor(sd[k], patches)
    save_file(sd, out)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def synthetic_checkpoint(path: Path) -> tuple[Path, dict]:
    """A full-size SD1.5 single file (real key names and shapes, random fp16 values, ~1.7 GB),
    written tensor by tensor."""
    from lorakiln.formats.keymap import UNetLayout
    from lorakiln.formats.safetensors_io import write_streaming
    from lorakiln.train.families import FAMILIES

    fam = FAMILIES.get("sd15")
    comps = fam.build_empty("meta")
    from lorakiln.formats.keymap import state_dict_to_ldm

    sd = state_dict_to_ldm("sd15", comps.unet.state_dict(), comps.vae.state_dict(),
                           [te.state_dict() for te in comps.text_encoders], UNetLayout.from_config(comps.unet.config))
    specs = [(k, torch.float16, tuple(v.shape)) for k, v in sd.items()]
    g = torch.Generator().manual_seed(0)
    write_streaming(path, specs, (torch.randn(s, generator=g).half() for _, _, s in specs), {})
    targets = fam.lora_targets(comps, conv=False, text_encoder=True)
    return path, {n: tuple(m.weight.shape) for n, m in targets.items()}


def bench_bake(args) -> None:
    from lorakiln.formats.lora_file import write_lora

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        base, shapes = synthetic_checkpoint(tmp / "base.safetensors")
        write_lora(tmp / "l.safetensors", random_lora(shapes, 16, 8, 3), {"ss_base_model_version": "sd_v1"})
        size = base.stat().st_size / 2**20
        print(f"\nbake: checkpoint {size:.0f} MiB fp16 (SD1.5 layout, written in {time.perf_counter() - t0:.0f} s), "
              f"LoRA on {len(shapes)} modules")
        for mode in ("stream", "load-all"):
            t = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", _CHILD, mode, str(base), str(tmp / "l.safetensors"),
                                  str(tmp / f"{mode}.safetensors")], capture_output=True, text=True, check=True)
            print(f"  {mode:9s} peak RSS {float(res.stdout.split()[-1]):7.0f} MiB   {time.perf_counter() - t:5.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--out-rank", type=int, default=32)
    ap.add_argument("--sample", type=int, default=60)
    ap.add_argument("--no-bake", action="store_true", help="Skip the bake memory measurement.")
    ap.add_argument("--no-merge", action="store_true", help="Skip the merge timing.")
    args = ap.parse_args()
    if not args.no_merge:
        bench_merge(args)
    if not args.no_bake:
        bench_bake(args)


if __name__ == "__main__":
    main()
