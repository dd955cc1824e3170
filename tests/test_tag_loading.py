"""Where tagger files come from: registered names, local folders, the HF cache offline."""

import shutil

import pytest
from tiny_tagger import make_tagger_folder

from lorakiln.core.errors import KilnError
from lorakiln.tagging.loading import identify, load_tagger, locate

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_identify_names_paths_and_repo_ids(tmp_path):
    spec, folder = identify("wd-swinv2-v3")
    assert spec.repo_id == "SmilingWolf/wd-swinv2-tagger-v3" and folder is None
    spec, folder = identify("SmilingWolf/wd-vit-tagger-v3")
    assert spec.name == "wd-vit-v3" and spec.balanced == 0.2614
    spec, folder = identify("someone/new-tagger")
    assert spec.repo_id == "someone/new-tagger" and spec.labels_file == "selected_tags.csv"
    spec, folder = identify("wd-vit-v3", {"wd-vit-v3": "models/vit"}, root=tmp_path)
    assert spec.name == "wd-vit-v3" and folder == tmp_path / "models/vit"
    make_tagger_folder(tmp_path / "mine")
    spec, folder = identify("mine", root=tmp_path)
    assert spec.name == "local:mine" and folder == tmp_path / "mine"
    with pytest.raises(KilnError, match=r"unknown tagger 'nonsense'.*wd-swinv2-v3"):
        identify("nonsense")


def test_local_folder_missing_files_names_them_and_the_folder(tmp_path):
    folder = make_tagger_folder(tmp_path / "vit")
    (folder / "model.onnx").unlink()
    spec, local = identify("wd-vit-v3", {"wd-vit-v3": str(folder)})
    with pytest.raises(KilnError) as e:
        locate(spec, local)
    msg = str(e.value)
    assert "model.onnx missing in" in msg and str(folder) in msg and "model.onnx + selected_tags.csv" in msg


def test_hub_model_missing_offline_says_what_to_put_where(tmp_path):
    spec, _ = identify("wd-swinv2-v3")
    with pytest.raises(KilnError) as e:
        locate(spec, None, cache_dir=str(tmp_path / "hf"))
    msg = str(e.value)
    for part in ("model.onnx + selected_tags.csv", "HF_HUB_OFFLINE", "SmilingWolf/wd-swinv2-tagger-v3",
                 str(tmp_path / "hf" / "models--SmilingWolf--wd-swinv2-tagger-v3"),
                 'local_models = { "wd-swinv2-v3" = "/path/to/folder" }', "[tag]", "--model /path/to/folder"):
        assert part in msg, part


def _fake_cache(cache, repo="SmilingWolf/wd-vit-tagger-v3", ref="main"):
    """The layout huggingface_hub itself writes: refs/<branch> -> snapshots/<commit>/files."""
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    make_tagger_folder(repo_dir / "snapshots" / COMMIT)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / ref).write_text(COMMIT)
    return repo_dir


def test_hub_files_already_in_the_cache_work_offline(tmp_path, monkeypatch):
    _fake_cache(tmp_path / "hf")
    spec, folder = identify("wd-vit-v3")
    files = locate(spec, folder, cache_dir=str(tmp_path / "hf"))
    assert files.origin == f"hub SmilingWolf/wd-vit-tagger-v3@{COMMIT}"
    assert files.model.name == "model.onnx" and files.labels.name == "selected_tags.csv"
    assert load_tagger(files, "cpu").name == "wd-vit-v3"
    pinned = locate(spec.with_revision(COMMIT), None, cache_dir=str(tmp_path / "hf"))
    assert pinned.model == files.model
    with pytest.raises(KilnError, match="revision v9"):
        locate(spec.with_revision("v9"), None, cache_dir=str(tmp_path / "hf"))


def test_e621_folder_without_wd_labels_uses_the_e621_format(tmp_path):
    folder = make_tagger_folder(tmp_path / "z3d", e621=True)
    spec, local = identify(str(folder))
    assert (spec.label_format, spec.labels_file) == ("e621", "tags-selected.csv")
    shutil.copy(folder / "tags-selected.csv", folder / "selected_tags.csv")
    assert identify(str(folder))[0].label_format == "wd"  # a WD labels file wins when both exist


# -- an unreachable hub (the `unreachable_hub` fixture in conftest.py) ----------------------------
def test_unreachable_hub_gives_the_clear_error_without_retries(tmp_path, unreachable_hub, capfd, caplog):
    spec, _ = identify("wd-swinv2-v3")
    with pytest.raises(KilnError) as e:
        locate(spec, None, cache_dir=str(tmp_path / "hf"))
    msg = str(e.value)
    assert f"{unreachable_hub} cannot be reached" in msg and "local_models" in msg
    out = capfd.readouterr()
    assert "Retrying" not in out.err + out.out + caplog.text  # huggingface_hub retried 5 times with backoff: 23 s


def test_unreachable_hub_still_uses_the_cache(tmp_path, unreachable_hub):
    _fake_cache(tmp_path / "hf")
    spec, folder = identify("wd-vit-v3")
    files = locate(spec, folder, cache_dir=str(tmp_path / "hf"))
    assert files.origin == f"hub SmilingWolf/wd-vit-tagger-v3@{COMMIT}"
