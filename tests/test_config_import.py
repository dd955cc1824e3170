"""kiln config import: kohya_ss GUI JSON (seed 000's, as printed), LoRA Easy Training Scripts TOML,
kohya dataset TOML; every key mapped, ignored with a reason, or unknown; and kiln config show."""

import json

import pytest

from lorakiln.config.importers import IMPORTERS, import_text
from lorakiln.config.importers.kohya_gui import repair
from lorakiln.config.importers.mapping import OPTIMIZERS, SCHEDULERS
from lorakiln.config.sections import sections
from lorakiln.core.errors import ConfigError

# seed 000's kohya_ss config exactly as the article prints it: no outer braces, `"output_dir": ,`
SEED000 = """\
  "LoRA_type": "Standard",
  "adaptive_noise_scale": 0,
  "additional_parameters": "",
  "block_alphas": "",
  "block_dims": "",
  "block_lr_zero_threshold": "",
  "bucket_no_upscale": true,
  "bucket_reso_steps": 64,
  "cache_latents": true,
  "cache_latents_to_disk": false,
  "caption_dropout_every_n_epochs": 0.0,
  "caption_dropout_rate": 0,
  "caption_extension": "",
  "clip_skip": 2,
  "color_aug": false,
  "conv_alpha": 1,
  "conv_block_alphas": "",
  "conv_block_dims": "",
  "conv_dim": 1,
  "decompose_both": false,
  "dim_from_weights": false,
  "down_lr_weight": "",
  "enable_bucket": true,
  "epoch": 10,
  "factor": -1,
  "flip_aug": false,
  "full_bf16": false,
  "full_fp16": false,
  "gradient_accumulation_steps": 1.0,
  "gradient_checkpointing": true,
  "keep_tokens": 2,
  "learning_rate": 0.0001,
  "lora_network_weights": "",
  "lr_scheduler": "cosine",
  "lr_scheduler_num_cycles": "",
  "lr_scheduler_power": "",
  "lr_warmup": 10,
  "max_bucket_reso": 2048,
  "max_data_loader_n_workers": "0",
  "max_resolution": "1024,1024",
  "max_timestep": 1000,
  "max_token_length": "75",
  "max_train_epochs": "",
  "mem_eff_attn": false,
  "mid_lr_weight": "",
  "min_bucket_reso": 256,
  "min_snr_gamma": 0,
  "min_timestep": 0,
  "mixed_precision": "fp16",
  "model_list": "custom",
  "module_dropout": 0,
  "multires_noise_discount": 0,
  "multires_noise_iterations": 0,
  "network_alpha": 2,
  "network_dim": 4,
  "network_dropout": 0,
  "no_token_padding": false,
  "noise_offset": 0,
  "noise_offset_type": "Original",
  "num_cpu_threads_per_process": 2,
  "optimizer": "AdamW8bit",
  "optimizer_args": "",
  "output_dir": ,
  "output_name": "kie_v1_xl",
  "persistent_data_loader_workers": false,
  "prior_loss_weight": 1.0,
  "random_crop": false,
  "rank_dropout": 0,
  "reg_data_dir": "",
  "resume": "",
  "sample_every_n_epochs": 0,
  "sample_every_n_steps": 0,
  "sample_prompts": "",
  "sample_sampler": "euler_a",
  "save_every_n_epochs": 1,
  "save_every_n_steps": 0,
  "save_last_n_steps": 0,
  "save_last_n_steps_state": 0,
  "save_model_as": "safetensors",
  "save_precision": "fp16",
  "save_state": false,
  "scale_v_pred_loss_like_noise_pred": false,
  "scale_weight_norms": 0,
  "sdxl": true,
  "sdxl_cache_text_encoder_outputs": false,
  "sdxl_no_half_vae": true,
  "seed": "",
  "shuffle_caption": false,
  "stop_text_encoder_training": 0,
  "text_encoder_lr": 5e-05,
  "train_batch_size": 1,
  "train_data_dir": ,
  "train_on_input": true,
  "training_comment": "",
  "unet_lr": 0.0001,
  "unit": 1,
  "up_lr_weight": "",
  "use_cp": false,
  "use_wandb": false,
  "v2": false,
  "v_parameterization": false,
  "vae_batch_size": 0,
  "wandb_api_key": "",
  "weighted_captions": false,
  "xformers": true
"""


def _keys(text: str) -> list[str]:
    return json.loads(repair(text)[0]).keys()


def _sections(report) -> dict:
    """The imported values through the registered section models (a rename breaks this test)."""
    return {name: sections()[name].model_validate(values) for name, values in report.sections().items()}


def test_seed000_json_imports_with_its_values(tmp_path):
    report = import_text(SEED000, tmp_path / "kie.json")
    assert report.format == "kohya_ss GUI JSON"
    assert "added the missing outer braces { }" in report.repairs
    assert any("output_dir" in r and "train_data_dir" in r for r in report.repairs)
    train = _sections(report)["train"]
    assert (train.network.algo, train.network.network_dim, train.network.network_alpha) == ("lora", 4, 2.0)
    opt = train.optimizer
    assert (opt.learning_rate, opt.unet_lr, opt.text_encoder_lr) == (1e-4, 1e-4, 5e-5)
    assert (opt.optimizer, opt.lr_scheduler, opt.lr_warmup_steps) == ("AdamW8bit", "cosine", 0.1)
    assert train.data.keep_tokens == 2 and train.clip_skip == 2 and train.max_train_epochs == 10
    b = train.buckets
    assert (b.resolution, b.min_bucket_reso, b.max_bucket_reso, b.bucket_reso_steps) == (1024, 256, 2048, 64)
    assert b.bucket_no_upscale and train.gradient_checkpointing and train.no_half_vae
    assert train.train_batch_size == 1 and train.mixed_precision == "fp16" and train.output_name == "kie_v1_xl"
    assert train.cache.cache_latents and not train.data.shuffle_caption


def test_seed000_every_key_is_accounted_for(tmp_path):
    report = import_text(SEED000, tmp_path / "kie.json")
    sources = [e.source for e in report.entries]
    assert sorted(sources) == sorted(_keys(SEED000))  # each key exactly once: nothing silently dropped
    ignored = {e.source: e.reason for e in report.by_status("ignored")}
    assert ignored["output_dir"] == "outputs always go to the project's runs/<run-id>/"
    assert ignored["conv_dim"] == "LoRA_type Standard trains no conv layers"
    assert "min_snr_gamma" not in ignored and ignored["seed"] == "empty"
    mapped = {e.source: e for e in report.by_status("mapped")}
    assert "min_snr_gamma" in mapped  # 0 = min-SNR off, written as such
    assert ignored["wandb_api_key"].startswith("secret")
    assert report.by_status("unknown") == []  # every key of seed 000 is one lorakiln knows
    assert any("caption_extension was empty" in n for n in report.notes)


def test_unknown_keys_and_secrets_are_listed_never_written(tmp_path):
    text = SEED000.replace('"xformers": true', '"xformers": true,\n  "fancy_new_option": 3,\n'
                                               '  "huggingface_token": "hf_SECRETSECRET"')
    report = import_text(text, tmp_path / "kie.json")
    assert [e.source for e in report.by_status("unknown")] == ["fancy_new_option"]
    assert "SECRETSECRET" not in json.dumps([vars(e) for e in report.entries], default=str)
    assert "SECRETSECRET" not in repr(report.values)


def test_values_our_models_reject_become_ignored(tmp_path):
    report = import_text('{"network_dim": 0, "network_alpha": 8, "epoch": 3}', tmp_path / "x.json")
    ignored = {e.source: e.reason for e in report.by_status("ignored")}
    assert ignored["network_dim"].startswith("rejected by [train]")
    assert report.sections() == {"train": {"network": {"network_alpha": 8.0}, "max_train_epochs": 3}}


def test_json_beyond_repair_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"bad.json: not valid JSON, even after repairs"):
        import_text('"LoRA_type": "Standard",\n "epoch": [1,', tmp_path / "bad.json")


EASY = """\
[[subsets]]
name = "subset 1"
image_dir = "F:/lora/kie/10_kie"
num_repeats = 10
keep_tokens = 1
shuffle_caption = true
flip_aug = false
caption_extension = ".txt"

[[subsets]]
image_dir = "F:/lora/kie/2_kie swimsuit"
num_repeats = 2
is_reg = false

[train_mode]
train_mode = "lora"

[general_args.args]
pretrained_model_name_or_path = "F:/models/ponyDiffusionV6XL.safetensors"
mixed_precision = "bf16"
seed = 23
clip_skip = 2
xformers = true
max_token_length = 225
max_train_epochs = 10
full_bf16 = true
cache_latents = true

[general_args.dataset_args]
resolution = [1024, 1024]
batch_size = 2

[network_args.args]
network_dim = 8
network_alpha = 4.0

[network_args.args.network_args]
conv_dim = 4
conv_alpha = 2
dora_wd = true

[optimizer_args.args]
optimizer_type = "LoraEasyCustomOptimizer.came.CAME"
lr_scheduler = "rex_annealing_warm_restarts_(RAWR)"
lr_scheduler_type = "LoraEasyCustomOptimizer.RexAnnealingWarmRestarts.RexAnnealingWarmRestarts"
loss_type = "l2"
learning_rate = 0.0001
unet_lr = 0.0001
text_encoder_lr = 1e-6
min_snr_gamma = 5
warmup_ratio = 0.05

[optimizer_args.args.lr_scheduler_args]
min_lr = 1e-6
gamma = 0.9
d = 0.9

[optimizer_args.args.optimizer_args]
weight_decay = "0.04"
betas = "0.9,0.99"

[saving_args.args]
output_dir = "F:/out"
output_name = "kie_pony"
save_precision = "fp16"
save_model_as = "safetensors"
save_every_n_epochs = 1

[bucket_args.dataset_args]
enable_bucket = true
max_bucket_reso = 2048
bucket_reso_steps = 64

[[anima_args.args.resolution_schedule]]
resolution = 512
"""


def test_easy_training_scripts_toml(tmp_path):
    report = import_text(EASY, tmp_path / "kie.toml")
    assert report.format == "LoRA Easy Training Scripts TOML"
    s = _sections(report)
    assert s["export"].repeats == {"kie": 10, "kie swimsuit": 2}  # subset names from the N_name folders
    train = s["train"]
    assert (train.network.algo, train.network.conv_dim, train.network.conv_alpha) == ("locon", 4, 2)
    assert train.network.dora_wd and train.network.network_dim == 8
    opt = train.optimizer
    assert (opt.optimizer, opt.lr_scheduler, opt.min_lr, opt.lr_scheduler_cycle_decay) == ("CAME", "rex", 1e-6, 0.9)
    assert opt.optimizer_args == "weight_decay=0.04 betas=0.9,0.99" and opt.lr_warmup_steps == 0.05
    assert (train.buckets.resolution, train.train_batch_size, train.max_token_length) == (1024, 2, 225)
    assert train.full_bf16 and train.base.endswith("ponyDiffusionV6XL.safetensors")
    # set on the first subset only: stays with it (the second keeps [train.data]'s values), with a note
    kie = train.data.subsets["kie"]
    assert (kie.keep_tokens, kie.shuffle_caption, kie.flip_aug) == (1, True, False) and train.data.keep_tokens is None
    assert "kie swimsuit" not in train.data.subsets
    assert any(n.startswith("keep_tokens is set per subset (kie = 1); 'kie swimsuit' keeps") for n in report.notes)
    assert train.loss.min_snr_gamma == 5 and train.save.save_every_n_epochs == 1
    ignored = {e.source: e.reason for e in report.by_status("ignored")}
    assert "d" in ignored["optimizer_args.args.lr_scheduler_args.d"] or ignored["optimizer_args.args.lr_scheduler_args.d"]
    assert "SDPA" in ignored["general_args.args.xformers"]
    assert [e.source for e in report.by_status("unknown")] == ["anima_args.args.resolution_schedule"]


DATASET = """\
[general]
shuffle_caption = true
keep_tokens = 1
caption_extension = ".caption"

[[datasets]]
resolution = 768
batch_size = 3
enable_bucket = true
min_bucket_reso = 320
max_bucket_reso = 1280

  [[datasets.subsets]]
  image_dir = "/data/zeta/outfit1"
  num_repeats = 5

  [[datasets.subsets]]
  image_dir = "/data/zeta/outfit3"
  num_repeats = 1
  flip_aug = true

  [[datasets.subsets]]
  image_dir = "/data/reg/1girl"
  num_repeats = 1
  is_reg = true
  class_tokens = "1girl"
"""


def test_kohya_dataset_toml(tmp_path):
    report = import_text(DATASET, tmp_path / "dataset.toml")
    assert report.format == "kohya dataset TOML"
    s = _sections(report)
    assert s["export"].repeats == {"outfit1": 5, "outfit3": 1}
    assert s["export"].caption_extension == ".caption" and s["train"].data.caption_extension == ".caption"
    assert (s["train"].buckets.resolution, s["train"].train_batch_size) == (768, 3)
    assert s["train"].buckets.min_bucket_reso == 320
    # flip_aug on one subset stays with that subset; options every subset shares are the defaults
    data = s["train"].data
    assert data.subsets["outfit3"].flip_aug and not data.flip_aug and "outfit1" not in data.subsets
    assert data.shuffle_caption and data.keep_tokens == 1
    assert any("flip_aug is set per subset (outfit3 = True); 'outfit1' keeps" in n for n in report.notes)
    assert {e.source: e.target for e in report.by_status("mapped")}["datasets[0].subsets[1].flip_aug"] == \
        "train.data.subsets.outfit3.flip_aug"
    reg = [e for e in report.by_status("ignored") if e.source.startswith("datasets[0].subsets[2]")]
    assert len(reg) == 4 and all("regularisation" in e.reason for e in reg)
    assert any("dataset_config" in n for n in report.notes)


def test_format_registry_and_known_names():
    assert IMPORTERS.names() == ["dataset-toml", "easy-scripts", "kohya-gui", "sd-scripts"]
    from lorakiln.train.optim import OPTIMIZERS as TRAIN_OPTIMIZERS
    from lorakiln.train.schedulers import SCHEDULERS as TRAIN_SCHEDULERS

    assert set(SCHEDULERS) == set(TRAIN_SCHEDULERS.names())
    assert set(OPTIMIZERS) == set(TRAIN_OPTIMIZERS.names())


def test_sd_scripts_flat_config(tmp_path):
    report = import_text('network_dim = 32\nnetwork_alpha = 16\noptimizer_type = "Prodigy"\n'
                         'lr_scheduler = "constant_with_warmup"\n', tmp_path / "config.toml")
    assert report.format == "sd-scripts config TOML"
    opt = _sections(report)["train"].optimizer
    assert (opt.optimizer, opt.lr_scheduler) == ("Prodigy", "constant_with_warmup")


# -- into a project, and kiln config show ---------------------------------------------
@pytest.fixture
def kie(tmp_path):
    from lorakiln.services.project import init_project

    return init_project(tmp_path / "kie", "kie", ["kierose"], base="animagine-xl-3.1")


def test_cli_config_import_writes_project_toml(kie, cli, tmp_path):
    src = tmp_path / "kie.json"
    src.write_text(SEED000)
    kie.config_path.write_text(kie.config_path.read_text() + "\n[train.network]\n# my note\nconv_dim = 8\n")
    code, out = cli("config", "import", src, "--print", cwd=kie.root)
    assert code == 0 and "mapped" in out and "--print" in out and "network_dim" not in kie.config_path.read_text()
    code, out = cli("config", "import", src, cwd=kie.root)
    assert code == 0, out
    assert "repaired" in out and "unknown (0)" in out
    text = kie.config_path.read_text()
    assert "# my note" in text and "conv_dim = 8" in text  # the user's own lines stay
    from lorakiln.services.project import open_project

    train = open_project(kie.root).resolve("train")
    assert train.network.network_dim == 4 and train.optimizer.text_encoder_lr == 5e-5
    code, out = cli("config", "import", src, "--json", "--print", cwd=kie.root)
    assert json.loads(out)["values"]["train.network.network_dim"] == 4


def test_config_show_sources(kie, cli, monkeypatch):
    from lorakiln.services.config_show import show_section

    kie.set_section("plan", {"strength": 1.1})
    monkeypatch.setenv("KILN_PLAN__TE_RATIO", "0.6")
    rows = {k: (v, src) for k, v, src in show_section(kie, "plan")}
    assert rows["strength"] == (1.1, "project.toml")
    assert rows["te_ratio"] == (0.6, "env")
    assert rows["schedule"] == ("xl-100", "preset")
    assert rows["lookup"] == ("interpolate", "default")
    train = {k: src for k, _, src in show_section(kie, "train")}
    assert train["network.network_dim"] == "preset" and train["loss.huber_c"] == "default"
    code, out = cli("config", "show", "plan", "--json", cwd=kie.root)
    assert json.loads(out)["plan"]["te_ratio"] == {"value": 0.6, "source": "env"}
    code, out = cli("config", "show", "nope", cwd=kie.root)
    assert code == 1 and "unknown section" in out


def test_set_values_validates_before_writing(kie):
    before = kie.config_path.read_text()
    with pytest.raises(ConfigError, match="network_dim"):
        kie.set_values({("train", "network", "network_dim"): 0})
    assert kie.config_path.read_text() == before and "train" not in kie.doc
