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
    assert "resumed and finished 3 steps" in out
    _, meta = read_lora(final)
    assert meta["ss_steps"] == "3"


def test_train_without_exported_data_says_what_to_do(cli, tmp_path):
    code, out = cli("init", "kdemo", "--trigger", "kilnchan", "--base", "tiny-sd15", "--dir", tmp_path / "p")
    code, out = cli("train", cwd=tmp_path / "p")
    assert code == 1 and "kiln export" in out
    code, out = cli("train", "--set", "optimizer.lr_scheduler=bogus", "--data", tmp_path / "nowhere",
                    cwd=tmp_path / "p")
    assert code == 1 and "does not exist" in out
