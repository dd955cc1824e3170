"""merge / resize / lora convert / extract outputs state only what their inputs say: the trained
resolution and ModelSpec architecture name come from the inputs, never from a default for the
detected architecture (a 64x64 training merged must not say 512x512)."""

from __future__ import annotations

from test_merge_core import lora_sd
from test_merge_fixtures import apply_in_model, components, random_lora, save_checkpoint, to_checkpoint

from lorakiln.formats.lora_file import read_metadata, write_lora
from lorakiln.merge.metadata import arch_keys

SD15 = {"ss_base_model_version": "sd_v1", "ss_v2": "False", "modelspec.architecture": "stable-diffusion-v1/lora"}


def _lora(path, seed, **meta):
    write_lora(path, lora_sd(seed, 4, 4.0), {**SD15, **meta})
    return path


def test_merge_keeps_the_resolution_its_inputs_agree_on(tmp_path, cli):
    a = _lora(tmp_path / "a.safetensors", 1, **{"modelspec.resolution": "64x64"})
    b = _lora(tmp_path / "b.safetensors", 2, **{"modelspec.resolution": "64x64"})
    c = _lora(tmp_path / "c.safetensors", 3, **{"modelspec.resolution": "96x96"})
    bare = _lora(tmp_path / "bare.safetensors", 4)
    out = tmp_path / "m.safetensors"
    for inputs, want in (((a, b), "64x64"), ((a,), "64x64"), ((a, c), None), ((bare,), None), ((a, bare), None)):
        code, text = cli("merge", *inputs, "-o", out, "--force")
        assert code == 0, text
        assert read_metadata(out).get("modelspec.resolution") == want, inputs
        if want is None and c in inputs:
            assert "disagree on modelspec.resolution" in " ".join(text.split())


def test_resize_and_convert_never_invent_a_resolution(tmp_path, cli):
    bare = _lora(tmp_path / "bare.safetensors", 1)
    small = _lora(tmp_path / "small.safetensors", 2, **{"modelspec.resolution": "64x64"})
    for src, want in ((bare, None), (small, "64x64")):
        r, c = tmp_path / f"{src.stem}-r.safetensors", tmp_path / f"{src.stem}-c.safetensors"
        assert cli("resize", src, "--rank", "2", "-o", r)[0] == 0
        assert cli("lora", "convert", src, c, "--target", "diffusers", "--rank", "2")[0] == 0
        for out in (r, c):
            meta = read_metadata(out)
            assert meta.get("modelspec.resolution") == want, out
            assert meta["modelspec.architecture"] == "stable-diffusion-v1/lora"


def test_extract_takes_the_checkpoints_resolution(tmp_path, cli):
    comps, targets = components("tiny-sd15")
    base = save_checkpoint(tmp_path / "base.safetensors", to_checkpoint(comps, "sd15"))
    apply_in_model(targets, random_lora(targets, seed=1, only="lora_unet"), 1.0)
    tuned_sd = to_checkpoint(comps, "sd15")
    for meta, want in (({"modelspec.resolution": "64x64"}, "64x64"), ({"modelspec.title": "t"}, "512x512")):
        tuned = save_checkpoint(tmp_path / "tuned.safetensors", tuned_sd, meta)
        out = tmp_path / "x.safetensors"
        code, text = cli("extract", tuned, base, "--rank", "2", "-o", out, "--force")
        assert code == 0, text
        assert read_metadata(out)["modelspec.resolution"] == want


def test_a_more_specific_architecture_name_of_the_same_family_is_kept():
    v_pred = {"modelspec.architecture": "stable-diffusion-v2-768-v/lora"}
    assert arch_keys("sd2", v_pred)["modelspec.architecture"] == "stable-diffusion-v2-768-v/lora"
    assert arch_keys("sd2", {})["modelspec.architecture"] == "stable-diffusion-v2-512/lora"
    mislabelled = {"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"}
    assert arch_keys("sd15", mislabelled)["modelspec.architecture"] == "stable-diffusion-v1/lora"
    assert "modelspec.resolution" not in arch_keys("sdxl")
