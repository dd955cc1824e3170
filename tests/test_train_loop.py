"""Tiny-model training on CPU through the service: learning, exact resume, metadata, caches."""

from __future__ import annotations

import json
import os

import pytest
import torch

from lorakiln.core.progress import NullProgress
from lorakiln.formats.lora_file import read_lora
from lorakiln.services.train import plan_training, request_from_project, run_training
from lorakiln.train.state import list_states, load_state
from interrupts import StopAfter
from test_train_fixtures import SPECS, tiny_project


def _train(proj, cli=None, progress=None, **kw):
    plan = plan_training(request_from_project(proj, cli))
    return plan, run_training(plan, progress or NullProgress(), **kw)


def _eval_loss(family, comps, net, latents, multiplier: float) -> float:
    """Mean epsilon loss on the training latents at fixed timesteps and noise."""
    from lorakiln.train.losses import NoiseSchedule

    sched = NoiseSchedule.from_betas(comps.noise_scheduler.betas, "epsilon", False)
    cond = family.encode_prompts(comps, ["kilnchan, " + ", ".join(s.tags()) for s in SPECS[: len(latents)]])
    gen = torch.Generator().manual_seed(0)
    net.set_multiplier(multiplier)
    total = 0.0
    with torch.no_grad():
        for t in (100, 300, 500, 700, 900):
            noise = torch.randn(latents.shape, generator=gen)
            tt = torch.full((latents.shape[0],), t)
            pred = family.predict(comps, sched.add_noise(latents, noise, tt), tt, cond)
            total += float(((pred - noise) ** 2).mean())
    net.set_multiplier(1.0)
    return total / 5


def test_training_learns_the_dataset(tmp_path):
    """After training, the saved LoRA predicts the noise on its training images better than no LoRA."""
    from lorakiln.train.batches import Augment, load_item
    from lorakiln.train.families import FAMILIES
    from lorakiln.train.network import NetworkSpec, create_network

    specs = SPECS[:2]
    proj = tiny_project(tmp_path / "p", repeats=8, specs=specs, train={
        "max_train_epochs": 1, "train_batch_size": 2,
        "network": {"network_dim": 8, "network_alpha": 8, "network_train_unet_only": True},
        "optimizer": {"learning_rate": 4e-3, "unet_lr": 4e-3, "lr_scheduler": "constant", "lr_warmup_steps": 0},
        "loss": {"min_snr_gamma": 0}, "data": {"shuffle_caption": False},
        "save": {"save_precision": "float", "save_state": False}})
    plan, out = _train(proj)
    assert out.steps == 8 and out.final.is_file()
    fam = FAMILIES.get("tiny-sd15")
    comps = fam.load("tiny-sd15")
    items = plan.datasets[0].items
    latents = fam.encode_latents(comps, torch.stack([load_item(it, it.bucket, Augment()).pixels for it in items]),
                                 sample=False)
    tensors, _ = read_lora(out.final)
    net = create_network(fam, comps, NetworkSpec(dim=8, alpha=8, text_encoder=False))
    net.load_kohya_state_dict(tensors)
    net.apply_to()
    before, after = _eval_loss(fam, comps, net, latents, 0.0), _eval_loss(fam, comps, net, latents, 1.0)
    assert after < before * 0.97, (before, after)
    first, last = sum(out.losses[:3]) / 3, sum(out.losses[-3:]) / 3
    assert last < first, (first, last)


RESUME_TRAIN = {
    "max_train_epochs": 2, "train_batch_size": 2, "seed": 7,
    "network": {"network_dim": 2, "network_alpha": 2, "network_dropout": 0.2},
    "optimizer": {"optimizer": "AdamW", "lr_scheduler": "cosine", "lr_warmup_steps": 1},
    "loss": {"noise_offset": 0.05, "noise_offset_random_strength": True},
    "data": {"shuffle_caption": True, "caption_tag_dropout_rate": 0.2, "flip_aug": True},
    "save": {"save_every_n_epochs": 1, "save_state": True, "save_precision": "float"},
}


def _final_state(run):
    return load_state(list_states(run.states_dir)[-1])


def test_resume_after_interrupt_equals_uninterrupted_run(tmp_path):
    proj = tiny_project(tmp_path / "p", repeats=1, train=RESUME_TRAIN)  # 4 images, batch 2: 2 steps/epoch
    _, whole = _train(proj)
    assert whole.steps == 4 and not whole.resumed
    with pytest.raises(KeyboardInterrupt):  # killed during step 3, after the state of epoch 1 was saved
        _train(proj, progress=StopAfter(3, when="train"), force=True)
    _, cont = _train(proj)  # same config and data: continues the unfinished run, does not start over
    assert cont.resumed and cont.steps == 4 and cont.run.root != whole.run.root
    a, b = _final_state(whole.run), _final_state(cont.run)
    assert a.position == b.position
    assert a.weights.keys() == b.weights.keys()
    for k in a.weights:
        torch.testing.assert_close(a.weights[k], b.weights[k], rtol=1e-5, atol=1e-6)
    ta, _ = read_lora(whole.final)
    tb, mb = read_lora(cont.final)
    for k in ta:
        torch.testing.assert_close(ta[k], tb[k], rtol=1e-5, atol=1e-6)
    events = [json.loads(x) for x in (cont.run.root / "events.jsonl").read_text().splitlines()]
    starts = [e for e in events if e["kind"] == "start"]
    assert [s["resumed"] for s in starts] == [False, True] and starts[1]["step"] == 2
    # same session across the interruption, like one kohya run
    _, ma = read_lora(cont.run.checkpoint("kiln-demo", epoch=1))
    assert ma["ss_session_id"] == mb["ss_session_id"]
    # a third call sees a finished run with the same config and data and trains nothing
    _, again = _train(proj)
    assert again.skipped and again.run.root == cont.run.root


def test_metadata_has_kohya_keys_and_no_paths_or_secrets(tmp_path, monkeypatch):
    secret = "sk-danbooru-SECRET-1234567890"
    monkeypatch.setenv("DANBOORU_API_KEY", secret)
    monkeypatch.setenv("KILN_FETCH__API_KEY", secret)
    proj = tiny_project(tmp_path / "p", repeats=2, train={
        "max_train_epochs": 1, "max_train_steps": 1, "output_name": "kafka_v1",
        "save": {"save_state": False}, "network": {"network_dim": 2}})
    plan, out = _train(proj)
    _, meta = read_lora(out.final)
    for key in ["ss_session_id", "ss_training_started_at", "ss_output_name", "ss_learning_rate", "ss_unet_lr",
                "ss_text_encoder_lr", "ss_num_train_images", "ss_num_batches_per_epoch", "ss_num_epochs",
                "ss_epoch", "ss_steps", "ss_max_train_steps", "ss_lr_scheduler", "ss_optimizer",
                "ss_mixed_precision", "ss_clip_skip", "ss_seed", "ss_tag_frequency", "ss_dataset_dirs",
                "ss_bucket_info", "ss_resolution", "ss_min_snr_gamma", "ss_noise_offset", "ss_keep_tokens",
                "ss_shuffle_caption", "ss_sd_model_name", "ss_network_module", "ss_network_dim",
                "modelspec.title", "modelspec.date", "modelspec.trigger_phrase", "lorakiln_version",
                "lorakiln_dataset_hash", "lorakiln_config_hash", "sshs_model_hash"]:
        assert key in meta, key
    assert all(isinstance(v, str) for v in meta.values())
    assert meta["ss_output_name"] == "kafka_v1" and meta["modelspec.trigger_phrase"] == "kilnchan"
    assert json.loads(meta["ss_dataset_dirs"]) == {"2_main": {"n_repeats": 2, "img_count": 4}}
    freq = json.loads(meta["ss_tag_frequency"])["2_main"]
    assert freq["kilnchan"] == 4 and freq["1girl"] == 4 and freq["coat"] == 2
    assert meta["ss_num_train_images"] == "8" and meta["ss_steps"] == "1"
    assert meta["lorakiln_dataset_hash"] == plan.dataset_hash()
    blob = json.dumps(meta)
    for forbidden in (str(tmp_path), os.path.expanduser("~"), secret, "/tmp/"):
        assert forbidden not in blob, forbidden
    # the resolved config and run files carry no secret either
    for f in out.run.root.iterdir():
        if f.is_file() and f.suffix in (".toml", ".json", ".jsonl"):
            assert secret not in f.read_text()


def test_latent_cache_hits_and_keys(tmp_path):
    from lorakiln.train.families import FAMILIES
    from lorakiln.train.latent_cache import LatentCache, latent_key, vae_identity

    fam = FAMILIES.get("tiny-sd15")
    comps = fam.load("tiny-sd15")
    vid = vae_identity(fam.name, comps.source, comps.vae)
    enc = lambda px: fam.encode_latents(comps, px, sample=False)  # noqa: E731
    calls = []
    jobs = [(latent_key(f"sha{i}", (64, 64), False, "auto"),
             lambda i=i: calls.append(i) or torch.full((3, 64, 64), i / 4 - 0.5)) for i in range(3)]
    cache = LatentCache(vid, tmp_path / "latents")
    cache.fill(jobs, enc, batch_size=2)
    assert (cache.hits, cache.misses, calls) == (0, 3, [0, 1, 2])
    direct = enc(torch.full((1, 3, 64, 64), -0.5))[0]
    torch.testing.assert_close(cache.get(jobs[0][0]), direct)
    cache.fill(jobs, enc)  # all in memory now
    assert cache.hits == 3 and calls == [0, 1, 2]
    disk = LatentCache(vid, tmp_path / "latents")  # a new process: read back from disk, no encoding
    disk.fill(jobs, enc)
    assert disk.hits == 3 and disk.misses == 0 and calls == [0, 1, 2]
    torch.testing.assert_close(disk.get(jobs[2][0]), cache.get(jobs[2][0]))
    # anything that changes the latent changes the key
    keys = {latent_key("sha0", (64, 64), False, "auto"), latent_key("sha0", (64, 64), True, "auto"),
            latent_key("sha0", (64, 128), False, "auto"), latent_key("sha0", (64, 64), False, "lanczos")}
    assert len(keys) == 4
    other = fam.load("tiny-sd15")
    with torch.no_grad():
        next(other.vae.parameters()).add_(0.01)
    assert vae_identity(fam.name, other.source, other.vae) != vid
    # a bad image is reported and skipped, the rest are encoded
    errors = []
    bad = [("bad", lambda: (_ for _ in ()).throw(OSError("truncated"))), *jobs]
    LatentCache(vid).fill(bad, enc, on_error=lambda k, e: errors.append((k, str(e))))
    assert errors == [("bad", "truncated")]


def test_text_encoder_cache_hits_and_matches_direct_encoding():
    from lorakiln.train.families import FAMILIES
    from lorakiln.train.te_cache import TextEncoderCache

    fam = FAMILIES.get("tiny-sdxl")
    comps = fam.load("tiny-sdxl")
    enc = lambda caps, sizes: fam.encode_prompts(comps, caps, sizes=sizes)  # noqa: E731
    cache = TextEncoderCache(enc)
    caps = ["kilnchan, 1girl", "kilnchan, solo"]
    sizes = [(80, 64, 0, 0, 64, 64), (64, 64, 8, 0, 64, 64)]
    a = cache(caps, sizes)
    b = cache(list(reversed(caps)), list(reversed(sizes)))
    assert (cache.misses, cache.hits) == (2, 2)
    direct = enc(caps, sizes)
    torch.testing.assert_close(a.hidden_states, direct.hidden_states)
    torch.testing.assert_close(a.pooled, direct.pooled)
    torch.testing.assert_close(b.time_ids, direct.time_ids.flip(0))
    cache(["kilnchan, 1girl"], [(80, 64, 0, 0, 128, 64)])  # same caption, other size conditioning: a miss
    assert cache.misses == 3


def test_options_that_switch_others_off_are_reported(tmp_path):
    proj = tiny_project(tmp_path / "p", train={
        "cache": {"cache_latents": True, "cache_text_encoder_outputs": True},
        "data": {"random_crop": True, "shuffle_caption": True, "caption_tag_dropout_rate": 0.1}})
    plan = plan_training(request_from_project(proj))
    text = "\n".join(plan.warnings)
    assert "random_crop is off: latents are cached" in text
    assert "text-encoder training is off" in text
    assert "caption_tag_dropout_rate, shuffle_caption off" in text
    opts = plan.datasets[0].spec.subsets[0].options
    assert not opts.random_crop and not opts.shuffle_caption and opts.caption_tag_dropout_rate == 0
    assert plan.cfg.network.network_train_unet_only
    from lorakiln.services.train import dry_run_lines

    lines = dry_run_lines(plan, memory=False)
    assert any(line.startswith("warning: random_crop is off") for line in lines)


def test_memory_estimate_grows_with_batch_and_shrinks_with_checkpointing():
    from lorakiln.train.dryrun import estimate_memory
    from lorakiln.train.families import FAMILIES
    from lorakiln.train.network import NetworkSpec, create_network

    fam = FAMILIES.get("tiny-sd15")
    kw = dict(resolution=(64, 64), precision="bf16", optimizer_state=2.0, cache_latents=True, train_text_encoder=True)
    one = estimate_memory(fam, NetworkSpec(dim=4), batch_size=1, gradient_checkpointing=False, **kw)
    four = estimate_memory(fam, NetworkSpec(dim=4), batch_size=4, gradient_checkpointing=False, **kw)
    gc = estimate_memory(fam, NetworkSpec(dim=4), batch_size=1, gradient_checkpointing=True, **kw)
    act = lambda e: next(v for k, v in e.parts.items() if k.startswith("activations"))  # noqa: E731
    assert act(four) == pytest.approx(4 * act(one)) and act(one) > 0
    assert act(gc) < act(one)
    lora = sum(p.numel() for p in create_network(fam, fam.build_empty("meta"), NetworkSpec(dim=4)).parameters())
    assert one.parts["optimizer state"] == lora * 4 * 2.0
    assert "total (estimate)" in one.lines()[-2]


def test_gradient_checkpointing_gives_the_same_gradients():
    from lorakiln.train.families import FAMILIES
    from lorakiln.train.network import NetworkSpec, create_network

    fam = FAMILIES.get("tiny-sd15")
    grads = []
    for gc in (False, True):
        comps = fam.load("tiny-sd15")
        if gc:
            comps.unet.enable_gradient_checkpointing()
            comps.unet.train()
        net = create_network(fam, comps, NetworkSpec(dim=2, alpha=2, text_encoder=False), seed=1)
        net.apply_to()
        for p in net.parameters():  # non-zero up weights so every adapter gets a gradient
            torch.nn.init.normal_(p, std=0.02, generator=torch.Generator().manual_seed(2))
        cond = fam.encode_prompts(comps, ["kilnchan, 1girl"])
        z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
        fam.predict(comps, z, torch.tensor([500]), cond).pow(2).mean().backward()
        grads.append({n: p.grad.clone() for n, p in net.named_parameters()})
    assert grads[0].keys() == grads[1].keys() and all(g.abs().sum() > 0 for g in grads[1].values())
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_training_on_cuda(tmp_path, precision):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    proj = tiny_project(tmp_path / "p", repeats=2, train={
        "max_train_epochs": 1, "mixed_precision": precision, "gradient_checkpointing": True,
        "save": {"save_state": True}, "network": {"network_dim": 4}})
    _, out = _train(proj)
    assert out.steps == 4 and out.final.is_file()
    assert all(torch.isfinite(torch.tensor(out.losses)))
    _, meta = read_lora(out.final)
    assert meta["ss_mixed_precision"] == precision
