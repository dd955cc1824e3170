"""The `kiln caption ...` subcommands and `kiln export`, run in-process."""

import csv

import pytest
from test_caption_data import add_images, kafka_records

from lorakiln.services.project import open_project


@pytest.fixture
def proj(project):
    add_images(project, kafka_records(4))
    return project


def caps(project):
    return {r.id: r.caption for r in open_project(project.root).manifest()}


def ok(cli, root, *args):
    code, out = cli(*args, cwd=root)
    assert code == 0, out
    return out


def test_edit_commands_and_history(cli, proj):
    root = proj.root
    out = ok(cli, root, "caption", "trigger", "--class", "1girl")
    assert "trigger: 4 of 4 captions changed" in out and "project.toml [caption] keep_tokens = 2" in out
    assert all(c[:2] == ["kafka_hsr", "1girl"] for c in caps(proj).values())

    assert "remove: " in ok(cli, root, "caption", "remove", "--preset", "default", "--category", "artist")
    assert not any("signature" in c or "artist_0" in c for c in caps(proj).values())
    ok(cli, root, "caption", "consolidate", "jacket", "shirt", "gloves", "--into", "kafkacoat", "--all")
    assert "kafkacoat" in caps(proj)["danbooru-100"] and "jacket" not in caps(proj)["danbooru-100"]
    ok(cli, root, "caption", "replace", "smile", "grin")
    assert "grin" in caps(proj)["danbooru-101"]
    ok(cli, root, "caption", "overlap")
    assert "long_hair" not in caps(proj)["danbooru-101"] and "very_long_hair" in caps(proj)["danbooru-101"]
    assert "elbow_gloves" in caps(proj)["danbooru-101"] and "bow" in caps(proj)["danbooru-101"]

    hist = ok(cli, root, "caption", "history")
    for op in ("trigger", "remove", "consolidate", "replace", "overlap"):
        assert op in hist
    out = ok(cli, root, "caption", "undo", "2")
    assert "undid #5 overlap, #4 replace" in out
    assert "smile" in caps(proj)["danbooru-101"]
    assert "undone" in ok(cli, root, "caption", "history", "--all")


def test_prune_core_suggest_then_apply(cli, proj):
    out = ok(cli, proj.root, "caption", "prune-core", "--suggest")
    assert "hair colour, 100% >= 35%" in out and "hairstyle, 25% < 35%" in out  # ponytail varies
    assert "4 marked: long_hair, purple_eyes, purple_hair, very_long_hair" in out
    assert set(caps(proj).values()) == {None}  # --suggest changes nothing
    out = ok(cli, proj.root, "caption", "prune-core", "--dry-run")
    assert "would change" in out and set(caps(proj).values()) == {None}
    ok(cli, proj.root, "caption", "prune-core")
    assert not any({"purple_hair", "long_hair", "purple_eyes"} & set(c) for c in caps(proj).values())
    ok(cli, proj.root, "caption", "prune-core", "sunglasses", "--subset", "main")
    assert not any("sunglasses" in c for c in caps(proj).values())


def test_order_freq_show_set_reset(cli, proj, tmp_path):
    root = proj.root
    ok(cli, root, "caption", "trigger")
    out = ok(cli, root, "caption", "order", "--style", "pony", "--rating")
    assert "keep_tokens" in out
    first = caps(proj)["danbooru-103"]
    assert first[:2] == ["score_8_up", "score_7_up"] and "rating_explicit" in first  # top of 4: percentile 0.875
    code, out = cli("caption", "order", "--style", "sdxl", cwd=root)
    assert code != 0 and "unknown order style 'sdxl'" in out

    out = ok(cli, root, "caption", "freq", "--top", "5")
    assert "kafka_hsr" in out and "100%" in out
    ok(cli, root, "caption", "freq", "--csv", str(tmp_path / "f.csv"))
    rows = list(csv.DictReader(open(tmp_path / "f.csv")))
    assert rows[0]["count"] == "4" and {r["tag"] for r in rows} >= {"kafka_hsr", "purple_hair"}

    ok(cli, root, "caption", "set", "danbooru-100", r"kafka_hsr, kafka \(honkai: star rail\), solo")
    out = ok(cli, root, "caption", "show", "danbooru-100")
    assert r"kafka_hsr, kafka \(honkai: star rail\), solo" in out and "edited caption" in out
    code, out = cli("caption", "show", "nope", cwd=root)
    assert code != 0 and "no image with id 'nope'" in out

    ok(cli, root, "caption", "reset", "--id", "danbooru-100")
    assert caps(proj)["danbooru-100"][0] == "kafka_(honkai:_star_rail)"


def test_remove_list_presets_and_bad_regex(cli, proj):
    out = ok(cli, proj.root, "caption", "remove", "--list-presets")
    assert "watermark" in out and "default" in out
    code, out = cli("caption", "remove", "--regex", "(", cwd=proj.root)
    assert code != 0 and "not a valid regular expression" in out


def test_undo_with_empty_history(cli, proj):
    code, out = cli("caption", "undo", cwd=proj.root)
    assert code != 0 and "nothing to undo" in out
    assert "no caption edits yet" in ok(cli, proj.root, "caption", "history")


def test_export_command(cli, proj):
    ok(cli, proj.root, "caption", "trigger")
    out = ok(cli, proj.root, "export")
    assert "dataset/1_main: 4 images" in out and "4 linked" in out
    out = ok(cli, proj.root, "export")
    assert "0 linked" in out and "4 unchanged" in out
