"""[tag] also: extra taggers run after the main one; their tags join by their own thresholds."""

import shutil

import pytest
import tomlkit
from tiny_tagger import make_tagger_folder

from lorakiln.config.tag import TagConfig
from lorakiln.core.errors import KilnError
from lorakiln.core.progress import NullProgress
from lorakiln.core.records import ImageRecord, TaggerScores
from lorakiln.demo.images import Spec, make_image
from lorakiln.services.project import open_project
from lorakiln.services.tag import run_tag
from lorakiln.tagging.merge import (
    initial_tags,
    store_aside,
    store_scores,
    stored_names,
    tag_categories,
    tag_scores,
    tagger_tags,
)

Z3D = "z3d-e621-convnext"


def _record() -> ImageRecord:
    """WD scores active, Z3D scores kept aside (as `kiln tag` with also leaves them)."""
    rec = ImageRecord(id="local-1", source="local", tags={"general": ["smile"]})
    store_scores(rec, TaggerScores(
        model="wd-swinv2-v3", rating={"general": 0.9},
        general={"1girl": 0.98, "solo": 0.6, "tail": 0.4, "fox_ears": 0.2},
        character={"kilnchan": 0.9}), {})
    store_aside(rec, TaggerScores(
        model=Z3D, general={"solo": 0.9, "tail": 0.3, "canine": 0.8, "some_artist": 0.75, "bad_tag": 0.99,
                            "fox_ears": 0.65},
        character={"kilnfox": 0.95, "kilnchan": 0.5}),
        {"canine": "species", "some_artist": "artist", "bad_tag": "invalid", "solo": "general"})
    return rec


def test_extra_tagger_tags_join_above_their_own_thresholds():
    rec = _record()
    assert rec.tagger.model == "wd-swinv2-v3" and Z3D in rec.extra["taggers"]
    assert tagger_tags(rec, TagConfig()) == {"1girl": 0.98, "kilnchan": 0.9, "solo": 0.6, "tail": 0.4}
    cfg = TagConfig(also=[{"model": Z3D, "threshold": 0.7}])
    tags = tagger_tags(rec, cfg)
    # kilnfox: Z3D character 0.95 >= 0.85; canine/some_artist >= 0.7; fox_ears 0.65 < 0.7 for Z3D,
    # and 0.2 < 0.35 for WD; bad_tag is e621 'invalid' (dropped); solo keeps the higher 0.9
    assert tags == {"1girl": 0.98, "kilnfox": 0.95, "kilnchan": 0.9, "solo": 0.9, "canine": 0.8,
                    "some_artist": 0.75, "tail": 0.4}
    assert list(tags) == list(sorted(tags, key=lambda t: -tags[t]))
    assert tag_scores(rec, cfg)["smile"] == 1.0 and initial_tags(rec, cfg)[0] == "smile"
    # the main model's threshold does not apply to the extra model and vice versa
    low = TagConfig(threshold=0.6, also=[{"model": Z3D, "threshold": 0.3, "character_threshold": 0.99}])
    tags = tagger_tags(rec, low)
    assert tags["fox_ears"] == 0.65 and "kilnfox" not in tags
    assert tags["tail"] == 0.3  # WD's 0.4 is under WD's 0.6; Z3D's 0.3 passes Z3D's 0.3
    # an unset threshold falls back to [tag]'s
    assert "fox_ears" not in tagger_tags(rec, TagConfig(threshold=0.7, also=[{"model": Z3D}]))
    assert "fox_ears" in tagger_tags(rec, TagConfig(threshold=0.6, also=[{"model": Z3D}]))


def test_categories_come_from_the_model_that_found_the_tag():
    rec = _record()
    cfg = TagConfig(also=[{"model": Z3D, "threshold": 0.7}])
    cats = tag_categories(rec, cfg)
    assert cats["canine"] == "species" and cats["some_artist"] == "artist" and cats["kilnfox"] == "character"
    assert cats["bad_tag"] == "invalid" and cats["1girl"] == "general" and cats["smile"] == "general"
    assert tag_categories(rec)["canine"] == "species"  # without cfg: every stored tagger counts
    assert "canine" not in tag_categories(rec, TagConfig())  # with cfg and no also: only the main model
    assert "canine" not in initial_tags(rec, TagConfig(drop_categories=["species"], also=cfg.also))


def test_missing_extra_scores_and_the_main_model_listed_again_change_nothing():
    rec = _record()
    base = tagger_tags(rec, TagConfig())
    assert tagger_tags(rec, TagConfig(also=[{"model": "wd-vit-v3"}])) == base  # never run: no scores
    assert tagger_tags(rec, TagConfig(also=[{"model": "wd-swinv2-v3", "threshold": 0.1}])) == base


def test_stored_names_cover_registered_names_repo_ids_and_folders():
    assert stored_names(Z3D)[0] == Z3D
    assert stored_names("SmilingWolf/wd-vit-tagger-v3")[0] == "wd-vit-v3"
    assert "local:z3d" in stored_names("/models/z3d/") and "local:z3d" in stored_names("./z3d")


def test_config_rejects_bad_extra_thresholds():
    with pytest.raises(ValueError, match="also"):
        TagConfig(also=[{"model": Z3D, "threshold": 0.01}])
    with pytest.raises(ValueError):
        TagConfig(also=[{"model": Z3D, "threshold": "lots"}])
    with pytest.raises(ValueError):
        TagConfig(also=[{"model": Z3D, "treshold": 0.5}])
    assert TagConfig(also=[{"model": Z3D, "threshold": "0.7"}]).also[0].threshold == 0.7


@pytest.fixture
def two_taggers(project, tmp_path):
    m = project.manifest()
    for i in range(4):
        p = project.images_dir / f"{i}.png"
        make_image(Spec(seed=i, outfit="coat", background="outdoors", width=192, height=256)).save(p)
        m.add(ImageRecord(id=f"local-{i}", source="local", file=project.rel(p)))
    m.save()
    wd = make_tagger_folder(tmp_path / "models" / "tiny")
    z3d = make_tagger_folder(tmp_path / "models" / "z3d", e621=True)
    return project, wd, z3d


def test_run_tag_runs_both_models_and_reuses_stored_scores(two_taggers):
    project, wd, z3d = two_taggers
    cfg = project.resolve("tag", {"model": str(wd), "also": [{"model": str(z3d), "threshold": 0.85}]})
    report = run_tag(project, cfg, NullProgress())
    assert (report.ran, len(report.also)) == (4, 1)
    assert (report.also[0].model, report.also[0].ran, report.also[0].reused) == ("local:z3d", 4, 0)
    # Z3D: canine 0.88 and kilnfox 0.92 pass, some_artist 0.82 does not; WD: kilnchan, 1girl
    assert report.tag_counts["canine"] == 4 and report.tag_counts["kilnfox"] == 4
    assert report.tag_counts["kilnchan"] == 4 and report.tag_counts["some_artist"] == 0
    assert report.tag_counts["bad_tag"] == 0 and report.tag_counts["solo"] == 4
    recs = project.manifest()
    assert all(r.tagger.model == "local:tiny" and "local:z3d" in r.extra["taggers"] for r in recs)
    assert tag_categories(recs["local-0"], cfg)["canine"] == "species"
    shutil.rmtree(z3d)  # proof: a second run needs neither model
    shutil.rmtree(wd)
    again = run_tag(project, cfg, NullProgress())
    assert (again.ran, again.reused, again.also[0].ran, again.also[0].reused) == (0, 4, 0, 4)
    assert again.tag_counts == report.tag_counts
    with pytest.raises(KilnError, match="missing"):
        run_tag(project, cfg, NullProgress(), force=True)


def test_force_reruns_the_extra_model_too(two_taggers):
    project, wd, z3d = two_taggers
    cfg = project.resolve("tag", {"model": str(wd), "also": [{"model": str(z3d)}]})
    run_tag(project, cfg, NullProgress())
    forced = run_tag(project, cfg, NullProgress(), force=True)
    assert (forced.ran, forced.also[0].ran, forced.also[0].reused) == (4, 4, 0)


def test_kiln_tag_also_option_is_saved_to_project_toml(two_taggers, cli):
    project, wd, z3d = two_taggers
    code, out = cli("tag", "--model", str(wd), "--also", f"{z3d}:0.8", cwd=project.root)
    assert code == 0, out
    assert "also local:z3d: model ran on 4" in " ".join(out.split())
    doc = tomlkit.parse((project.root / "project.toml").read_text())
    assert doc["tag"]["also"].unwrap() == [{"model": str(z3d), "threshold": 0.8}]
    p = open_project(project.root)
    cfg = p.resolve("tag")
    assert [(a.model, a.threshold) for a in cfg.also] == [(str(z3d), 0.8)]
    assert "some_artist" in initial_tags(p.manifest()["local-1"], cfg)  # 0.82 >= 0.8
    code, out = cli("tag", cwd=project.root)  # the saved setting is used; nothing runs again
    assert code == 0 and "also local:z3d: model ran on 0, stored scores reused for 4" in " ".join(out.split())
    code, out = cli("tag", "--also", str(z3d), cwd=project.root)  # no threshold: [tag]'s applies
    assert code == 0, out
    cfg = open_project(project.root).resolve("tag")
    assert cfg.also[0].threshold is None and cfg.also[0].model == str(z3d)
    code, out = cli("tag", "--also", f"{z3d}:2", cwd=project.root)
    assert code == 1 and "also" in out
