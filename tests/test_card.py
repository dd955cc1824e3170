"""kiln card: card.md and info.txt from a fixture run folder, a project and its caption history."""

from __future__ import annotations

import json

from PIL import Image
from test_merge_core import lora_sd

from lorakiln.captions.history import HISTORY_FILE, Entry, History, now
from lorakiln.config.train import TrainConfig
from lorakiln.core.records import ImageRecord
from lorakiln.formats.lora_file import tensor_hash, write_lora

FREQ = {"10_kafka": {"kafka_hsr": 40, "1girl": 40, "solo": 38, "kafka \\(honkai: star rail\\)": 36,
                     "honkai: star rail": 36, "kafka_coat": 30, "some artist": 25, "highres": 22, "smile": 20,
                     "sunglasses": 15, "long coat": 2, "outdoors": 9},
        "2_extra": {"kafka_hsr": 5, "1girl": 5, "smile": 1}}
META = {"ss_output_name": "kafka", "ss_base_model_version": "sdxl_base_v1-0", "ss_network_dim": "16",
        "ss_network_alpha": "8", "ss_sd_model_name": "animagine-xl-3.1.safetensors",
        "ss_tag_frequency": json.dumps(FREQ),
        "ss_dataset_dirs": json.dumps({"10_kafka": {"n_repeats": 10, "img_count": 40},
                                       "2_extra": {"n_repeats": 2, "img_count": 5}})}


def _history(project):
    h = History(project.root / HISTORY_FILE)
    h.append(Entry(1, "prune-core", now(), {"tags": ["purple hair", "red eyes"]}))
    h.append(Entry(2, "consolidate", now(), {"tags": ["long coat", "purple jacket"], "into": "kafka_coat", "mode": "any"}))
    h.append(Entry(3, "consolidate", now(), {"tags": ["glasses"], "into": "kafka_glasses", "mode": "any"}))
    h.append(Entry(4, "undo", now(), undoes=[3]))


def _manifest(project):
    """Booru categories of the dataset's tags: character, copyright, artist and meta tags are no
    reinforcement tags (the LoRA's ss_tag_frequency does not say which tags are which)."""
    m = project.manifest()
    m.add(ImageRecord(id="danbooru-1", source="danbooru", tags={
        "general": ["smile", "sunglasses"], "character": ["kafka_(honkai:_star_rail)"],
        "copyright": ["honkai:_star_rail"], "artist": ["some_artist"], "meta": ["highres"]}))
    m.save()


FINDINGS = [{"metric": "outfit_lockin", "value": 0.91,
             "message": "the outfit comes back in 91% of pictures that ask for another outfit"},
            {"metric": "style_bleed", "value": 0.4, "message": "the training pictures' style leaks into prompts for other styles"}]


def _config_toml() -> str:
    """A config.resolved.toml as the trainer writes it: the whole [train] model, unset values left out."""
    import tomlkit

    from lorakiln.train.run import _toml_ready

    cfg = TrainConfig(max_train_epochs=10, optimizer={"optimizer": "AdamW8bit"},
                      loss={"noise_offset": 0.05, "min_snr_gamma": None}, network={"network_args": {"factor": 8}})
    doc = {"project": {"name": "kafka", "trigger": ["kafka_hsr"], "base": "animagine-xl-3.1"},
           "train": cfg.model_dump(mode="json"), "fetch": {"api_key": "SECRET123"}}
    return tomlkit.dumps(_toml_ready(doc))


def _run(project, summary: bool = True):
    run = project.runs_dir / "20260101-120000-kafka"
    (run / "eval").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"output_name": "kafka"}))
    (run / "config.resolved.toml").write_text(_config_toml())
    write_lora(run / "kafka-000002.safetensors", lora_sd(1, 4, 2.0), META)
    write_lora(run / "kafka.safetensors", lora_sd(2, 4, 2.0), META)
    if summary:
        (run / "eval" / "summary.json").write_text(json.dumps({"recommended": {
            "checkpoint": "kafka-000002.safetensors", "weight": 0.8, "reason": "best fidelity at full flexibility"},
            "findings": FINDINGS}))
        Image.new("RGB", (8, 8)).save(run / "eval" / "grid-epoch-weight.png")
    return run


def test_card_from_a_run(project, cli):
    _history(project)
    _manifest(project)
    run = _run(project)
    code, out = cli("card", cwd=project.root)
    assert code == 0, out
    card = (run / "card.md").read_text()
    assert "`kafka_hsr`" in card
    assert "Outfit trigger `kafka_coat`: stands for long coat, purple jacket" in card
    assert "kafka_glasses" not in card  # undone
    assert "purple hair, red eyes" in card
    # not trigger, outfit, replaced, generic, background, nor character/copyright/artist/meta tags
    assert "Reinforcement tags: smile, sunglasses\n" in card
    assert "Recommended weight: 0.8, checkpoint kafka-000002.safetensors (best fidelity at full flexibility)" in card
    assert "`<lora:kafka:0.8>`" in card
    assert "Publish `kafka-000002.safetensors`: A1111 calls every checkpoint of this run `kafka`" in card
    assert "| 10_kafka | 40 | 10 | 400 |" in card and "| 2_extra | 5 | 2 | 10 |" in card
    assert "SECRET123" not in card and "api_key" not in card
    # essentials even at their default, then only what differs from TrainConfig()'s defaults
    for row in ("| base | animagine-xl-3.1 |", "| optimizer.learning_rate | 0.0001 |", "| network.network_dim | 16 |",
                "| optimizer.lr_scheduler | cosine |", "| max_train_epochs | 10 |", "| optimizer.optimizer | AdamW8bit |",
                "| loss.noise_offset | 0.05 |", "| loss.min_snr_gamma | unset |", "| network.network_args.factor | 8 |"):
        assert row in card, row
    for default_key in ("huber_c", "loss.loss_type", "data.caption_extension", "save.save_precision", "sample_sampler"):
        assert default_key not in card, default_key
    rows = card.split("## Training settings")[1].split("## File")[0].count("\n| ") - 1  # minus the header
    assert rows == 12, card  # 9 essentials with a value (unet/te lr and resolution unset) + 3 changes
    issues = card.split("## Known issues (measured)")[1].split("##")[0]
    assert "on `kafka-000002.safetensors`" in issues
    assert "- the outfit comes back in 91% of pictures that ask for another outfit" in issues
    assert "- the training pictures' style leaks into prompts for other styles" in issues
    assert "![sample grid](eval/grid-epoch-weight.png)" in card
    assert tensor_hash(run / "kafka-000002.safetensors")[:12] in card  # the recommended checkpoint is the one described
    assert "animagine-xl-3.1.safetensors" in card
    info = (run / "info.txt").read_text()
    for line in ("Trigger: kafka_hsr", "  kafka_coat: long coat, purple jacket", "Reinforcement tags: smile",
                 "Recommended weight: 0.8", "Dataset: 10_kafka: 40 images x 10 repeats", "Known issues (measured):",
                 "  - the outfit comes back in 91% of pictures", "  loss.noise_offset: 0.05"):
        assert line in info


def test_card_without_evaluation(project, cli):
    run = _run(project, summary=False)
    code, out = cli("card", run.name, "--project", project.root)
    assert code == 0, out
    card = (run / "card.md").read_text()
    assert "evaluation was not run" in card and "sample grid" not in card and "Known issues" not in card
    assert tensor_hash(run / "kafka.safetensors")[:12] in card  # the final LoRA without a recommendation


def test_card_for_a_plain_lora(tmp_path, cli):
    from lorakiln.services.merge import merge

    a = tmp_path / "kafka.safetensors"
    write_lora(a, lora_sd(1, 4, 2.0), META)
    merge([(a, 0.6)], tmp_path / "merged.safetensors")
    code, out = cli("card", "--lora", tmp_path / "merged.safetensors", cwd=tmp_path)
    assert code == 0, out
    card = (tmp_path / "merged.card.md").read_text()
    assert "`kafka_hsr` (guessed from the tag frequency)" in card  # on 40 of 40 images; 1girl is generic
    assert "## Provenance" in card and "kafka.safetensors x0.6" in card
    assert (tmp_path / "merged.info.txt").is_file()


def test_card_errors(tmp_path, project, cli):
    code, out = cli("card", cwd=project.root)
    assert code == 1 and "no run with a LoRA file" in out
    code, out = cli("card", "nope", cwd=project.root)
    assert code == 1 and "no run 'nope'" in out


def test_card_and_dora_bake_read_unreadable_network_args_as_none(tmp_path, cli):
    """ss_network_args nested 3000 deep (a hostile file): the card is written, no RecursionError."""
    from lorakiln.train.dora_bake import baked_metadata

    deep = "[" * 3000 + "]" * 3000
    a = tmp_path / "deep.safetensors"
    write_lora(a, lora_sd(1, 4, 2.0), {**META, "ss_network_args": deep})
    code, out = cli("card", "--lora", a, cwd=tmp_path)
    assert code == 0, out
    assert baked_metadata({"ss_network_args": deep}, 4)["ss_network_module"] == "networks.lora"
