"""Train the toy base's text encoder and U-Net on cached latents of renders (SD1.5's recipe at toy size).

    python -m lorakiln.toyworld.base.train_unet --seed 0 --out runs/toy-base --steps 4000

Needs OUT/vae.pt from train_vae. Epsilon prediction with SD1.5's DDPM schedule, min-SNR-5
loss weights, captions from the posts' tags (data.caption: shuffled, tag dropout, 10 % empty for
CFG), an EMA of the weights. Every --save-every steps it writes OUT/state.pt (to resume with --resume)
and OUT/toy-sd15.safetensors (EMA weights, original SD layout) so a kill loses little.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
from pathlib import Path

import torch

from lorakiln.toyworld.base import arch, data
from lorakiln.train.families.loading import config_dir
from lorakiln.train.families.prompts import hidden_layer, token_windows


def load_vae(out: Path):
    from diffusers import AutoencoderKL

    saved = torch.load(out / "vae.pt", weights_only=False)
    cfg = {k: v for k, v in saved["config"].items() if not k.startswith("_")}
    vae = AutoencoderKL(**cfg)
    vae.load_state_dict(saved["state_dict"])
    return vae.eval().requires_grad_(False)


def cache_latents(vae, out: Path, n: int, seed: int, batch: int = 64) -> dict:
    """Mean and std of the VAE's latent distribution for n renders, and their tags (cached in OUT)."""
    path = out / f"latents-{seed}-{n}.pt"
    if path.is_file():
        return torch.load(path, weights_only=False)
    t0 = time.time()
    images, tags = data.render(n, seed)
    means, stds = [], []
    with torch.no_grad():
        for i in range(0, n, batch):
            dist = vae.encode(data.to_pixels(images[i:i + batch])).latent_dist
            means.append(dist.mean.half())
            stds.append(dist.std.half())
    cache = {"mean": torch.cat(means), "std": torch.cat(stds), "tags": [data.post_tags(t) for t in tags]}
    cache["scale"] = 1.0 / cache["mean"].float().std().item()
    torch.save(cache, path)
    print(f"encoded {n} renders in {time.time() - t0:.0f} s; latent scale {cache['scale']:.4f}", flush=True)
    return cache


def noise_scheduler():
    from diffusers import DDPMScheduler

    cfg = DDPMScheduler.load_config(str(config_dir("sd15") / "scheduler"))
    cfg.pop("_class_name", None)
    return DDPMScheduler.from_config(cfg, clip_sample=False, prediction_type="epsilon")


def caption_of(tags: list[str], rng: random.Random) -> str:
    from lorakiln.toyworld import PostTags

    return data.caption(PostTags(tuple(tags)), rng)


class Trainer:
    def __init__(self, args):
        from lorakiln.train.families.clip_tokenizer import load_clip_tokenizer

        self.args, self.out = args, Path(args.out)
        self.vae = load_vae(self.out)
        self.cache = cache_latents(self.vae, self.out, args.images, args.seed)
        self.vae.register_to_config(scaling_factor=round(self.cache["scale"], 5))
        self.unet, _, self.te = arch.build(args.seed)
        self.tok = load_clip_tokenizer("eos")
        self.sched = noise_scheduler()
        params = [*self.unet.parameters(), *self.te.parameters()]
        self.opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-2)
        self.ema = [copy.deepcopy(self.unet).requires_grad_(False), copy.deepcopy(self.te).requires_grad_(False)]
        self.step, self.log = 0, []
        self.gen = torch.Generator().manual_seed(args.seed)
        self.rng = random.Random(args.seed)
        snr = self.sched.alphas_cumprod / (1 - self.sched.alphas_cumprod)
        self.weight = snr.clamp(max=5.0) / snr  # min-SNR-5 weights for epsilon prediction

    def batch(self):
        n = len(self.cache["tags"])
        idx = torch.randint(0, n, (self.args.batch,), generator=self.gen)
        mean, std = self.cache["mean"][idx].float(), self.cache["std"][idx].float()
        z = (mean + std * torch.randn(mean.shape, generator=self.gen)) * self.vae.config.scaling_factor
        caps = [caption_of(self.cache["tags"][i], self.rng) for i in idx.tolist()]
        return z, caps

    def train_step(self) -> float:
        z, caps = self.batch()
        ids = token_windows(self.tok, caps, 75)[:, 0]
        states, _ = hidden_layer(self.te, ids, 1, final_norm=True)
        noise = torch.randn(z.shape, generator=self.gen)
        t = torch.randint(0, self.sched.config.num_train_timesteps, (z.shape[0],), generator=self.gen)
        noisy = self.sched.add_noise(z, noise, t)
        pred = self.unet(noisy, t, encoder_hidden_states=states).sample
        per = (pred - noise).pow(2).mean(dim=(1, 2, 3))
        loss = (per * self.weight[t]).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*self.unet.parameters(), *self.te.parameters()], 1.0)
        for g in self.opt.param_groups:
            g["lr"] = self.args.lr * min(1.0, (self.step + 1) / self.args.warmup)
        self.opt.step()
        self.step += 1
        decay = min(self.args.ema, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for live, avg in ((self.unet, self.ema[0]), (self.te, self.ema[1])):
                for p, q in zip(live.parameters(), avg.parameters()):
                    q.lerp_(p, 1 - decay)
        return per.mean().item()

    def save(self) -> None:
        state = {"unet": self.unet.state_dict(), "te": self.te.state_dict(), "ema_unet": self.ema[0].state_dict(),
                 "ema_te": self.ema[1].state_dict(), "opt": self.opt.state_dict(), "step": self.step,
                 "log": self.log, "gen": self.gen.get_state(), "rng": self.rng.getstate()}
        torch.save(state, self.out / "state.pt.tmp")
        (self.out / "state.pt.tmp").replace(self.out / "state.pt")
        meta = {"kiln.toyworld.seed": str(self.args.seed), "kiln.toyworld.steps": str(self.step),
                "kiln.toyworld.script": "python -m lorakiln.toyworld.base.train_unet"}
        arch.save_single_file(self.out / "toy-sd15.safetensors", self.ema[0], self.vae, self.ema[1], meta)

    def resume(self) -> None:
        s = torch.load(self.out / "state.pt", weights_only=False)
        self.unet.load_state_dict(s["unet"])
        self.te.load_state_dict(s["te"])
        self.ema[0].load_state_dict(s["ema_unet"])
        self.ema[1].load_state_dict(s["ema_te"])
        self.opt.load_state_dict(s["opt"])
        self.step, self.log = s["step"], s["log"]
        self.gen.set_state(s["gen"])
        self.rng.setstate(s["rng"])
        print(f"resumed at step {self.step}", flush=True)

    def run(self) -> None:
        a = self.args
        if a.resume and (self.out / "state.pt").is_file():
            self.resume()
        t0 = time.time()
        window = []
        while self.step < a.steps:
            window.append(self.train_step())
            if self.step % 50 == 0:
                self.log.append((self.step, round(sum(window) / len(window), 5)))
                window = []
                print(f"step {self.step} loss {self.log[-1][1]:.4f} {time.time() - t0:.0f}s", flush=True)
            if self.step % a.save_every == 0 or self.step == a.steps:
                self.save()
                print(f"saved at step {self.step}", flush=True)
        (self.out / "unet.json").write_text(json.dumps({"steps": self.step, "seconds": round(time.time() - t0),
                                                        "loss": self.log}, indent=1))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/toy-base")
    p.add_argument("--images", type=int, default=40000)
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--save-every", type=int, default=250, help="steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from OUT/state.pt")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    Trainer(args).run()


if __name__ == "__main__":
    main()
