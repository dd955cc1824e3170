"""Train the toy world's identity model and write it in deepghs CCIP's layout (kiln eval's `ccip`).

    python -m lorakiln.toyworld.train.identity --out DIR --seed 0 [--steps 2000]

An identity is what never changes about a figure: hair style, hair colour, eye colour and skin.
Each step renders P identities x K pictures (the ten pretraining characters and anonymous
figures, whose random fixed features are never a named character's, held-out ones included),
each in a random outfit, accessories, view, framing, background and style, and pulls the
pictures of one identity together and the others apart (supervised contrastive loss on
L2-normalised features). The held-out characters are never rendered in training.

Files written, as CCIP's: `model_feat.onnx` (NCHW RGB 64x64, CLIP mean/std -> unit features),
`model_metrics.onnx` (a stack of features -> the pairwise difference matrix, 1 - cosine) and
`metrics.json` whose `threshold` is chosen on a validation split (other seeds, pretraining
identities only). The exported files are then measured through kiln's `CcipEmbedder`: same /
different accuracy on pairs of the four held-out characters.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lorakiln.evaluate.embed import CLIP_MEAN, CLIP_STD, ccip_preprocess
from lorakiln.toyworld import HELD_OUT, PRETRAIN, Character, Mix, generate
from lorakiln.toyworld.sampling import anonymous_fixed
from lorakiln.toyworld.train.common import (
    AvgMaxPool, Progress, augment, export_onnx, setup, trunk, write_json)

SIZE = 64
DIM = 128
NAMED_MIX = Mix(anonymous=0.0, two_figures=0.0, default_outfit=0.4)
ANON_MIX = Mix(anonymous=0.0, two_figures=0.0, default_outfit=0.0, default_accessories=0.0)
VALID_SEED_OFFSET, TEST_SEED_OFFSET = 200_000, 300_000


def anonymous_identity(fixed: tuple[str, str, str, str]) -> Character:
    """An unnamed identity as a Character, so `generate` draws it (its default outfit is never worn
    under ANON_MIX)."""
    return Character("anon:" + "/".join(fixed), *fixed, "dress", "red")


def render(char: Character, seed: int, index: int, named: bool):
    return next(generate(1, seed, characters=[char], mix=NAMED_MIX if named else ANON_MIX, start=index))


class IdentityNet(nn.Module):
    """RGB 0-1 NCHW -> unit feature vectors."""

    def __init__(self, width: int = 32, dim: int = DIM):
        super().__init__()
        self.features = trunk(width)
        self.pool = AvgMaxPool()
        self.head = nn.Sequential(nn.Linear(16 * width, 256), nn.ReLU(inplace=True), nn.Linear(256, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.head(self.pool(self.features((x - 0.5) / 0.25))), dim=1)


class CcipFeat(nn.Module):
    """CCIP's feature interface: CLIP-normalised RGB NCHW in, features out."""

    def __init__(self, net: IdentityNet):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.from_numpy(CLIP_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.from_numpy(CLIP_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * self.std + self.mean)


class CcipMetrics(nn.Module):
    """A stack of features [n, d] -> differences [n, n] (1 - cosine; lower = more alike)."""

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        u = nn.functional.normalize(f, dim=1)
        return 1.0 - u @ u.t()


def unit_rgb(images) -> torch.Tensor:
    """Exactly kiln's CCIP input (evaluate.embed.ccip_preprocess), mapped back to 0-1 RGB."""
    x = np.stack([ccip_preprocess(im, SIZE) for im in images])
    return torch.from_numpy(x * CLIP_STD[None, :, None, None] + CLIP_MEAN[None, :, None, None]).float()


def supcon(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) over one batch of unit features."""
    sim = features @ features.t() / temperature
    eye = torch.eye(len(labels), dtype=torch.bool)
    sim = sim.masked_fill(eye, -1e9)
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    return -(log_prob * pos).sum(1).div(pos.sum(1).clamp(min=1)).mean()


def training_batch(rng: random.Random, seed: int, step: int, identities: int, per: int):
    """P identities x K pictures; about a third of the identities are named characters."""
    named = rng.sample(PRETRAIN, k=min(len(PRETRAIN), rng.randint(identities // 4, identities // 2)))
    chars: list[tuple[Character, bool]] = [(c, True) for c in named]
    while len(chars) < identities:
        chars.append((anonymous_identity(anonymous_fixed(rng)), False))
    images, labels = [], []
    for i, (char, is_named) in enumerate(chars):
        for k in range(per):
            images.append(render(char, seed, (step * identities + i) * per + k, is_named).image)
            labels.append(i)
    return images, torch.tensor(labels)


def train(seed: int, steps: int, identities: int, per: int, lr: float) -> tuple[IdentityNet, float]:
    setup(seed)
    rng = random.Random(f"identity/{seed}")
    net = IdentityNet()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    warm = max(1, steps // 25)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    gen = torch.Generator().manual_seed(seed)
    progress = Progress("identity", steps)
    net.train()
    for step in range(steps):
        images, labels = training_batch(rng, seed, step, identities, per)
        loss = supcon(net(augment(unit_rgb(images), gen)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        progress.step(step, loss=loss.item(), lr=sched.get_last_lr()[0])
    return net.eval(), progress.elapsed()


def write_model(net: IdentityNet, out: Path) -> None:
    export_onnx(CcipFeat(net), torch.zeros(1, 3, SIZE, SIZE), out / "model_feat.onnx", ["input"], ["output"],
                {"input": {0: "batch"}, "output": {0: "batch"}})
    export_onnx(CcipMetrics(), torch.zeros(4, DIM), out / "model_metrics.onnx", ["input"], ["output"],
                {"input": {0: "n"}, "output": {0: "n", 1: "n"}})


# -- measuring --------------------------------------------------------------------------------

def picture_set(seed: int, named: tuple[Character, ...], per_named: int, anonymous: int, per_anon: int,
                mix: Mix = NAMED_MIX) -> tuple[list, np.ndarray, list[str]]:
    """Pictures, identity labels (named: their index; anonymous: from len(named) on) and views."""
    rng = random.Random(f"identity-set/{seed}")
    images, labels, views = [], [], []
    for i, char in enumerate(named):
        for s in generate(per_named, seed, characters=[char], mix=mix, start=i * per_named):
            images.append(s.image), labels.append(i), views.append(s.scene.figures[0].view)
    taken = set()
    while len(taken) < anonymous:
        taken.add(anonymous_fixed(rng))
    for j, fixed in enumerate(sorted(taken)):
        for k in range(per_anon):
            s = render(anonymous_identity(fixed), seed, 10_000 + j * per_anon + k, False)
            images.append(s.image), labels.append(len(named) + j), views.append(s.scene.figures[0].view)
    return images, np.array(labels), views


def pairs(diff: np.ndarray, a: np.ndarray, b: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Differences of same-identity and different-identity pairs (each unordered pair once
    when a and b are the same set)."""
    if b is None:
        iu = np.triu_indices(len(a), k=1)
        d, same = diff[iu], a[iu[0]] == a[iu[1]]
    else:
        d, same = diff.ravel(), (a[:, None] == b[None, :]).ravel()
    return d[same], d[~same]


def best_threshold(same: np.ndarray, different: np.ndarray) -> tuple[float, float]:
    """The threshold with the best balanced accuracy (same: diff <= t), and that accuracy."""
    grid = np.unique(np.concatenate([same, different]))
    grid = grid[:: max(1, len(grid) // 4000)]
    acc = [(np.mean(same <= t) + np.mean(different > t)) / 2 for t in grid]
    i = int(np.argmax(acc))
    return float(grid[i]), float(acc[i])


def accuracy(same: np.ndarray, different: np.ndarray, t: float) -> dict:
    s, d = float(np.mean(same <= t)), float(np.mean(different > t))
    return {"same_pairs": int(len(same)), "different_pairs": int(len(different)), "same_accuracy": round(s, 4),
            "different_accuracy": round(d, 4), "balanced_accuracy": round((s + d) / 2, 4)}


def measure(folder: Path, seed: int) -> dict:
    """Threshold on a validation split; then held-out characters, through kiln's CcipEmbedder."""
    from lorakiln.evaluate.embed import CCIP_FILES, CcipEmbedder

    files = {f: folder / f for f in CCIP_FILES}
    emb = CcipEmbedder(folder.name, files, f"folder {folder}", threshold=1.0, device="cpu")
    vi, vl, _ = picture_set(seed + VALID_SEED_OFFSET, PRETRAIN, 24, 80, 4)
    vf = emb.features(vi)
    v_same, v_diff = pairs(emb.differences(vf, vf), vl)
    threshold, v_acc = best_threshold(v_same, v_diff)
    out: dict = {"threshold": round(threshold, 5),
                 "validation": {"pictures": len(vi), **accuracy(v_same, v_diff, threshold)}}
    test_mix = Mix(anonymous=0.0, two_figures=0.0)  # as a LoRA dataset is drawn
    hi, hl, hv = picture_set(seed + TEST_SEED_OFFSET, HELD_OUT, 60, 0, 0, test_mix)
    hf = emb.features(hi)
    hd = emb.differences(hf, hf)
    out["held_out"] = {"pictures": len(hi), **accuracy(*pairs(hd, hl), threshold)}
    back = np.array([v == "from_behind" for v in hv])
    iu = np.triu_indices(len(hl), k=1)
    with_back = back[iu[0]] | back[iu[1]]
    same = hl[iu[0]] == hl[iu[1]]
    out["held_out"]["same_accuracy_with_a_back_view"] = round(float(np.mean(hd[iu][same & with_back] <= threshold)), 4)
    oi, ol, _ = picture_set(seed + TEST_SEED_OFFSET + 1, PRETRAIN, 12, 60, 2, test_mix)
    of = emb.features(oi)
    _, o_diff = pairs(emb.differences(hf, of), hl, ol + 100)
    out["held_out_vs_others"] = {"other_pictures": len(oi),
                                 "different_accuracy": round(float(np.mean(o_diff > threshold)), 4),
                                 "different_pairs": int(len(o_diff))}
    per_char = {}
    for i, c in enumerate(HELD_OUT):
        m = hl == i
        s, _ = pairs(hd[np.ix_(m, m)], hl[m])
        per_char[c.name] = round(float(np.mean(s <= threshold)), 4)
    out["held_out"]["same_accuracy_per_character"] = per_char
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lorakiln.toyworld.train.identity",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for model_feat.onnx, model_metrics.onnx, "
                                                            "metrics.json")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--identities", type=int, default=16, help="identities per batch (P)")
    ap.add_argument("--per", type=int, default=4, help="pictures per identity in a batch (K)")
    ap.add_argument("--lr", type=float, default=2e-3)
    a = ap.parse_args(argv)
    print(f"identity: {a.steps} steps x {a.identities} identities x {a.per} fresh renders, seed {a.seed}",
          flush=True)
    net, seconds = train(a.seed, a.steps, a.identities, a.per, a.lr)
    write_model(net, a.out)
    write_json(a.out / "metrics.json", {"threshold": 1.0})  # replaced below, once measured
    quality = measure(a.out, a.seed)
    quality["training"] = {"seed": a.seed, "steps": a.steps, "identities": a.identities, "per": a.per,
                           "lr": a.lr, "pictures": a.steps * a.identities * a.per, "seconds": round(seconds),
                           "threads": 1, "parameters": sum(p.numel() for p in net.parameters())}
    write_json(a.out / "metrics.json", {"threshold": quality["threshold"], "difference": "1 - cosine",
                                        "input_size": SIZE, "feature_dim": DIM, **quality})
    v, h, o = quality["validation"], quality["held_out"], quality["held_out_vs_others"]
    print(f"threshold {quality['threshold']} (validation balanced accuracy {v['balanced_accuracy']})", flush=True)
    print(f"held-out characters: same {h['same_accuracy']} different {h['different_accuracy']} balanced "
          f"{h['balanced_accuracy']}; same with a back view {h['same_accuracy_with_a_back_view']}; "
          f"held-out vs others different {o['different_accuracy']}; wrote {a.out}", flush=True)


if __name__ == "__main__":
    main()
