"""`kiln train` through the CLI on a tiny project made by `kiln import` + `kiln export`."""

from __future__ import annotations

import json

from lorakiln.formats.lora_file import read_lora
from test_train_fixtures import SPECS, write_subset


def _project(tmp_path, cli):
    write_subset(tmp_path / "src" / "2_main", SPECS)
    code, out = cli("init", "kdemo", "--trigger", "kilnchan", "--base", "tiny-sd15", "--dir", tmp_path / "proj")
    assert code == 0, out
    proj = tmp_path / "proj"
    for args in (("import", tmp_path / "src"), ("export",)):
        code, out = cli(*args, cwd=proj)
        assert code == 0, out
    return proj


def test_list_optimizers_and_schedulers(cli, tmp_path):
    code, out = cli("train", "--list-optimizers")
    assert code == 0
    for name in ("AdamW", "AdamW8bit", "Lion", "Prodigy", "CAME", "Adafactor"):
        assert name in out
    code, out = cli("train", "--list-schedulers")
    assert code == 0
    for name in ("constant_with_warmup", "cosine_with_restarts", "polynomial", "rex"):
        assert name in out


def test_train_end_to_end_dry_run_samples_resume_and_rerun(cli, tmp_path):
    proj = _project(tmp_path, cli)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# samples\nkilnchan, 1girl --n lowres --s 2 --d 5\n")
    code, out = cli("train", "--dry-run", "--batch-size", "2", "--epochs", "1", cwd=proj)
    assert code == 0, out
    assert "[train]" in out and "max_train_epochs = 1" in out  # the resolved config
    assert "2_main: 4 images x 2 repeats = 8" in out
    assert "8 samples x 1 epochs / batch 2 = 4 steps" in out
    assert "memory estimate" in out and "total (estimate)" in out
    assert not (proj / "runs").exists() or not any((proj / "runs").iterdir())  # dry run trains nothing

    args = ("train", "--epochs", "1", "--max-steps", "2", "--batch-size", "2", "--dim", "2",
            "--sample-prompts", prompts, "--set", "sample.sample_every_n_epochs=1", "--set", "data.flip_aug=true",
            "--set", "data.random_crop=true")
    code, out = cli(*args, cwd=proj)
    assert code == 0, out
    assert "random_crop is off: latents are cached" in out
    runs = list((proj / "runs").iterdir())
    assert len(runs) == 1
    run = runs[0]
    final = run / "kdemo.safetensors"
    assert final.is_file() and (run / "config.resolved.toml").is_file()
    cfg_text = (run / "config.resolved.toml").read_text()
    assert "network_dim = 2" in cfg_text and 'trigger = ["kilnchan"]' in cfg_text
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds.count("step") == 2 and "save" in kinds and kinds[-1] == "end"
    assert any(e["kind"] == "warning" and "random_crop" in e["message"] for e in events)
    step = next(e for e in events if e["kind"] == "step")
    assert {"loss", "lr", "its", "epoch"} <= set(step)
    samples = [e for e in events if e["kind"] == "samples"]
    assert samples and samples[-1]["files"] == ["samples/final-00.png"]
    assert (run / "samples" / "final-00.png").is_file()
    assert "lowres" in (run / "samples" / "final-00.txt").read_text()
    _, meta = read_lora(final)
    assert meta["ss_network_dim"] == "2" and meta["ss_steps"] == "2" and meta["ss_flip_aug"] == "True"

    code, out = cli(*args, cwd=proj)  # same config and data: nothing to do
    assert code == 0 and "already trained" in out
    assert len(list((proj / "runs").iterdir())) == 1

    code, out = cli("train", "--resume", "--max-steps", "3", cwd=proj)  # continue the run one more step
    assert code == 0, out
    assert "resumed and ran step 3 of 3 in" in out  # this process ran one step of three
    _, meta = read_lora(final)
    assert meta["ss_steps"] == "3"


def test_train_without_exported_data_says_what_to_do(cli, tmp_path):
    code, out = cli("init", "kdemo", "--trigger", "kilnchan", "--base", "tiny-sd15", "--dir", tmp_path / "p")
    code, out = cli("train", cwd=tmp_path / "p")
    assert code == 1 and "kiln export" in out
    code, out = cli("train", "--set", "optimizer.lr_scheduler=bogus", "--data", tmp_path / "nowhere",
                    cwd=tmp_path / "p")
    assert code == 1 and "does not exist" in out


def test_pickled_base_needs_allow_pickle(cli, tmp_path):
    """A .ckpt base is refused with a message naming the opt-in; --allow-pickle reads it (weights only)."""
    import torch

    from lorakiln.formats.keymap import UNetLayout, state_dict_to_ldm
    from lorakiln.train.families import FAMILIES

    comps = FAMILIES.get("tiny-sd15").load("tiny-sd15")
    ldm = state_dict_to_ldm("sd15", comps.unet.state_dict(), comps.vae.state_dict(),
                            [te.state_dict() for te in comps.text_encoders], UNetLayout.from_config(comps.unet.config),
                            len(comps.vae.config.block_out_channels))
    ckpt = tmp_path / "nai-like.ckpt"
    torch.save({"state_dict": {k: v.contiguous() for k, v in ldm.items()}}, ckpt)
    proj = _project(tmp_path, cli)
    code, out = cli("train", "--base", ckpt, "--dry-run", "--no-memory", cwd=proj)
    assert code == 1 and "is a pickled checkpoint" in out and "allow_pickle" in out
    code, out = cli("train", "--base", ckpt, "--allow-pickle", "--dry-run", "--no-memory", cwd=proj)
    assert code == 0, out
    assert "family: sd15" in out and "allow_pickle = true" in out  # detected from the pickle's keys
    # the runner reads it too (weights-only); the tiny weights then do not fit the full-size SD1.5
    code, out = cli("train", "--base", ckpt, "--allow-pickle", "--epochs", "1", "--max-steps", "1", cwd=proj)
    assert code == 1 and "is a pickled checkpoint" not in out and "cannot be loaded as sd15" in out


def test_train_a_kohya_folder_outside_a_project(cli, tmp_path):
    """`kiln train --data DIR --base MODEL` needs no project: runs/ goes into the current folder."""
    write_subset(tmp_path / "kohya" / "3_kiln", SPECS[:2])
    work = tmp_path / "work"
    work.mkdir()
    code, out = cli("train", "--base", "tiny-sd15", cwd=work)
    assert code == 1 and "--data DIR --base MODEL" in out
    args = ("train", "--data", tmp_path / "kohya", "--base", "tiny-sd15", "--epochs", "1", "--max-steps", "1",
            "--dim", "2")
    code, out = cli(*args, cwd=work)
    assert code == 0, out
    (run,) = (work / "runs").iterdir()
    _, meta = read_lora(run / "kohya.safetensors")
    assert json.loads(meta["ss_dataset_dirs"]) == {"3_kiln": {"n_repeats": 3, "img_count": 2}}
    assert meta["ss_output_name"] == "kohya" and meta["ss_steps"] == "1"
    code, out = cli(*args, cwd=work)  # the same command again: nothing to do
    assert code == 0 and "already trained" in out
