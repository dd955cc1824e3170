"""kohya-format files: exact save/load round trips, metadata, continuing from a file, DoRA bake,
and what diffusers' own kohya converter makes of our names."""

import json

import pytest
import torch

from lorakiln.core.errors import ConfigError
from lorakiln.formats.lora_file import read_lora
from lorakiln.train.dora_bake import bake_file, bake_network, svd_lora
from lorakiln.train.families import FAMILIES
from lorakiln.train.network import (
    NetworkSpec,
    create_network,
    create_network_from_weights,
    infer_spec,
    load_network_file,
)


SPECS = {
    "lora": NetworkSpec("lora", dim=4, alpha=2),
    "locon": NetworkSpec("locon", dim=4, alpha=2, conv_dim=2, conv_alpha=1),
    "loha": NetworkSpec("loha", dim=4, alpha=2),
    "lokr": NetworkSpec("lokr", dim=4, alpha=2, args={"factor": 4}),
    "dora": NetworkSpec("lora", dim=4, alpha=2, dora=True),
}
SUFFIXES = {
    "lora": {"alpha", "lora_down.weight", "lora_up.weight"},
    "locon": {"alpha", "lora_down.weight", "lora_up.weight"},
    "loha": {"alpha", "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"},
    "lokr": {"alpha", "lokr_w1", "lokr_w2", "lokr_w2_a", "lokr_w2_b"},
    "dora": {"alpha", "lora_down.weight", "lora_up.weight", "dora_scale"},
}


@pytest.fixture(scope="module")
def xl():
    fam = FAMILIES.get("tiny-sdxl")
    return fam, fam.load("tiny-sdxl")


def _randomise(net, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


def _out(fam, comps, net=None):
    lat = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    if net is not None:
        net.eval().apply_to()  # eval: no rank dropout
    try:
        with torch.no_grad():
            return fam.predict(comps, lat, torch.tensor([400]), fam.encode_prompts(comps, ["a cat"]))
    finally:
        if net is not None:
            net.restore()


@pytest.mark.parametrize("kind", list(SPECS))
def test_save_load_round_trip_is_exact(xl, kind, tmp_path):
    fam, comps = xl
    net = create_network(fam, comps, SPECS[kind], seed=0)
    _randomise(net)
    meta = net.metadata(fam, comps, clip_skip=2)
    path = tmp_path / f"{kind}.safetensors"
    net.save(path, {**meta, "ss_output_name": "kafka"}, dtype=torch.float32)
    tensors, got_meta = read_lora(path)
    want = net.kohya_state_dict()
    assert set(tensors) == set(want)
    assert all(torch.equal(tensors[k], want[k]) for k in want)
    assert {k.partition(".")[2] for k in tensors} == SUFFIXES[kind]
    assert all(tensors[k].ndim == 0 for k in tensors if k.endswith(".alpha"))
    assert all(k.startswith(("lora_te1_", "lora_te2_", "lora_unet_")) for k in tensors)
    assert {k: got_meta[k] for k in meta} == meta and got_meta["ss_output_name"] == "kafka"
    assert all(isinstance(v, str) for v in got_meta.values())
    assert str(tmp_path) not in json.dumps(got_meta)
    # load back into a fresh network -> same outputs
    net2, _ = load_network_file(fam, comps, path)
    assert torch.equal(_out(fam, comps, net2), _out(fam, comps, net))


def test_metadata_values(xl, tmp_path):
    fam, comps = xl
    sd15 = FAMILIES.get("tiny-sd15")
    lora = create_network(fam, comps, SPECS["lora"]).metadata(fam, comps)
    assert lora["ss_network_module"] == "networks.lora" and "ss_network_args" not in lora
    assert (lora["ss_network_dim"], lora["ss_network_alpha"]) == ("4", "2.0")
    assert lora["ss_base_model_version"] == "sdxl_base_v1-0" and lora["ss_v2"] == "False"
    assert lora["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    assert lora["modelspec.implementation"] == "https://github.com/Stability-AI/generative-models"
    assert lora["modelspec.resolution"] == "1024x1024" and lora["modelspec.prediction_type"] == "epsilon"
    assert lora["modelspec.sai_model_spec"] == "1.0.1"
    locon = create_network(fam, comps, SPECS["locon"]).metadata(fam, comps)
    assert json.loads(locon["ss_network_args"]) == {"conv_dim": "2", "conv_alpha": "1.0"}
    loha = create_network(fam, comps, SPECS["loha"]).metadata(fam, comps)
    assert loha["ss_network_module"] == "lycoris.kohya" and json.loads(loha["ss_network_args"])["algo"] == "loha"
    dora = json.loads(create_network(fam, comps, SPECS["dora"]).metadata(fam, comps)["ss_network_args"])
    assert dora["algo"] == "lora" and dora["dora_wd"] == "True"
    one = sd15.metadata(None, clip_skip=2)
    assert one["ss_base_model_version"] == "sd_v1" and one["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert one["modelspec.implementation"] == "diffusers" and one["modelspec.encoder_layer"] == "2"


def test_continue_from_file_infers_dims(xl, tmp_path):
    fam, comps = xl
    net = create_network(fam, comps, NetworkSpec("locon", dim=8, alpha=4, conv_dim=2, conv_alpha=2), seed=3)
    _randomise(net)
    path = tmp_path / "merged.safetensors"
    net.save(path, net.metadata(fam, comps), dtype=torch.float16)
    spec = infer_spec(*read_lora(path))
    assert (spec.algo, spec.dim, spec.alpha, spec.conv_dim, spec.conv_alpha, spec.text_encoder) == \
        ("locon", 8, 4.0, 2, 2.0, True)
    cont, meta = load_network_file(fam, comps, path, NetworkSpec("lora", dim=32, rank_dropout=0.1))
    assert cont.spec.dim == 8 and cont.spec.rank_dropout == 0.1 and meta["ss_network_dim"] == "8"
    assert all(p.requires_grad and p.dtype == torch.float32 for p in cont.parameters())
    half = {k: v.half().float() for k, v in net.kohya_state_dict().items()}
    assert all(torch.equal(half[k], v) for k, v in cont.kohya_state_dict().items())
    # kohya semantics without dim_from_weights: the network of the spec, weights must fit
    same, _ = load_network_file(fam, comps, path, NetworkSpec("locon", dim=8, alpha=4, conv_dim=2, conv_alpha=2),
                                dim_from_weights=False)
    assert torch.allclose(_out(fam, comps, same), _out(fam, comps, cont), atol=1e-6)
    with pytest.raises(ConfigError, match="shape .* expects .*dims"):
        load_network_file(fam, comps, path, NetworkSpec("locon", dim=16, conv_dim=2), dim_from_weights=False)


def test_per_module_ranks_survive_a_reload(xl):
    """A resized/merged LoRA may have a different rank per module; the file's shapes win."""
    fam, comps = xl
    tensors = create_network(fam, comps, SPECS["lora"]).kohya_state_dict()
    name = "lora_unet_input_blocks_4_1_proj_in"
    tensors[f"{name}.lora_down.weight"] = torch.randn(2, 64)
    tensors[f"{name}.lora_up.weight"] = torch.randn(64, 2)
    tensors[f"{name}.alpha"] = torch.tensor(1.0)
    net = create_network_from_weights(fam, comps, tensors)
    assert net.lora_modules[name].lora_dim == 2 and net.lora_modules[name].scale == 0.5


def test_input_axis_dora_file_reloads(xl, tmp_path):
    """DoRA magnitudes per input column (A1111's axis, LyCORIS wd_on_output=False) survive a reload."""
    fam, comps = xl
    net = create_network(fam, comps, NetworkSpec("lora", dim=4, alpha=2, dora=True, dora_on_output=False), seed=0)
    _randomise(net)
    scale = net.lora_modules["lora_unet_input_blocks_4_1_proj_in"].dora_scale
    assert scale.shape == (1, 64)
    path = tmp_path / "dora-in.safetensors"
    net.save(path, net.metadata(fam, comps), dtype=torch.float32)
    back, _ = load_network_file(fam, comps, path)
    assert back.lora_modules["lora_unet_input_blocks_4_1_proj_in"].wd_on_out is False
    assert back.spec.dora and back.spec.dora_on_output is False
    assert torch.equal(_out(fam, comps, back), _out(fam, comps, net))


def test_file_of_another_family_is_refused(xl, tmp_path):
    fam, comps = xl
    path = tmp_path / "xl.safetensors"
    create_network(fam, comps, SPECS["lora"]).save(path, {})
    sd15 = FAMILIES.get("tiny-sd15")
    with pytest.raises(ConfigError, match="not in a tiny-sd15 model"):
        load_network_file(sd15, sd15.load("tiny-sd15"), path)


@pytest.mark.parametrize("kind", ["dora", "loha"])
def test_bake_to_plain_lora(xl, kind, tmp_path):
    fam, comps = xl
    spec = SPECS["dora"] if kind == "dora" else NetworkSpec("loha", dim=4, alpha=2, dora=True)
    net = create_network(fam, comps, spec, seed=0)
    _randomise(net)
    src, dst = tmp_path / "dora.safetensors", tmp_path / "baked.safetensors"
    net.save(src, net.metadata(fam, comps), dtype=torch.float32)
    report = bake_file(fam, comps, src, dst, rank=64)  # full rank for these widths: exact
    assert report.max_error < 1e-4
    tensors, meta = read_lora(dst)
    assert {k.partition(".")[2] for k in tensors} == {"alpha", "lora_down.weight", "lora_up.weight"}
    assert meta["ss_network_module"] == "networks.lora" and meta["ss_network_dim"] == "64"
    assert "dora_wd" not in meta.get("ss_network_args", "")
    baked, _ = load_network_file(fam, comps, dst)
    assert torch.allclose(_out(fam, comps, baked), _out(fam, comps, net), atol=2e-3)
    low = bake_network(net, rank=1)[1]
    assert 0 < low.mean_error < 1 and low.rank == 1


def test_svd_lora_shapes_and_error():
    delta = torch.randn(6, 3, 3, 3)
    up, down, err = svd_lora(delta, 2)
    assert up.shape == (6, 2, 1, 1) and down.shape == (2, 3, 3, 3) and 0 < err < 1
    up, down, err = svd_lora(delta, 27)
    assert err < 1e-6 and torch.allclose((up.flatten(1) @ down.flatten(1)).reshape(delta.shape), delta, atol=1e-5)


@pytest.mark.parametrize("name", ["tiny-sd15", "tiny-sdxl", "sd15", "sdxl"])
def test_diffusers_kohya_converter_maps_every_name_to_our_module(name):
    """diffusers' loader for kohya files (SGM remap + kohya -> PEFT names) lands each of our keys on
    exactly the module we adapted: nothing left over, nothing pointing elsewhere (full size on meta)."""
    from diffusers.loaders.lora_conversion_utils import (
        _convert_non_diffusers_lora_to_diffusers,
        _maybe_map_sgm_blocks_to_diffusers,
    )
    from diffusers.utils.state_dict_utils import (
        convert_state_dict_to_diffusers,
        convert_state_dict_to_peft,
        convert_unet_state_dict_to_peft,
    )

    fam = FAMILIES.get(name)
    meta = name in ("sd15", "sdxl")
    comps = fam.build_empty("meta") if meta else fam.load(name)
    with torch.device("meta" if meta else "cpu"):
        net = create_network(fam, comps, NetworkSpec("lora", dim=4, alpha=2, conv_dim=2))
    sd = {k: (torch.tensor(2.0) if k.endswith("alpha") else v) for k, v in net.kohya_state_dict().items()}
    sd = _maybe_map_sgm_blocks_to_diffusers(sd, comps.unet.config)
    converted, _ = _convert_non_diffusers_lora_to_diffusers(sd)
    assert not sd  # every key consumed
    parts: dict[str, dict] = {}
    for k, v in converted.items():
        root, rest = k.split(".", 1)
        parts.setdefault(root, {})[rest] = v
    parts = {r: convert_unet_state_dict_to_peft(d) if r == "unet" else convert_state_dict_to_peft(
        convert_state_dict_to_diffusers(d)) for r, d in parts.items()}
    models = {"unet": comps.unet, "text_encoder": comps.text_encoders[0], "text_encoder_2": comps.text_encoders[-1]}
    ours = {id(m.org_module[0]): n for n, m in net.lora_modules.items()}
    hit = set()
    for root, d in parts.items():
        for key in (k for k in d if ".lora_A." in k):
            path = key.split(".lora_A.")[0]
            model = models[root]
            if root != "unet" and not hasattr(model, "text_model"):
                path = path.removeprefix("text_model.")
            hit.add(ours[id(model.get_submodule(path))])
    assert hit == set(net.lora_modules)



def test_network_metadata_has_the_modelspec_keys_kohya_always_writes(xl):
    from datetime import datetime

    fam, comps = xl
    meta = create_network(fam, comps, SPECS["lora"]).metadata(fam, comps)
    assert meta["modelspec.title"] == "LoRA"
    assert datetime.fromisoformat(meta["modelspec.date"]).utcoffset() is not None
