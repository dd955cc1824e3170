"""Build LoRA files and a finished-looking training run for the tiny families, without training.

The LoRAs are real kohya-format files from train/network.py whose zero-initialised halves are
filled with seeded noise (so they change the model), with the metadata a trained run writes
(ss_output_name, ss_tag_frequency, ss_dataset_dirs, lorakiln_trigger).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from lorakiln.core.atomic import write_json
from lorakiln.demo.images import Spec, demo_specs, make_image

FREQ = {"2_kiln": {"kilnchan": 8, "1girl": 8, "solo": 8, "long_hair": 8, "red_capelet": 6, "coat": 5,
                   "white_background": 4, "from_behind": 2}}


def lora_file(path: Path, family, comps, *, seed: int = 0, scale: float = 0.1, algo: str = "lora",
              output_name: str = "kiln", extra: dict | None = None) -> Path:
    from lorakiln.train.network import NetworkSpec, create_network

    net = create_network(family, comps, NetworkSpec(algo=algo, dim=4, alpha=2), seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for _, p in net.named_parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    meta = {**net.metadata(family, comps), "ss_output_name": output_name, "ss_tag_frequency": json.dumps(FREQ),
            "ss_dataset_dirs": json.dumps({"2_kiln": {"n_repeats": 2, "img_count": 8}}),
            "lorakiln_trigger": "kilnchan", **(extra or {})}
    net.save(path, meta, dtype=torch.float32)
    return Path(path)


def make_dataset(root: Path, n: int = 8) -> Path:
    ds = Path(root) / "dataset" / "2_kiln"
    ds.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(demo_specs(n)):
        make_image(Spec(s.seed, s.outfit, s.background, s.view, 96, 112)).save(ds / f"{i:02d}.png")
        (ds / f"{i:02d}.txt").write_text(", ".join(["kilnchan", *s.tags()]))
    return ds


def make_run(runs_dir: Path, family, comps, run_id: str = "20260101-000000-kiln", epochs: int = 2,
             final: bool = True, config: str | None = None, scale: float = 0.1) -> Path:
    run = Path(runs_dir) / run_id
    run.mkdir(parents=True, exist_ok=True)
    for ep in range(1, epochs + 1):
        lora_file(run / f"kiln-{ep:06d}.safetensors", family, comps, seed=ep, scale=scale * ep)
    if final:
        shutil.copy(run / f"kiln-{epochs:06d}.safetensors", run / "kiln.safetensors")
    write_json(run / "run.json", {"status": "done", "output_name": "kiln", "family": family.name})
    (run / "config.resolved.toml").write_text(config or '[project]\nname = "kiln"\nbase = "tiny-sd15"\n'
                                                         '[train]\nmax_train_epochs = 2\nseed = 42\n')
    return run
