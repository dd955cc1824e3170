"""Model families at toy size: tokenizer, prompt encoding, latents, a training step, sampling."""

import pytest
import torch

from lorakiln.evaluate.samplers import SAMPLERS, make_scheduler
from lorakiln.train.families import FAMILIES
from lorakiln.train.families.clip_tokenizer import VOCAB_SIZE, load_clip_tokenizer
from lorakiln.train.families.prompts import token_windows


LONG = ", ".join(f"tag{i} word{i}" for i in range(60))  # well over 75 tokens


@pytest.fixture(scope="module")
def sd15():
    fam = FAMILIES.get("tiny-sd15")
    return fam, fam.load("tiny-sd15")


@pytest.fixture(scope="module")
def sdxl():
    fam = FAMILIES.get("tiny-sdxl")
    return fam, fam.load("tiny-sdxl")


def test_registry_has_all_families():
    assert {"sd15", "sdxl", "tiny-sd15", "tiny-sdxl"} <= set(FAMILIES.names())
    assert FAMILIES.get("tiny-sdxl").arch == "sdxl" and FAMILIES.get("tiny-sd15").arch == "sd15"


def test_clip_tokenizer_real_ids():
    tok = load_clip_tokenizer()
    assert len(tok) == VOCAB_SIZE == 49408
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok("A Photo  of a CAT").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok("1girl, solo").input_ids == [49406, 272, 1611, 267, 5797, 49407]


def test_te2_pads_with_bang_te1_with_eos():
    te1, te2 = load_clip_tokenizer("eos"), load_clip_tokenizer("bang")
    assert (te1.pad_token, te1.pad_token_id) == ("<|endoftext|>", 49407)
    assert (te2.pad_token, te2.pad_token_id) == ("!", 0)
    ids = te2("a cat", padding="max_length", max_length=8).input_ids
    assert ids == [49406, 320, 2368, 49407, 0, 0, 0, 0]


def test_token_windows_wrap_each_window_like_kohya():
    for pad in ("eos", "bang"):
        tok = load_clip_tokenizer(pad)
        ids = token_windows(tok, [LONG, "a cat"], 225)
        assert ids.shape == (2, 3, 77)
        assert (ids[:, :, 0] == 49406).all()
        assert (ids[0, :, -1] == 49407).all()  # long caption: every window closed by <EOS>
        assert ids[1, 0, :4].tolist() == [49406, 320, 2368, 49407]
        if pad == "bang":  # empty windows of a short caption read <BOS> <EOS> ! ! ...
            assert ids[1, 1, :3].tolist() == [49406, 49407, 0]


@pytest.mark.parametrize("length,tokens", [(75, 77), (150, 152), (225, 227)])
def test_sd15_prompt_lengths(sd15, length, tokens):
    fam, comps = sd15
    cond = fam.encode_prompts(comps, ["a cat", LONG], max_token_length=length)
    assert cond.hidden_states.shape == (2, tokens, 32) and cond.pooled is None


def test_sd15_short_prompt_same_first_window_at_any_length(sd15):
    fam, comps = sd15
    short = fam.encode_prompts(comps, ["a cat"], clip_skip=2).hidden_states
    long = fam.encode_prompts(comps, ["a cat"], clip_skip=2, max_token_length=225).hidden_states
    assert torch.allclose(short[:, :76], long[:, :76], atol=1e-6)


def test_sd15_clip_skip_uses_an_earlier_layer(sd15):
    fam, comps = sd15
    one = fam.encode_prompts(comps, ["a cat"], clip_skip=1).hidden_states
    two = fam.encode_prompts(comps, ["a cat"], clip_skip=2).hidden_states
    assert not torch.allclose(one, two)
    te = comps.text_encoders[0]
    ids = comps.tokenizers[0](["a cat"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    out = te(ids, output_hidden_states=True)
    assert torch.allclose(two, te.final_layer_norm(out.hidden_states[-2]), atol=1e-6)
    with pytest.raises(ValueError):
        fam.encode_prompts(comps, ["a cat"], clip_skip=0)
    with pytest.raises(ValueError):
        fam.encode_prompts(comps, ["a cat"], max_token_length=100)


def test_sdxl_conditioning(sdxl):
    fam, comps = sdxl
    cond = fam.encode_prompts(comps, ["a cat", LONG], max_token_length=150)
    assert cond.hidden_states.shape == (2, 152, 32 + 48)  # CLIP-L width + OpenCLIP-G width
    assert cond.pooled.shape == (2, 48)
    assert cond.time_ids.tolist()[0] == [64.0, 64.0, 0.0, 0.0, 64.0, 64.0]
    sized = fam.encode_prompts(comps, ["a cat"], sizes=[(96, 80, 8, 0, 64, 64)])
    assert sized.time_ids.tolist() == [[96.0, 80.0, 8.0, 0.0, 64.0, 64.0]]
    # clip skip is not an SDXL knob (sd-scripts ignores it): same states either way
    assert torch.equal(fam.encode_prompts(comps, ["a cat"], clip_skip=2).hidden_states, sized.hidden_states)
    with pytest.raises(ValueError):
        fam.encode_prompts(comps, ["a", "b"], sizes=[(1, 2, 3, 4, 5, 6)])


def test_sdxl_pooled_is_projected_eos_state(sdxl):
    fam, comps = sdxl
    te2, tok2 = comps.text_encoders[1], comps.tokenizers[1]
    ids = tok2(["a cat"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    expected = te2(ids).text_embeds  # transformers' own pooling (first <EOS> via argmax with legacy ids)
    assert torch.allclose(fam.encode_prompts(comps, ["a cat"]).pooled, expected, atol=1e-5)


def test_encode_latents_scaled_and_8x_smaller(sd15):
    fam, comps = sd15
    px = torch.rand(2, 3, 64, 48) * 2 - 1
    lat = fam.encode_latents(comps, px, sample=False)
    assert lat.shape == (2, 4, 8, 6) and lat.dtype == torch.float32
    mode = comps.vae.encode(px).latent_dist.mode()
    assert torch.allclose(lat, mode * 0.18215, atol=1e-6)
    g = torch.Generator().manual_seed(1)
    assert torch.equal(fam.encode_latents(comps, px, generator=g), fam.encode_latents(comps, px, generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("name", ["tiny-sd15", "tiny-sdxl"])
def test_training_step_changes_unet_and_lowers_nothing_else(name):
    fam = FAMILIES.get(name)
    comps = fam.load(name)
    te_before = [p.clone() for p in comps.text_encoders[0].parameters()]
    comps.unet.requires_grad_(True).train()
    opt = torch.optim.SGD(comps.unet.parameters(), lr=0.1)
    lat = fam.encode_latents(comps, torch.rand(2, 3, 64, 64) * 2 - 1)
    with torch.no_grad():
        cond = fam.encode_prompts(comps, ["a cat", "1girl, solo"])
    noise = torch.randn_like(lat)
    t = torch.tensor([10, 900])
    before = [p.clone() for p in comps.unet.parameters()]
    pred = fam.predict(comps, comps.noise_scheduler.add_noise(lat, noise, t), t, cond)
    assert pred.shape == lat.shape
    torch.nn.functional.mse_loss(pred, noise).backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, comps.unet.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(te_before, comps.text_encoders[0].parameters()))


def test_tiny_families_are_seeded():
    fam = FAMILIES.get("tiny-sd15")
    a, b = fam.load("tiny-sd15"), fam.load("tiny-sd15")
    assert all(torch.equal(x, y) for x, y in zip(a.unet.state_dict().values(), b.unet.state_dict().values()))


def test_build_empty_full_size_on_meta():
    comps = FAMILIES.get("sdxl").build_empty("meta")
    assert comps.unet.config.cross_attention_dim == 2048
    assert all(p.is_meta for p in comps.unet.parameters())
    assert len(comps.text_encoders) == 2 and comps.text_encoders[1].config.hidden_size == 1280


@pytest.mark.parametrize("name", ["tiny-sd15", "tiny-sdxl"])
def test_pipeline_makes_an_image(name, sd15, sdxl):
    fam, comps = sd15 if name == "tiny-sd15" else sdxl
    pipe = fam.pipeline(comps, "euler_a")
    assert getattr(pipe, "safety_checker", None) is None
    img = pipe("a cat", num_inference_steps=2, height=64, width=64, guidance_scale=5.0,
               generator=torch.Generator().manual_seed(0)).images[0]
    assert img.size == (64, 64)


@pytest.mark.parametrize("sampler", SAMPLERS.names())
def test_every_sampler_builds_from_the_model_config(sd15, sampler):
    fam, comps = sd15
    sched = make_scheduler(sampler, comps.noise_scheduler.config)
    sched.set_timesteps(4)
    assert len(sched.timesteps) >= 4
    assert sched.config.beta_schedule == "scaled_linear" and sched.config.beta_end == 0.012


def test_sampler_names_and_aliases():
    assert {"euler_a", "euler", "dpmpp_2m_karras", "ddim", "dpmpp_2m", "heun"} <= set(SAMPLERS.names())
    cfg = FAMILIES.get("tiny-sd15").build_empty("meta").noise_scheduler.config
    assert type(make_scheduler("k_euler_a", cfg)).__name__ == "EulerAncestralDiscreteScheduler"
    assert make_scheduler("dpmpp_2m_karras", cfg).config.use_karras_sigmas is True
    from lorakiln.core.errors import KilnError

    with pytest.raises(KilnError, match="unknown sampler"):
        make_scheduler("nope", cfg)
