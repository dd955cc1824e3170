"""Train the toy base's VAE on renders: reconstruction (MSE + L1) and a small KL term.

    python -m lorakiln.toyworld.base.train_vae --seed 0 --out runs/toy-base

Writes OUT/vae.pt (diffusers state dict + config + latent scaling factor) every few minutes and
at the end, and prints the loss and the held-out reconstruction error (PSNR, mean abs error).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from lorakiln.toyworld.base import arch, data

EVAL_SEED = 1_000_000


def reconstruction(vae, images, batch: int = 64) -> dict[str, float]:
    """Mean abs error (0-255 scale) and PSNR of mode() reconstructions, and the latents' std."""
    errs, sq, zs = [], [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = data.to_pixels(images[i:i + batch])
            z = vae.encode(x).latent_dist.mode()
            y = vae.decode(z).sample.clamp(-1, 1)
            diff = (y - x) * 127.5
            errs.append(diff.abs().mean().item())
            sq.append(diff.pow(2).mean().item())
            zs.append(z)
    mse = sum(sq) / len(sq)
    return {"mae": sum(errs) / len(errs), "psnr": 10 * math.log10(255 ** 2 / max(mse, 1e-9)),
            "latent_std": torch.cat(zs).std().item(), "latent_mean": torch.cat(zs).mean().item()}


def save(vae, out: Path, stats: dict, step: int) -> None:
    state = {"state_dict": vae.state_dict(), "config": dict(vae.config), "step": step, "stats": stats}
    tmp = out / "vae.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(out / "vae.pt")


def train(args) -> dict:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    images, _ = data.render(args.images, args.seed)
    held, _ = data.render(512, EVAL_SEED)
    print(f"rendered {len(images)} + {len(held)} pictures in {time.time() - t0:.0f} s", flush=True)
    vae = arch.build_vae(args.seed)
    opt = torch.optim.AdamW(vae.parameters(), lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(args.seed)
    last_save, log, t0 = time.time(), [], time.time()
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(images), (args.batch,), generator=gen).numpy()
        x = data.to_pixels(images[idx])
        dist = vae.encode(x).latent_dist
        y = vae.decode(dist.sample(gen)).sample
        rec = (y - x).pow(2).mean() + 0.5 * (y - x).abs().mean()
        kl = dist.kl().mean() / dist.mean[0].numel()
        loss = rec + args.kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        log.append(rec.item())
        if step % 50 == 0:
            print(f"step {step} rec {sum(log[-50:]) / 50:.5f} kl {kl.item():.2f} {time.time() - t0:.0f}s", flush=True)
        if time.time() - last_save > args.save_every or step == args.steps:
            vae.eval()
            stats = reconstruction(vae, held)
            vae.train()
            save(vae, out, stats, step)
            last_save = time.time()
            print(f"saved at step {step}: {json.dumps(stats)}", flush=True)
    stats["seconds"] = round(time.time() - t0)
    stats["steps"] = args.steps
    (out / "vae.json").write_text(json.dumps(stats, indent=1))
    return stats


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/toy-base")
    p.add_argument("--images", type=int, default=20000)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=24)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--kl", type=float, default=1e-4, help="weight of the per-element KL term")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--save-every", type=float, default=180.0, help="seconds between checkpoints")
    print(json.dumps(train(p.parse_args(argv))))


if __name__ == "__main__":
    main()
