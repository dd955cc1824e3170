"""How well the toy base draws what its prompt asks, measured with kiln's own sampler and tagger.

    python -m lorakiln.toyworld.base.adherence --base FILE --n 120 --seed 0 [--grid docs/img/x.png]

Prompts are the tags of fresh renders of anonymous one-figure pictures (never seen in training);
each prompt is sampled by `kiln sample`'s code (services.sample.run_sample, the eval defaults:
DPM++ 2M Karras, 24 steps, CFG 7, the default negative) and the toy tagger (weights/tagger, through
kiln's tagger loading) reads the sample back. Per attribute, accuracy = the tagger's pick among
that attribute's tags equals the asked value; the same tagger on the renders themselves gives the
ceiling, and 1 / (number of values) the chance level.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from lorakiln.toyworld import Mix, generate, vocab
from lorakiln.toyworld.base.data import prompt

HAIR = [vocab.hair_colour_tag(c) for c in vocab.HAIR_COLOURS]
EYES = [vocab.eye_colour_tag(c) for c in vocab.EYE_COLOURS]
FRAMING = list(vocab.FRAMINGS)
OUTFIT = ["school_uniform", "dress", "hoodie", "armor", "swimsuit"]
SIDE, BACK = "from_side", "from_behind"
BACKGROUND = {"white": "white_background", "sky": "blue_sky", "room": "indoors"}


def truth(scene) -> dict[str, str]:
    """The asked value of each measured attribute for a one-figure scene."""
    look = scene.figures[0]
    out = {"hair colour": vocab.hair_colour_tag(look.hair_colour), "view": look.view, "framing": scene.framing,
           "outfit": look.outfit, "background": scene.background}
    if look.view != "from_behind":
        out["eye colour"] = vocab.eye_colour_tag(look.eye_colour)
    return out


def read_back(probs: np.ndarray, index: dict[str, int]) -> dict[str, str]:
    """The tagger's value of each attribute: the most likely tag of its group (views: over 0.5)."""
    pick = lambda tags: max(tags, key=lambda t: probs[index[t]])  # noqa: E731
    view = "front"
    if max(probs[index[SIDE]], probs[index[BACK]]) > 0.5:
        view = pick([SIDE, BACK])
    bg = {v: k for k, v in BACKGROUND.items()}
    simple = [t for t in index if t.endswith("_background") and t not in ("white_background", "simple_background")]
    b = pick([*BACKGROUND.values(), *simple])
    return {"hair colour": pick(HAIR), "eye colour": pick(EYES), "view": view, "framing": pick(FRAMING),
            "outfit": pick(OUTFIT), "background": bg.get(b, "simple")}


def tagger():
    from lorakiln.tagging.loading import identify, load_tagger, locate
    from lorakiln.toyworld.weights import TAGGER

    spec, local = identify(str(TAGGER))
    tg = load_tagger(locate(spec, local), device="cpu")
    return tg, {lb.name: i for i, lb in enumerate(tg.labels)}


def tag_images(tg, images) -> np.ndarray:
    from lorakiln.tagging.preprocess import prepare

    return tg.predict(np.stack([prepare(im, tg.size) for im in images]))


def sample(base: str, prompts: list[str], seed: int, out_dir: Path, cfg: float | None = None) -> list[Image.Image]:
    """One picture per prompt through kiln sample's service code (64x64, eval defaults)."""
    from lorakiln.evaluate.library import LoraLibrary
    from lorakiln.services.sample import PromptItem, Session, resolve_config, run_sample
    from lorakiln.core.progress import NullProgress

    extra = {"cfg": cfg} if cfg is not None else {}
    conf = resolve_config(None, {"base": base, "width": 64, "height": 64, "device": "cpu", **extra})
    session = Session(conf, base, LoraLibrary([], []))
    items = [PromptItem(p, seed=seed + i) for i, p in enumerate(prompts)]
    res = run_sample(session, items, seeds=[seed], negative=None, loras=[], out_dir=out_dir, progress=NullProgress())
    if res.report.failed:
        raise RuntimeError(f"sampling failed: {res.report.failed[:3]}")
    return [Image.open(f).convert("RGB") for f in res.files]


def measure(base: str, n: int, seed: int, cfg: float | None = None, keep: Path | None = None) -> dict:
    scenes = list(generate(n, seed=seed, characters=[], mix=Mix(two_figures=0.0)))
    prompts = [prompt("1girl", "solo", *[t for t in s.tags.general if t not in ("1girl", "solo")]) for s in scenes]
    with tempfile.TemporaryDirectory() as tmp:
        images = sample(base, prompts, seed, Path(keep or tmp), cfg)
    tg, index = tagger()
    got, ceiling = tag_images(tg, images), tag_images(tg, [s.image for s in scenes])
    result: dict = {"pictures": n, "seed": seed, "attributes": {}}
    for attr in ("hair colour", "eye colour", "view", "framing", "outfit", "background"):
        hits, refs, wants = [], [], []
        for s, p, r in zip(scenes, got, ceiling):
            want = truth(s.scene).get(attr)
            if want is None:
                continue
            wants.append(want)
            hits.append(read_back(p, index)[attr] == want)
            refs.append(read_back(r, index)[attr] == want)
        values = {"hair colour": HAIR, "eye colour": EYES, "view": [0] * 3, "framing": FRAMING, "outfit": OUTFIT,
                  "background": [0] * 4}[attr]
        result["attributes"][attr] = {"accuracy": round(float(np.mean(hits)), 3), "n": len(hits),
                                      "tagger_on_renders": round(float(np.mean(refs)), 3),
                                      "chance": round(1 / len(values), 3),
                                      "majority": round(max(wants.count(w) for w in wants) / len(wants), 3)}
    return result


def grid(base: str, path: Path, seed: int = 7) -> Path:
    """Hair colours (columns) x views (rows), the rest of the prompt fixed."""
    rows = []
    for view in ("", "from side", "from behind"):
        prompts = [prompt("1girl", "solo", vocab.hair_colour_tag(c), "long_hair", "upper_body", "white_background",
                          "simple_background", *(["dress", "blue_dress"]), *([view] if view else []))
                   for c in vocab.HAIR_COLOURS]
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(sample(base, prompts, seed, Path(tmp)))
    w = 64
    out = Image.new("RGB", (w * len(rows[0]), w * len(rows)), "white")
    for r, ims in enumerate(rows):
        for c, im in enumerate(ims):
            out.paste(im.resize((w, w)), (c * w, r * w))
    path.parent.mkdir(parents=True, exist_ok=True)
    out.quantize(colors=128, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True)
    p.add_argument("--n", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cfg", type=float, default=None)
    p.add_argument("--grid", type=Path, default=None, help="also write the hair colour x view grid here")
    p.add_argument("--keep", type=Path, default=None, help="keep the sampled pictures in this folder")
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    if a.grid:
        print(grid(a.base, a.grid))
    print(json.dumps(measure(a.base, a.n, a.seed, a.cfg, a.keep), indent=1))


if __name__ == "__main__":
    main()
