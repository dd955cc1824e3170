"""The eval picture cache is keyed by the LoRA file's tensors, never by the hash its metadata claims
(issue 10, item 13: a LoRA whose up-weights were zeroed, saved with its old metadata, reused the old
pictures, so summary.json said "effect 0.0176" next to "its weights are zero")."""

import json
import os

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lorakiln.core.progress import NullProgress
from lorakiln.evaluate.library import LoraLibrary
from lorakiln.evaluate.lora_hash import content_hash
from lorakiln.formats.lora_file import tensor_hash
from lorakiln.services.evaluate import run_eval
from lorakiln.services.project import init_project
from lorakiln.train.families import FAMILIES
from tiny_run import lora_file, make_dataset, make_run

RUN = "20260101-000000-kiln"
FIRST = "kiln-000001.safetensors"


def zero_up_keeping_metadata(path):
    """What the tester did: every lora_up zeroed, saved with the original metadata (stale sshs hash)."""
    with safe_open(str(path), "pt") as fh:
        meta = fh.metadata()
    save_file({k: v * 0 if "lora_up" in k else v for k, v in load_file(str(path)).items()}, str(path), meta)
    return meta


def test_library_hash_is_computed_from_the_tensors(tmp_path):
    fam = FAMILIES.get("tiny-sd15")
    f = lora_file(tmp_path / "a.safetensors", fam, fam.load("tiny-sd15"), seed=1)
    stored = zero_up_keeping_metadata(f)["sshs_model_hash"]
    lib = LoraLibrary([f], cache_dir=tmp_path / "cache")
    assert lib.hash(f) == tensor_hash(f) != stored
    remembered = json.loads((tmp_path / "cache" / "lora_hashes.json").read_text())
    assert list(remembered.values()) == [tensor_hash(f)]


def test_content_hash_is_remembered_by_path_size_and_mtime(tmp_path):
    fam = FAMILIES.get("tiny-sd15")
    comps = fam.load("tiny-sd15")
    f = lora_file(tmp_path / "a.safetensors", fam, comps, seed=1)
    cache = tmp_path / "cache"
    first = content_hash(f, cache)
    store = cache / "lora_hashes.json"
    key = next(iter(json.loads(store.read_text())))
    store.write_text(json.dumps({key: "remembered"}))
    assert content_hash(f, cache) == "remembered"  # unchanged file: not read again
    lora_file(f, fam, comps, seed=2)  # other tensors: another size or mtime, computed anew
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert content_hash(f, cache) == tensor_hash(f) != first


def test_eval_regenerates_pictures_when_the_tensors_change_under_the_same_metadata(tmp_path):
    fam = FAMILIES.get("tiny-sd15")
    p = init_project(tmp_path / "kiln", "kiln", ["kilnchan"], base="tiny-sd15")
    make_dataset(p.root)
    p.set_section("eval", {"steps": 2, "weights": [1.0]})
    make_run(p.runs_dir, fam, fam.load("tiny-sd15"), epochs=2, scale=0.3, final=False)
    cfg = p.resolve("eval", {"probes": {"probe_set": "quick", "seeds": [1]}, "models": {"embedder": "descriptor"}})
    before = run_eval(p, RUN, cfg, NullProgress())
    row = next(r for r in before.doc["ranking"] if r["checkpoint"] == FIRST)
    assert row["effect"] > 0.01 and "excluded" not in row

    zero_up_keeping_metadata(p.runs_dir / RUN / FIRST)
    after = run_eval(p, RUN, cfg, NullProgress())
    per_condition = after.images // 3  # base + two checkpoints at one weight
    assert after.render.made == per_condition  # the changed file's pictures, and only those
    row = next(r for r in after.doc["ranking"] if r["checkpoint"] == FIRST)
    assert row["effect"] == 0.0 and "‖ΔW‖ = 0" in row["excluded"]  # the summary agrees with itself
