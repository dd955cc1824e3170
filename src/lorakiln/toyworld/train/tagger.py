"""Train the toy world's tagger and write it in the WD layout kiln loads (`kiln tag --model DIR`).

    python -m lorakiln.toyworld.train.tagger --out DIR --seed 0 [--steps 2500] [--batch 64]

Labels: the four WD ratings (category 9), every general tag of the world (`vocab.all_general_tags()`,
category 0) and the ten pretraining characters (category 4). Each step renders a fresh batch of
pretraining pictures (`generate`, seed `--seed`), so no picture is seen twice. The model is a small
CNN behind a wrapper that takes what kiln's WD preprocessing gives (NHWC, BGR, 0-255, 64x64) and
outputs sigmoid probabilities in the order of `selected_tags.csv`. After training, the exported
ONNX file is measured through kiln's own runner (`tagging.wd.OnnxTagger`) on renders of another
seed: per-tag precision and recall at kiln's default thresholds (general 0.35, character 0.85),
and the general tags of the held-out characters, which the model never saw.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lorakiln.tagging.preprocess import prepare
from lorakiln.toyworld import HELD_OUT, PRETRAIN, Mix, generate, vocab
from lorakiln.toyworld.train.common import (
    AvgMaxPool, Progress, augment, export_onnx, precision_recall, setup, trunk, write_json)

SIZE = 64
RATINGS = ("general", "sensitive", "questionable", "explicit")
TRAIN_MIX = Mix(anonymous=0.4)  # more anonymous girls: attributes in more combinations than ten characters
GENERAL_THRESHOLD, CHARACTER_THRESHOLD = 0.35, 0.85  # kiln's [tag] defaults
EVAL_SEED_OFFSET = 100_000  # evaluation renders use seed + this: never a training picture


def label_rows() -> list[tuple[str, int]]:
    """(name, WD category) in output order: ratings, general tags, characters."""
    return ([(r, 9) for r in RATINGS] + [(t, 0) for t in sorted(vocab.all_general_tags())]
            + [(c.name, 4) for c in PRETRAIN])


class TaggerNet(nn.Module):
    """Normalised RGB NCHW -> logits."""

    def __init__(self, n_labels: int, width: int = 32):
        super().__init__()
        self.features = trunk(width)
        self.pool = AvgMaxPool()
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(16 * width, n_labels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features((x - 0.5) / 0.25)))


class WdInterface(nn.Module):
    """What a WD tagger takes and gives: NHWC BGR 0-255 in, sigmoid probabilities out."""

    def __init__(self, net: TaggerNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = x.permute(0, 3, 1, 2).flip(1) / 255.0
        return torch.sigmoid(self.net(rgb))


def targets(samples, index: dict[str, int]) -> np.ndarray:
    y = np.zeros((len(samples), len(index)), dtype=np.float32)
    for i, s in enumerate(samples):
        for t in (*s.tags.general, *s.tags.character, RATINGS[0]):
            if t in index:  # a held-out character is no label
                y[i, index[t]] = 1.0
    return y


def wd_batch(samples) -> np.ndarray:
    """Exactly kiln's tagger input for these pictures (tagging.preprocess.prepare)."""
    return np.stack([prepare(s.image, SIZE) for s in samples])


def train(seed: int, steps: int, batch: int, lr: float) -> tuple[TaggerNet, np.ndarray, float]:
    """The trained network, positives per label over the training stream, seconds taken."""
    setup(seed)
    rows = label_rows()
    index = {name: i for i, (name, _) in enumerate(rows)}
    net = TaggerNet(len(rows))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    warm = max(1, steps // 25)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))
    gen = torch.Generator().manual_seed(seed)
    counts = np.zeros(len(rows), dtype=np.int64)
    progress = Progress("tagger", steps)
    net.train()
    for step in range(steps):
        samples = list(generate(batch, seed, mix=TRAIN_MIX, start=step * batch))
        y = targets(samples, index)
        counts += y.astype(np.int64).sum(0)
        x = torch.from_numpy(wd_batch(samples)).permute(0, 3, 1, 2).flip(1) / 255.0
        logits = net(augment(x, gen))
        loss = nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        progress.step(step, loss=loss.item(), lr=sched.get_last_lr()[0])
    return net.eval(), counts, progress.elapsed()


def write_model(net: TaggerNet, counts: np.ndarray, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(WdInterface(net), torch.zeros(1, SIZE, SIZE, 3), out / "model.onnx", ["input"], ["output"],
                {"input": {0: "batch"}, "output": {0: "batch"}})
    lines = ["tag_id,name,category,count"]
    lines += [f"{i},{name},{cat},{int(n)}" for i, ((name, cat), n) in enumerate(zip(label_rows(), counts))]
    (out / "selected_tags.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_with_kiln(folder: Path):
    """The tagger through kiln's own loading code (what `kiln tag --model DIR` does)."""
    from lorakiln.tagging.loading import identify, load_tagger, locate

    spec, local = identify(str(folder))
    return load_tagger(locate(spec, local), device="cpu")


def predict(tagger, samples, chunk: int = 256) -> np.ndarray:
    return np.concatenate([tagger.predict(wd_batch(samples[i:i + chunk])) for i in range(0, len(samples), chunk)])


def measure(folder: Path, seed: int, n: int, n_held: int) -> dict:
    """Per-tag precision/recall on fresh pretraining renders; general tags on held-out characters."""
    tagger = load_with_kiln(folder)
    rows = label_rows()
    names = [r[0] for r in rows]
    index = {name: i for i, name in enumerate(names)}
    cut = np.array([CHARACTER_THRESHOLD if cat == 4 else GENERAL_THRESHOLD for _, cat in rows])
    scored = [i for i, (_, cat) in enumerate(rows) if cat != 9]
    result: dict = {"thresholds": {"general": GENERAL_THRESHOLD, "character": CHARACTER_THRESHOLD}}
    for key, chars, count in (("pretraining", None, n), ("held_out", HELD_OUT, n_held)):
        samples = list(generate(count, seed + EVAL_SEED_OFFSET, characters=chars))
        truth = targets(samples, index).astype(bool)
        pred = predict(tagger, samples) >= cut
        p, r, pos = precision_recall(pred[:, scored], truth[:, scored])
        per_tag = {names[j]: {"precision": _r(p[k]), "recall": _r(r[k]), "positives": int(pos[k]),
                              "predicted": int(pred[:, j].sum())} for k, j in enumerate(scored)}
        seen = pos > 0
        gmask = np.array([rows[j][1] == 0 for j in scored])
        gen_idx = [k for k, j in enumerate(scored) if rows[j][1] == 0 and seen[k]]
        result[key] = {
            "pictures": count,
            "mean_precision_general": _r(np.nanmean(p[gen_idx])), "mean_recall_general": _r(np.nanmean(r[gen_idx])),
            "exact_general_sets": _r((pred[:, scored][:, gmask] == truth[:, scored][:, gmask]).all(1).mean()),
            "per_tag": per_tag,
        }
        chars_idx = [k for k, j in enumerate(scored) if rows[j][1] == 4]
        if key == "pretraining":
            result[key]["mean_precision_character"] = _r(np.nanmean(p[chars_idx]))
            result[key]["mean_recall_character"] = _r(np.nanmean(r[chars_idx]))
        else:  # no held-out character is a label: any character tag on them is a false positive
            result[key]["pictures_with_a_character_tag"] = int(pred[:, [scored[k] for k in chars_idx]].any(1).sum())
    return result


def _r(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else round(v, 4)


def markdown(quality: dict) -> str:
    """The per-tag table for docs/toyworld.md."""
    pre, held = quality["pretraining"]["per_tag"], quality["held_out"]["per_tag"]
    lines = ["| Tag | Precision | Recall | Positives | Held-out chars: precision | recall |", "|---|---|---|---|---|---|"]
    characters = {name for name, cat in label_rows() if cat == 4}
    for tag, m in pre.items():
        h = {} if tag in characters else held.get(tag, {})  # held-out pictures: no character is a label
        lines.append(f"| `{tag}` | {_f(m['precision'])} | {_f(m['recall'])} | {m['positives']} | "
                     f"{_f(h.get('precision'))} | {_f(h.get('recall'))} |")
    return "\n".join(lines) + "\n"


def _f(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lorakiln.toyworld.train.tagger", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for model.onnx + selected_tags.csv")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval", type=int, default=2000, help="fresh pretraining renders to measure on")
    ap.add_argument("--eval-held-out", type=int, default=1000, help="renders of the held-out characters")
    a = ap.parse_args(argv)
    print(f"tagger: {len(label_rows())} labels, {a.steps} steps x {a.batch} fresh renders, seed {a.seed}", flush=True)
    net, counts, seconds = train(a.seed, a.steps, a.batch, a.lr)
    write_model(net, counts, a.out)
    quality = measure(a.out, a.seed, a.eval, a.eval_held_out)
    quality["training"] = {"seed": a.seed, "steps": a.steps, "batch": a.batch, "lr": a.lr,
                           "pictures": a.steps * a.batch, "seconds": round(seconds), "threads": 1,
                           "parameters": sum(p.numel() for p in net.parameters())}
    write_json(a.out / "quality.json", quality)
    (a.out / "quality.md").write_text(markdown(quality), encoding="utf-8")
    for key in ("pretraining", "held_out"):
        q = quality[key]
        print(f"{key}: general precision {q['mean_precision_general']} recall {q['mean_recall_general']} "
              f"exact sets {q['exact_general_sets']}", flush=True)
    print(f"characters: precision {quality['pretraining']['mean_precision_character']} recall "
          f"{quality['pretraining']['mean_recall_character']}; held-out pictures given a character tag: "
          f"{quality['held_out']['pictures_with_a_character_tag']}/{a.eval_held_out}; wrote {a.out}", flush=True)


if __name__ == "__main__":
    main()
