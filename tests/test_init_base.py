"""`kiln init --base` accepts only what plan and train can use, and says what it knows otherwise."""

from __future__ import annotations

import pytest

from lorakiln.config.bases import check_base
from lorakiln.core.errors import KilnError


def test_unknown_base_is_refused_at_init_with_suggestions(tmp_path, cli):
    code, out = cli("init", "k", "--trigger", "k", "--base", "sdxl-turbo-foo", cwd=tmp_path)
    assert code == 1
    assert "unknown base model 'sdxl-turbo-foo'" in out and "did you mean sdxl" in out
    assert "animagine-xl-3" in out and "kiln presets list" in out
    assert not (tmp_path / "k").exists()  # nothing half-made
    code, out = cli("init", "k", "--trigger", "k", "--base", "ilustrious", cwd=tmp_path)
    assert code == 1 and "did you mean illustrious" in out


@pytest.mark.parametrize("base", ["animagine-xl-3.1", "Pony", "sdxl", "tiny-sd15", "someone/some-model",
                                  "animagine-xl-3.1.safetensors"])
def test_known_names_hub_ids_and_named_files_are_accepted(base):
    check_base(base)


def test_files_and_folders_must_exist(tmp_path):
    with pytest.raises(KilnError, match="base model file not found: ./nope.safetensors"):
        check_base("./nope.safetensors", (tmp_path,))
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "diffusers").mkdir()
    check_base("model.safetensors", (tmp_path,))  # relative to the project folder
    check_base(str(tmp_path / "diffusers"))
    with pytest.raises(KilnError, match="is empty"):
        check_base("  ")


def test_a_family_name_plans_like_its_preset(tmp_path, cli):
    from lorakiln.core.records import ImageRecord
    from lorakiln.services.project import init_project

    p = init_project(tmp_path / "p", "p", ["k"], base="sdxl")
    m = p.manifest()
    m.add(ImageRecord(id="danbooru-1", source="danbooru", width=64, height=64, tags={"general": ["1girl"]}))
    m.save()
    code, out = cli("plan", "--dry-run", cwd=p.root)
    assert code == 0 and "xl-100" in out  # was "cannot tell whether base sdxl is SD1.5 or SDXL"
