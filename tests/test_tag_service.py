"""`kiln tag` end to end on a project: stored scores, re-derivation, force, resume, bad items."""

import shutil

import pytest
from interrupts import StopAfter
from tiny_tagger import make_tagger_folder

from lorakiln.config.tag import TagConfig
from lorakiln.core.errors import KilnError
from lorakiln.core.progress import NullProgress
from lorakiln.core.records import ImageRecord, Status
from lorakiln.demo.images import Spec, make_image
from lorakiln.services.project import open_project
from lorakiln.services.tag import run_tag
from lorakiln.tagging.merge import initial_tags

BACKGROUNDS = ["white_background", "outdoors", "indoors"]


@pytest.fixture
def tagged_project(project, tmp_path):
    """A project with 7 kept demo images (one with booru tags) and a tiny tagger folder."""
    m = project.manifest()
    for i in range(7):
        p = project.images_dir / f"{i}.png"
        make_image(Spec(seed=i, outfit="coat", background=BACKGROUNDS[i % 3], width=256, height=320)).save(p)
        tags = {"general": ["smile", "rating:safe"], "character": ["kafka"]} if i == 0 else {}
        m.add(ImageRecord(id=f"local-{i}", source="local", file=project.rel(p), tags=tags))
    m.save()
    return project, make_tagger_folder(tmp_path / "models" / "tiny")


def test_kiln_tag_stores_scores_and_prints_a_summary(tagged_project, cli):
    project, model = tagged_project
    code, out = cli("tag", "--model", str(model), "--batch-size", "3", cwd=project.root)
    assert code == 0, out
    assert "model ran on 7" in out and "outdoors" in out and "images/s" in out
    recs = {r.id: r for r in open_project(project.root).manifest()}
    assert all(r.tagger and r.tagger.model == "local:tiny" for r in recs.values())
    cfg = open_project(project.root).resolve("tag")
    assert cfg.model == str(model)  # --model was saved to [tag]
    assert initial_tags(recs["local-0"], cfg)[:2] == ["kafka", "smile"]  # booru first, rating dropped
    assert "white_background" in initial_tags(recs["local-0"], cfg)


def test_new_threshold_rederives_from_stored_scores_without_the_model(tagged_project, cli):
    project, model = tagged_project
    assert cli("tag", "--model", str(model), cwd=project.root)[0] == 0
    before = open_project(project.root).manifest()
    (model / "model.onnx").unlink()  # proof: the model cannot run any more
    code, out = cli("tag", "--threshold", "0.5", cwd=project.root)
    assert code == 0, out
    assert "model ran on 0, stored scores reused for 7" in out and "threshold=0.5" in out
    p = open_project(project.root)
    cfg = p.resolve("tag")
    assert cfg.threshold == 0.5
    for rec in p.manifest():
        assert rec.tagger == before[rec.id].tagger
        assert "long_hair" not in initial_tags(rec, cfg)  # 0.45: in at 0.35, out at 0.5
        assert "long_hair" in initial_tags(rec, TagConfig())
    code, out = cli("tag", "--force", cwd=project.root)
    assert code == 1 and "model.onnx missing in" in out and str(model) in out


def test_new_threshold_says_when_edited_captions_keep_their_old_tags(tagged_project, cli):
    project, model = tagged_project
    assert cli("tag", "--model", str(model), cwd=project.root)[0] == 0
    assert cli("caption", "trigger", "--id", "local-1", "--id", "local-2", cwd=project.root)[0] == 0
    code, out = cli("tag", "--threshold", "0.5", cwd=project.root)
    assert code == 0, out
    assert "2 images already have edited captions" in " ".join(out.split()) and "kiln caption reset" in out


def test_registered_name_mapped_to_a_local_folder_and_balanced(tagged_project, cli):
    project, model = tagged_project
    project.set_section("tag", {"local_models": {"wd-vit-v3": str(model)}})
    code, out = cli("tag", "--model", "wd-vit-v3", "--threshold", "balanced", cwd=project.root)
    assert code == 0, out
    p = open_project(project.root)
    rec = p.manifest()["local-1"]
    assert rec.tagger.model == "wd-vit-v3"
    assert p.resolve("tag").threshold == "balanced"
    code, out = cli("tag", "--model", str(model), "--threshold", "balanced", cwd=project.root)
    assert code == 1 and "local:tiny" in out and "no published balanced threshold" in out


def test_missing_hub_model_is_a_clear_error(tagged_project, cli, monkeypatch, tmp_path):
    project, _ = tagged_project
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("KILN_TAG__CACHE_DIR", str(tmp_path / "empty-cache"))
    code, out = cli("tag", "--model", "wd-eva02-large-v3", cwd=project.root)
    assert code == 1
    flat = " ".join(out.split())
    assert "model.onnx + selected_tags.csv" in flat and "local_models" in flat
    assert "model" not in (open_project(project.root).section_doc("tag"))  # nothing saved on failure


class _Killed(Exception):
    pass


def test_an_interrupted_run_resumes_where_the_last_save_left_it(tagged_project):
    project, model = tagged_project
    cfg = project.resolve("tag", {"model": str(model), "batch_size": 2})
    snapshot = []  # the manifest as kill -9 would have left it
    progress = StopAfter(5, error=_Killed, on_stop=lambda: snapshot.append(project.manifest_path.read_bytes()))
    with pytest.raises(_Killed):
        run_tag(project, cfg, progress, save_every=0)
    project.manifest_path.write_bytes(snapshot[0])
    on_disk = project.manifest()
    assert sum(r.tagger is not None for r in on_disk) == 4  # saved after each image but the last
    report = run_tag(project, cfg, NullProgress())
    assert (report.ran, report.reused) == (3, 4)
    assert all(r.tagger is not None for r in project.manifest())
    again = run_tag(project, cfg, NullProgress())
    assert (again.ran, again.reused, again.origin) == (0, 7, None)  # idempotent: nothing loaded


def test_bad_image_is_recorded_and_the_batch_goes_on(tagged_project):
    project, model = tagged_project
    m = project.manifest()
    bad = project.images_dir / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    m.add(ImageRecord(id="local-bad", source="local", file=project.rel(bad)))
    m.add(ImageRecord(id="local-nofile", source="local"))
    m.save()
    report = run_tag(project, project.resolve("tag", {"model": str(model)}), NullProgress())
    assert report.ran == 7 and {rid for rid, _ in report.failed} == {"local-bad", "local-nofile"}
    recs = project.manifest()
    assert recs["local-bad"].status == Status.error and recs["local-bad"].reason.startswith("tag: ")
    assert "local-bad" not in report.tag_counts and report.tag_counts["1girl"] == 7


def test_switching_taggers_keeps_both_score_sets(tagged_project, tmp_path):
    project, model = tagged_project
    z3d = make_tagger_folder(tmp_path / "models" / "z3d", e621=True)
    first = run_tag(project, project.resolve("tag", {"model": str(model)}), NullProgress())
    second = run_tag(project, project.resolve("tag", {"model": str(z3d)}), NullProgress())
    assert first.ran == 7 and second.ran == 7 and second.tag_counts["canine"] == 7
    shutil.rmtree(model)
    back = run_tag(project, project.resolve("tag", {"model": str(model)}), NullProgress())
    assert (back.ran, back.reused) == (0, 7) and back.tag_counts["kilnchan"] == 7
    assert all(r.tagger.model == "local:tiny" for r in project.manifest())


def test_list_models_and_bad_options(cli, project):
    code, out = cli("tag", "--list-models", cwd=project.root)
    assert code == 0 and "wd-eva02-large-v3" in out and "z3d-e621-convnext" in out and "0.2653" in out
    code, out = cli("tag", "--threshold", "lots", cwd=project.root)
    assert code == 1 and "[tag] threshold" in out


def test_force_reruns_the_model(tagged_project):
    project, model = tagged_project
    cfg = project.resolve("tag", {"model": str(model)})
    run_tag(project, cfg, NullProgress())
    with pytest.raises(KilnError, match="missing"):
        (model / "selected_tags.csv").unlink()
        run_tag(project, cfg, NullProgress(), force=True)
