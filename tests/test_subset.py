"""kiln subset move / list / undo: selection by id and tags, the history log, exact undo."""

from __future__ import annotations

import json

import pytest

from lorakiln.config.tag import TagConfig
from lorakiln.core.errors import KilnError
from lorakiln.core.records import ImageRecord, TaggerScores
from lorakiln.services import subset as svc
from lorakiln.services.project import open_project


@pytest.fixture
def proj(project):
    """10 images: 0-2 from behind by booru tags, 3 from behind by tagger score only, 4 with a
    caption that no longer says from_behind (the caption wins), 5 dropped from behind, 6-9 front."""
    m = project.manifest()
    for i in range(10):
        general = ["1girl", "from_behind" if i in (0, 1, 2, 4, 5) else "smile"]
        if i in (1, 2):
            general.append("outdoors")
        rec = ImageRecord(id=f"img-{i}", source="danbooru", tags={"general": general},
                          subset="summer" if i == 2 else "main")
        if i == 3:
            rec.tags = {"general": ["1girl"]}
            rec.tagger = TaggerScores(model="toy", general={"from_behind": 0.93, "smile": 0.02})
        if i == 4:
            rec.caption = ["kafka_hsr", "1girl", "looking at viewer"]
        if i == 6:
            rec.caption = ["kafka_hsr", "From Behind"]  # caption tags compare like booru tags
        if i == 5:
            rec.drop("too small")
        m.add(rec)
    m.save()
    return project


def subsets(project):
    return {r.id: r.subset for r in open_project(project.root).manifest()}


def history(project):
    return [json.loads(line) for line in (project.root / svc.HISTORY_FILE).read_text().splitlines()]


def test_move_by_tag_uses_caption_else_booru_and_tagger_tags(proj):
    before = subsets(proj)
    r = svc.move(proj, "back", tags=["from_behind"], tag_cfg=TagConfig())
    assert sorted(rid for rid, _ in r.moved) == ["img-0", "img-1", "img-2", "img-3", "img-5", "img-6"]
    assert r.kept == 5  # img-5 is dropped but moves too, so a restore keeps it with its kind
    after = subsets(proj)
    assert {k for k, v in after.items() if v == "back"} == {"img-0", "img-1", "img-2", "img-3", "img-5", "img-6"}
    assert after["img-4"] == "main" and after["img-9"] == "main"
    (entry,) = history(proj)
    assert entry["op"] == "move" and entry["to"] == "back" and entry["args"]["tags"] == ["from_behind"]
    assert {c["id"]: c["before"] for c in entry["changes"]} == {k: before[k] for k in after if after[k] == "back"}


def test_all_given_tags_from_subset_and_ids(proj):
    r = svc.move(proj, "outdoor-back", tags=["from_behind", "outdoors"], from_subset="main")
    assert r.moved == [("img-1", "main")]  # img-2 has both tags but is in summer
    r = svc.move(proj, "picked", ids=["img-7", "img-8", "nope", "img-2", "img-7"], from_subset="main")
    assert [rid for rid, _ in r.moved] == ["img-7", "img-8"]
    assert r.missing == ["nope"] and r.elsewhere == ["img-2"]
    r = svc.move(proj, "picked", ids=["img-7"], tags=["smile"])  # union of ids and tags
    assert r.already == ["img-7", "img-8"] and r.moved == [("img-9", "main")]  # img-6's caption says no smile


def test_from_alone_moves_the_whole_subset(proj):
    r = svc.move(proj, "main", from_subset="summer")
    assert r.moved == [("img-2", "summer")]
    assert set(subsets(proj).values()) == {"main"}


def test_dry_run_changes_nothing(proj):
    before = (proj.root / "manifest.jsonl").read_text()
    r = svc.move(proj, "back", tags=["from_behind"], dry_run=True)
    assert len(r.moved) == 6 and r.seq is None
    assert (proj.root / "manifest.jsonl").read_text() == before
    assert not (proj.root / svc.HISTORY_FILE).exists()


def test_bad_names_and_no_selection(proj):
    for bad in ("back views", "../x", "", "-x", "a/b"):
        with pytest.raises(KilnError, match="subset names"):
            svc.move(proj, bad, ids=["img-0"])
    with pytest.raises(KilnError, match="--from"):
        svc.move(proj, "ok", from_subset="bad name")
    with pytest.raises(KilnError, match="which images"):
        svc.move(proj, "ok")
    assert svc.move(proj, "v1.2_back-x", ids=["img-0"]).moved == [("img-0", "main")]


def test_undo_restores_the_last_move_exactly_then_the_one_before(proj):
    original = subsets(proj)
    svc.move(proj, "back", tags=["from_behind"])
    after_first = subsets(proj)
    svc.move(proj, "front", tags=["smile"])
    u = svc.undo(proj)
    assert u.to == "front" and len(u.restored) == 3
    assert subsets(proj) == after_first
    u = svc.undo(proj)
    assert u.to == "back" and subsets(proj) == original  # img-2 back in summer, the rest in main
    with pytest.raises(KilnError, match="nothing to undo"):
        svc.undo(proj)
    ops = [(e["op"], e.get("undoes")) for e in history(proj)]
    assert ops == [("move", None), ("move", None), ("undo", 2), ("undo", 1)]  # append-only


def test_undo_leaves_images_moved_since_alone(proj):
    svc.move(proj, "back", ids=["img-0", "img-1"])
    m = proj.manifest()
    m["img-1"].subset = "elsewhere"  # e.g. `kiln import --force --subset elsewhere`
    m.save()
    u = svc.undo(proj)
    assert u.restored == [("img-0", "main")] and u.changed_since == ["img-1"]
    assert subsets(proj)["img-1"] == "elsewhere"


def test_history_survives_a_line_cut_short(proj):
    svc.move(proj, "back", ids=["img-0"])
    path = proj.root / svc.HISTORY_FILE
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"seq": 2, "op": "move", "to": "x", "chan')  # killed mid-append
    svc.move(proj, "other", ids=["img-9"])
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and [json.loads(x)["seq"] for x in lines] == [1, 2]
    assert svc.undo(proj).to == "other" and subsets(proj)["img-9"] == "main"


def test_counts(proj):
    svc.move(proj, "back", tags=["from_behind"])
    got = {c.name: (c.kept, c.total) for c in svc.counts(proj)}
    assert got == {"back": (5, 6), "main": (4, 4)}


def test_cli_move_list_undo(proj, cli):
    code, out = cli("subset", "move", "--tag", "from_behind", "--to", "back", "--dry-run", cwd=proj.root)
    assert code == 0 and "would move 6 images to subset back (5 kept)" in out
    assert set(subsets(proj).values()) == {"main", "summer"}
    code, out = cli("subset", "move", "--tag", "from_behind", "--to", "back", "--id", "ghost", cwd=proj.root)
    assert code == 0 and "moved 6 images" in out and "from summer: 1: img-2" in out and "ghost" in out
    assert "`kiln plan` gives subset back its repeats" in out and "--weight back=W" in out
    code, out = cli("subset", "list", cwd=proj.root)
    assert code == 0
    cells = [[c for c in line.split() if c not in "│┃"] for line in out.splitlines()]
    rows = {c[0]: c[1:4] for c in cells if c[:1] in (["back"], ["main"])}
    assert rows == {"back": ["5", "6", "1"], "main": ["4", "4", "1"]}
    code, out = cli("subset", "undo", cwd=proj.root)
    assert code == 0 and "6 images put back" in out and "to summer: 1" in out
    code, out = cli("subset", "undo", cwd=proj.root)
    assert code == 1 and "nothing to undo" in out
    code, out = cli("subset", "move", "--to", "bad name", "--id", "img-0", cwd=proj.root)
    assert code == 1 and "subset names use letters" in out


def test_doctor_views_fix_names_the_command(proj):
    from lorakiln.services.doctor import run_doctor

    (f,) = [f for f in run_doctor(proj, {"rules": ["views"]}).findings if f.severity == "warning"]
    assert "kiln subset move --tag from_behind --to back" in f.fix
    svc.move(proj, "back", tags=["from_behind"])
    proj.set_section("export", {"repeats": {"main": 5, "back": 1}})  # 5 / (5 + 4 x 5) = 20%
    assert not [f for f in run_doctor(open_project(proj.root), {"rules": ["views"]}).findings
                if f.severity == "warning"]
