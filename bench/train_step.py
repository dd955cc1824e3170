"""Benchmark: one LoRA training step, with and without latent caching and gradient checkpointing.

CPU part: the full-size SD1.5 architecture (random weights from the bundled config), 512x512,
batch 1, LoRA dim 16 on the U-Net and the text encoder, AdamW, fp32. Four variants, each in
its own process so peak memory is its own:

    plain        image decoded and VAE-encoded every step, no checkpointing  (the baseline)
    cache        latents cached before the steps (what cache_latents does)
    gc           gradient checkpointing
    cache+gc     both

It prints s/step (median of the timed steps after one warm-up step), peak RSS growth during the
steps, and each variant's ratio to `plain`, side by side. The step is lorakiln's own: the loop's
assemble() + diffusion_step_loss() + backward + clip + optimizer step.

GPU part (when CUDA is available, or with --gpu): full-size SDXL at 1024x1024 in bf16, LoRA dim 16 on
the U-Net, latents cached, with and without checkpointing: images/s, peak GPU memory, and the
fraction of the GPU's dense bf16 peak (model FLOP utilisation) taking an SDXL LoRA step as
14.2 TFLOP per image forward + backward, 21.0 with checkpointing (reference/trainers.md §7.1).

    .venv/bin/python bench/train_step.py [--steps 2] [--variants plain,cache,gc,cache+gc]
    .venv/bin/python bench/train_step.py --gpu [--batch 4] [--peak-tflops 989.4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import torch

SDXL_TFLOP = {False: 14.2, True: 21.0}  # per image, forward + backward, LoRA regime (trainers.md §7.1)
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0, "4090": 165.2, "L40S": 362.0}


class PeakRSS:
    """Peak resident memory during a block, from the kernel's high-water mark (VmHWM), reset at entry.

    No sampling thread: a thread polling memory next to PyTorch's OpenMP workers on a small CPU
    makes steps erratically slow (measured: 0.1 s steps became 8 s).
    """

    def __init__(self):
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss

    @staticmethod
    def _hwm() -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def __enter__(self):
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current RSS
        except OSError:
            pass
        self.start = self.proc.memory_info().rss
        return self

    def __exit__(self, *exc):
        hwm = self._hwm()
        self.peak = hwm if hwm is not None else max(self.start, self.proc.memory_info().rss)


def _dataset(folder: Path, size: int):
    """One real picture on disk, scanned and bucketed as training sees it."""
    from lorakiln.config.train import BucketConfig, SubsetOptions
    from lorakiln.demo.images import Spec, make_image
    from lorakiln.train.data import DatasetSpec, SubsetSpec, scan_dataset

    sub = folder / "1_bench"
    sub.mkdir(parents=True)
    make_image(Spec(seed=1, width=size, height=size)).save(sub / "a.png")
    (sub / "a.txt").write_text("kilnchan, 1girl, solo, long_hair, purple_eyes, coat, white_background")
    opts = SubsetOptions(shuffle_caption=False, keep_tokens=1)
    scanned = scan_dataset(DatasetSpec([SubsetSpec("1_bench", sub, 1, opts)], BucketConfig(), 1))
    for it in scanned.items:
        it.bucket = (size, size)
    return scanned


def _setup(family_name: str, size: int, *, cache: bool, gc: bool, dtype, device, te: bool, folder: Path):
    from lorakiln.config.train import LossConfig
    from lorakiln.train.batches import Augment, Batch, Ref, load_item
    from lorakiln.train.families import FAMILIES
    from lorakiln.train.latent_cache import LatentCache
    from lorakiln.train.losses import NoiseSchedule
    from lorakiln.train.network import NetworkSpec, create_network
    from lorakiln.train.step import StepSetup, cache_key, encode_pixels

    family = FAMILIES.get(family_name)
    comps = family.build_random(0, dtype)
    for m in (comps.unet, comps.vae, *comps.text_encoders):
        m.to(device)
    comps.vae.to(torch.float32)
    if gc:
        comps.unet.enable_gradient_checkpointing()
        comps.unet.train()
    net = create_network(family, comps, NetworkSpec(dim=16, alpha=8, text_encoder=te), seed=0)
    net.apply_to()
    groups = net.param_groups(1e-4, 5e-5 if te else 0.0, 1e-4)
    opt = torch.optim.AdamW(groups, lr=1e-4)
    scanned = _dataset(folder, size)
    setup = StepSetup(family, comps, [scanned], torch.device(device), 0, train_text_encoder=te)
    if cache:
        setup.latent_cache = LatentCache("bench")
        it = scanned.items[0]
        setup.latent_cache.fill([(cache_key(it, it.bucket, False, "auto"),
                                  lambda: load_item(it, it.bucket, Augment()).pixels)],
                                lambda px: encode_pixels(setup, px))
    noise = NoiseSchedule.from_betas(comps.noise_scheduler.betas, comps.prediction_type, False)
    batch = Batch(0, (size, size), (Ref(0, 0),))
    return setup, net, opt, noise, batch, LossConfig()


def _steps(setup, net, opt, noise, batch, loss_cfg, n: int, batch_size: int, autocast) -> list[float]:
    from lorakiln.train.batches import Batch
    from lorakiln.train.step import assemble, diffusion_step_loss

    batch = Batch(batch.dataset, batch.bucket, batch.refs * batch_size)
    params = net.trainable_parameters()
    times, cpu = [], []
    for i in range(n + 1):  # the first step warms up and is not timed
        if setup.device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        inputs = assemble(setup, batch, 1, i)
        gen = torch.Generator().manual_seed(i)
        loss = diffusion_step_loss(setup, inputs, noise, loss_cfg, gen, autocast)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if setup.device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return times, cpu


def run_variant(variant: str, steps: int, threads: int | None, family: str = "sd15", size: int = 512) -> dict:
    """One CPU variant in this process (called in a child process by main)."""
    if threads:
        torch.set_num_threads(threads)
    cache, gc = "cache" in variant, "gc" in variant
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        parts = _setup(family, size, cache=cache, gc=gc, dtype=torch.float32, device="cpu", te=True, folder=Path(tmp))
        setup_s = time.perf_counter() - t0
        with PeakRSS() as mem:
            times, cpu = _steps(*parts, n=steps, batch_size=1, autocast=None)
    return {"variant": variant, "s_per_step": statistics.median(times), "times": times,
            "cpu_s_per_step": statistics.median(cpu),
            "peak_rss_growth_gb": (mem.peak - mem.start) / 2**30, "rss_gb": mem.peak / 2**30, "setup_s": setup_s}


def cpu_bench(variants: list[str], steps: int, threads: int | None, family: str = "sd15", size: int = 512) -> None:
    what = "SD1.5 full size" if family == "sd15" else family
    print(f"{what}, random weights, {size}x{size}, batch 1, LoRA dim 16 (U-Net + TE), AdamW, fp32, CPU "
          f"({torch.get_num_threads() if not threads else threads} threads), {steps} timed steps after 1 warm-up")
    results = []
    for v in variants:
        cmd = [sys.executable, __file__, "--child", v, "--steps", str(steps), "--family", family,
               "--resolution", str(size)]
        if threads:
            cmd += ["--threads", str(threads)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            print(f"{v}: failed\n{res.stderr[-2000:]}")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"  {v:9s} done: {r['s_per_step']:.2f} s/step (steps {', '.join(f'{t:.2f}' for t in r['times'])}), "
              f"setup {r['setup_s']:.0f}s", flush=True)
    base = next((r for r in results if r["variant"] == "plain"), None)
    ratio = lambda r, k: r.get(k, float("nan")) / base.get(k, float("nan")) if base and base.get(k) else float("nan")  # noqa: E731
    print(f"\n{'variant':10s} {'s/step':>8s} {'x plain':>8s} {'CPU s/step':>11s} {'x plain':>8s} "
          f"{'peak RSS +GB':>13s} {'x plain':>8s} {'RSS GB':>7s}")
    for r in results:
        print(f"{r['variant']:10s} {r['s_per_step']:8.2f} {ratio(r, 's_per_step'):8.2f} "
              f"{r.get('cpu_s_per_step', float('nan')):11.2f} {ratio(r, 'cpu_s_per_step'):8.2f} "
              f"{r['peak_rss_growth_gb']:13.2f} {ratio(r, 'peak_rss_growth_gb'):8.2f} {r['rss_gb']:7.1f}")
    print("s/step is wall time; CPU s/step is this process's CPU time (all threads), steadier on a shared machine")


def _gpu_peak(override: float | None) -> tuple[float, str]:
    name = torch.cuda.get_device_name()
    if override:
        return override, name
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key in name and (key != "H100" or "PCIe" not in name):
            return PEAK_BF16_TFLOPS[key], name
    return float("nan"), name


def gpu_bench(steps: int, batch: int, peak_override: float | None) -> None:
    peak, name = _gpu_peak(peak_override)
    print(f"SDXL full size, random weights, 1024x1024, batch {batch}, LoRA dim 16 (U-Net), AdamW, bf16 autocast, "
          f"latents cached, on {name} (dense bf16 peak {peak} TFLOPS)")
    print(f"{'variant':10s} {'s/step':>8s} {'images/s':>9s} {'peak GB':>8s} {'TFLOPS':>8s} {'MFU':>6s}")
    for gc in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            parts = _setup("sdxl", 1024, cache=True, gc=gc, dtype=torch.bfloat16, device="cuda", te=False,
                           folder=Path(tmp))
            for p in parts[1].parameters():
                p.data = p.data.float()
            torch.cuda.reset_peak_memory_stats()
            times, _ = _steps(*parts, n=steps, batch_size=batch,
                              autocast=torch.autocast("cuda", dtype=torch.bfloat16))
            s = statistics.median(times)
            ips = batch / s
            tflops = ips * SDXL_TFLOP[gc]
            print(f"{'gc' if gc else 'plain':10s} {s:8.3f} {ips:9.2f} {torch.cuda.max_memory_allocated() / 2**30:8.1f} "
                  f"{tflops:8.1f} {tflops / peak:6.1%}")
            del parts
            torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2, help="timed steps per variant (after one warm-up step)")
    ap.add_argument("--variants", default="plain,cache,gc,cache+gc")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--gpu", action="store_true", help="run the SDXL GPU part (default: when CUDA is available)")
    ap.add_argument("--no-cpu", action="store_true", help="skip the CPU part")
    ap.add_argument("--batch", type=int, default=1, help="GPU batch size")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not known")
    ap.add_argument("--family", default="sd15", help="CPU part's family (tiny-sd15 for a quick smoke run)")
    ap.add_argument("--resolution", type=int, default=512, help="CPU part's resolution")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(run_variant(a.child, a.steps, a.threads, a.family, a.resolution)))
        return
    if not a.no_cpu:
        cpu_bench(a.variants.split(","), a.steps, a.threads, a.family, a.resolution)
    if a.gpu or torch.cuda.is_available():
        if not torch.cuda.is_available():
            print("no CUDA device: GPU part skipped")
        else:
            gpu_bench(a.steps, a.batch, a.peak_tflops)


if __name__ == "__main__":
    main()
