"""Bundled presets: every one validates through the registered section models, is found from
the base names users actually have, and `kiln presets` lists, shows and applies them."""

import pytest

from lorakiln.config.presets import all_presets, find_preset
from lorakiln.config.resolve import deep_merge
from lorakiln.config.sections import sections
from lorakiln.services.config_import import preset_tables

PRESETS = all_presets()
BASES = {n for n, d in PRESETS.items() if not d["preset"].get("variant_of")}
VARIANTS = set(PRESETS) - BASES


def _validate(doc: dict) -> dict:
    known = sections()
    out = {}
    for table, values in doc.items():
        if table == "preset":
            continue
        assert table in known, f"preset table [{table}] is no registered section"
        out[table] = known[table].model_validate(values)
    return out


def test_the_promised_presets_exist():
    assert {"sd15-nai", "animagine-xl-3", "pony-v6", "illustrious", "tiny-sd15", "tiny-sdxl"} <= BASES
    assert {"pony-v6-dora", "prodigy"} <= VARIANTS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates(name):
    doc = PRESETS[name]
    meta = doc["preset"]
    assert meta["name"] == name and meta.get("description")
    parsed = _validate(doc)
    parent = meta.get("variant_of")
    if parent:  # a variant on top of its parent (or of every base) must validate too
        for base in ([parent] if parent != "*" else sorted(BASES)):
            _validate(deep_merge(PRESETS[base], doc))
    else:
        assert meta["family"] in ("sd15", "sdxl", "tiny-sd15", "tiny-sdxl")
    if "train" in parsed:
        _known_to_the_trainer(parsed["train"])


def _known_to_the_trainer(train) -> None:
    from lorakiln.train.optim import find_optimizer
    from lorakiln.train.schedulers import find_scheduler

    find_optimizer(train.optimizer.optimizer)
    find_scheduler(train.optimizer.lr_scheduler)


def test_aliases_do_not_collide():
    seen = {}
    for name, doc in PRESETS.items():
        for alias in [name, *(doc["preset"].get("aliases") or [])]:
            key = "".join(ch for ch in alias.lower() if ch.isalnum())
            assert seen.setdefault(key, name) == name, f"{alias} names both {seen[key]} and {name}"


@pytest.mark.parametrize("base, preset", [
    ("animagine-xl-3.1", "animagine-xl-3"),
    ("animagine-xl-3.1.safetensors", "animagine-xl-3"),
    ("cagliostrolab/animagine-xl-3.1", "animagine-xl-3"),
    ("ponyDiffusionV6XL_v6StartWithThisOne.safetensors", "pony-v6"),
    ("/models/Illustrious-XL-v0.1.safetensors", "illustrious"),
    ("animefull-final-pruned.ckpt", "sd15-nai"),
    ("AnyLoRA_noVae_fp16-pruned.safetensors", "sd15-nai"),
    ("tiny-sdxl", "tiny-sdxl"),
])
def test_base_names_find_their_preset(base, preset):
    assert find_preset(base)["preset"]["name"] == preset


def test_project_base_selects_the_preset(tmp_path):
    from lorakiln.services.project import init_project

    p = init_project(tmp_path / "p", "p", ["kie"], base="animagine-xl-3.1.safetensors")
    train = p.resolve("train")
    assert (train.network.network_dim, train.network.network_alpha) == (4, 2.0)  # seed 000
    assert train.optimizer.text_encoder_lr == 5e-5 and train.buckets.resolution == 1024
    assert p.resolve("caption").order == "animagine" and p.resolve("plan").schedule == "xl-100"


def test_seed_settings_in_presets():
    pony = _validate(PRESETS["pony-v6"])
    opt = pony["train"].optimizer
    assert (opt.optimizer, opt.lr_scheduler, opt.unet_lr, opt.text_encoder_lr) == ("CAME", "rex", 1e-4, 1e-6)
    assert pony["caption"].order == "pony" and pony["plan"].schedule == "pdxl"
    nai = _validate(PRESETS["sd15-nai"])
    assert nai["train"].clip_skip == 2 and nai["train"].network.network_dim == 16
    assert nai["train"].optimizer.unet_lr == 5e-4 and nai["train"].optimizer.text_encoder_lr == 1e-4
    dora = _validate(deep_merge(PRESETS["pony-v6"], PRESETS["pony-v6-dora"]))
    assert dora["train"].network.dora_wd and dora["train"].network.conv_dim == 4
    assert dora["train"].optimizer.unet_lr == 5e-5 and dora["train"].optimizer.optimizer == "CAME"


def test_preset_tables_paths():
    paths = preset_tables(PRESETS["pony-v6-dora"])
    assert paths[("train", "network", "dora_wd")] is True and ("preset", "name") not in paths


def test_cli_presets_list_show_apply(tmp_path, cli):
    code, out = cli("presets", "list", cwd=tmp_path)
    assert code == 0 and all(n in out for n in ("pony-v6", "animagine-xl-3", "tiny-sd15", "prodigy"))
    code, out = cli("presets", "show", "pony", cwd=tmp_path)
    assert code == 0 and 'name = "pony-v6"' in out and "seed 001" in out
    code, out = cli("presets", "show", "nope", cwd=tmp_path)
    assert code == 1 and "unknown preset" in out

    code, _ = cli("init", "kie", "-t", "kie", "--base", "ponyDiffusionV6XL.safetensors", cwd=tmp_path)
    root = tmp_path / "kie"
    code, out = cli("presets", "apply", "pony-v6-dora", "--dry-run", cwd=root)
    assert code == 0 and "would set" in out and "dora_wd" not in (root / "project.toml").read_text()
    code, out = cli("presets", "apply", "pony-v6-dora", cwd=root)
    assert code == 0
    from lorakiln.services.project import open_project

    train = open_project(root).resolve("train")
    assert train.network.dora_wd and train.network.algo == "locon" and train.optimizer.optimizer == "CAME"

    code, _ = cli("init", "nai", "-t", "x", "--base", "nai", cwd=tmp_path)
    code, out = cli("presets", "apply", "pony-v6-dora", cwd=tmp_path / "nai")
    assert code == 1 and "variant of 'pony-v6'" in out
    code, out = cli("presets", "apply", "prodigy", cwd=tmp_path / "nai")
    assert code == 0 and open_project(tmp_path / "nai").resolve("train").optimizer.optimizer == "Prodigy"


def test_variants_are_applied_by_name_only():
    from lorakiln.config.presets import find_preset, get_preset

    assert find_preset("my-prodigy-merge.safetensors") is None
    assert find_preset("pony-v6-dora")["preset"]["name"] == "pony-v6"  # the base, not the variant
    assert get_preset("prodigy")["preset"]["name"] == "prodigy"
    # `kiln presets show` takes the file name of a base model too, as its help says
    assert get_preset("ponyDiffusionV6XL_v6StartWithThisOne.safetensors")["preset"]["name"] == "pony-v6"
