"""Caption edits on a real project: recorded, undone exactly, surviving a restart and a kill."""

import json

import pytest
from test_caption_data import add_records, kafka_records, retsuko_records, tagged_record, zeta_records

from lorakiln.captions.history import HISTORY_FILE, Entry, History, consolidations
from lorakiln.core.errors import KilnError
from lorakiln.core.records import ImageRecord
from lorakiln.services import caption as svc
from lorakiln.services.project import open_project


def session(project):
    return svc.Captions(open_project(project.root))


def captions(project):
    return {r.id: r.caption for r in open_project(project.root).manifest()}


def test_first_op_initialises_from_the_tags_and_undo_restores_none(project):
    add_records(project, kafka_records(4) + [tagged_record()])
    res = svc.trigger(session(project))
    assert res.selected == 5 and res.initialised == 5 and res.seq == 1
    caps = captions(project)
    assert all(c[0] == "kafka_hsr" for c in caps.values())
    assert caps["local-aaaa"] == ["kafka_hsr", "1girl", "long_hair", "smile", "hat"]  # tagger scores, best first
    assert open_project(project.root).resolve("caption").keep_tokens == 1
    session(project).undo(1)
    assert set(captions(project).values()) == {None}
    assert "keep_tokens" not in open_project(project.root).section_doc("caption")


def test_undo_n_restores_exactly_even_after_new_images(project):
    add_records(project, kafka_records(6))
    svc.trigger(session(project))
    before = captions(project)
    svc.remove(session(project), presets=["default"])
    svc.overlap(session(project))
    svc.prune_core(session(project))
    mid = captions(project)
    assert mid != before
    add_records(project, [ImageRecord(id="late-1", source="local", tags={"general": ["1girl", "red_hair"]})])
    svc.replace(session(project), "smile", "grin", svc.selection(ids=["danbooru-101"]))
    targets, restored, drifted = session(project).undo(4)
    assert [e.op for e in targets] == ["replace", "prune-core", "overlap", "remove"]
    after = captions(project)
    assert {k: v for k, v in after.items() if k != "late-1"} == before and drifted == 0
    assert after["late-1"] is None  # added after those edits: left alone


def test_history_survives_a_restart_and_lists_undone(project):
    add_records(project, kafka_records(3))
    svc.trigger(session(project))
    svc.consolidate(session(project), ["jacket", "shirt", "gloves"], "kafkacoat")
    session(project).undo(1)
    apps, undone = session(project).log()  # a fresh session reads the file again
    assert [(e.seq, e.op) for e in apps] == [(1, "trigger"), (2, "consolidate")] and undone == {2}
    assert consolidations(History(project.root / HISTORY_FILE).entries()) == []
    svc.consolidate(session(project), ["jacket", "shirt", "gloves"], "kafkacoat")
    assert consolidations(History(project.root / HISTORY_FILE).entries()) == [(["jacket", "shirt", "gloves"], "kafkacoat")]
    with pytest.raises(KilnError, match=r"cannot undo 5: only 2 caption edit\(s\)"):
        session(project).undo(5)


def test_torn_last_line_is_ignored_then_cut(project, tmp_path):
    h = History(tmp_path / HISTORY_FILE)
    h.append(Entry(1, "trigger", "t", {"words": ["x"]}))
    with open(h.path, "a") as fh:
        fh.write('{"seq": 2, "op": "remo')  # a kill in the middle of an append
    assert [e.seq for e in h.entries()] == [1]
    h.append(Entry(2, "remove", "t"))
    assert [e.seq for e in h.entries()] == [1, 2]
    assert all(json.loads(line) for line in h.path.read_text().splitlines())


def test_kill_between_history_and_manifest_leaves_a_harmless_entry(project, monkeypatch):
    add_records(project, kafka_records(2))
    svc.trigger(session(project))
    good = captions(project)

    def killed(self):
        raise KeyboardInterrupt

    monkeypatch.setattr("lorakiln.core.manifest.Manifest.save", killed)
    with pytest.raises(KeyboardInterrupt):
        svc.remove(session(project), ["smile"])
    monkeypatch.undo()
    assert captions(project) == good  # the manifest kept the old captions
    session(project).undo(1)  # undoing the recorded-but-unsaved edit changes nothing
    assert captions(project) == good


def test_seed001_zeta_outfit_triggers_per_subset(project):
    add_records(project, zeta_records())
    svc.trigger(session(project), ["zeta"])
    res = svc.consolidate(session(project), ["bikini", "swimsuit", "flower_hair_ornament"], "zetasummer",
                          sel=svc.selection("summer"))
    assert res.selected == 3 and res.edited == 3
    caps = captions(project)
    assert all(c[:2] == ["zeta", "1girl"] and "zetasummer" in c and "bikini" not in c
               for k, c in caps.items() if "summer" in k)
    assert not any("zetasummer" in c for k, c in caps.items() if "summer" not in k)
    svc.prune_core(session(project))  # blonde hair, blue eyes, long hair: in every image
    assert not any({"blonde_hair", "blue_eyes", "long_hair"} & set(c) for c in captions(project).values())
    assert open_project(project.root).section_doc("caption")["trigger"] == ["zeta"]


def test_seed003_retsuko_pipeline(project):
    add_records(project, retsuko_records())
    c = session(project)
    svc.trigger(c, ["retsuko"])
    svc.prune_core(session(project), threshold=0.6)
    svc.consolidate(session(project), ["red_shirt", "crop_top", "pattern_shirt", "black_leaf"], "roxanneshirt")
    caps = captions(project)
    first = caps["e621-200"]
    assert first[0] == "retsuko" and "roxanneshirt" in first
    assert not {"tan_body", "black_nose", "red_panda", "red_shirt", "crop_top"} & set(first)
    assert "brown_eyes" in first  # varies across the dataset: kept


def test_order_writes_keep_tokens_and_quality_from_percentiles(project):
    add_records(project, kafka_records(20))
    svc.trigger(session(project))
    res = svc.order(session(project), "animagine", quality_tags=True, rating_tags=True, year_tags=True)
    caps = captions(project)
    top = caps["danbooru-119"]  # the highest score of 20: percentile 0.975
    assert top[:4] == ["1girl", "kafka_hsr", "kafka_(honkai:_star_rail)", "honkai:_star_rail"]
    assert top[-4:] == ["masterpiece", "explicit", "nsfw", "newest"]
    assert caps["danbooru-100"][-3:] == ["worst_quality", "safe", "mid"]
    assert open_project(project.root).resolve("caption").keep_tokens == 4 and res.seq is not None
    session(project).undo(1)
    assert open_project(project.root).resolve("caption").keep_tokens == 1  # back to trigger's value


def test_dry_run_and_no_change_write_nothing(project):
    add_records(project, kafka_records(2))
    res = svc.trigger(session(project), dry_run=True)
    assert res.edited == 2 and res.seq is None
    assert not (project.root / HISTORY_FILE).exists() and set(captions(project).values()) == {None}
    svc.trigger(session(project))
    again = svc.trigger(session(project))
    assert again.edited == 0 and again.seq is None and len(History(project.root / HISTORY_FILE).entries()) == 1


def test_remove_patterns_never_take_the_trigger(project):
    add_records(project, kafka_records(2))
    svc.trigger(session(project), ["kafka_hsr"])
    svc.remove(session(project), globs=["kafka*"])
    assert all(c[0] == "kafka_hsr" and "kafka_(honkai:_star_rail)" not in c for c in captions(project).values())
    svc.remove(session(project), ["kafka_hsr"])
    assert not any("kafka_hsr" in c for c in captions(project).values())


def test_remove_by_category(project):
    add_records(project, kafka_records(2))
    svc.remove(session(project), categories=["artist", "meta"])
    caps = captions(project)
    assert not any(t.startswith("artist_") or t in ("highres", "signature", "absurdres") for c in caps.values() for t in c)


def test_set_show_and_unknown_id(project):
    add_records(project, kafka_records(1))
    c = session(project)
    res = svc.set_caption(c, "danbooru-100", r"kafka_hsr, kafka \(honkai: star rail\), long hair")
    assert res.seq == 1
    r, tags, text = svc.show(session(project), "danbooru-100")
    assert tags == ["kafka_hsr", "kafka_(honkai:_star_rail)", "long_hair"]
    assert text == r"kafka_hsr, kafka \(honkai: star rail\), long hair"
    with pytest.raises(KilnError, match="no image with id 'nope'"):
        svc.show(session(project), "nope")


def test_dropped_images_are_not_touched(project):
    recs = kafka_records(3)
    recs[1].drop("duplicate: phash distance 2", duplicate_of="danbooru-100")
    add_records(project, recs)
    res = svc.trigger(session(project), ["kafka_hsr, 1girl"])  # comma-separated words are split
    assert res.selected == 2 and captions(project)["danbooru-101"] is None
    assert captions(project)["danbooru-100"][:2] == ["kafka_hsr", "1girl"] and res.config[0].after == 2
    with pytest.raises(KilnError, match=r"danbooru-101 is dropped \(duplicate: phash distance 2\)"):
        svc.set_caption(session(project), "danbooru-101", "a, b")
