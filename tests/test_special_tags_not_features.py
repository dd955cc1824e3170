"""`kiln caption order --style pony` puts score_9, source_anime and rating tags in every caption on
purpose: doctor must not call them fixed features, nor prune-core suggest pruning them."""

from __future__ import annotations

import json

from lorakiln.captions.features import bundled_features, suggest_core
from lorakiln.captions.freq import TagCount
from lorakiln.core.records import ImageRecord


def test_pony_order_tags_are_not_fixed_features(tmp_path, cli):
    from lorakiln.services.project import init_project

    p = init_project(tmp_path / "kie", "kie", ["kierose"], base="pony-v6")
    m = p.manifest()
    for i in range(12):  # score percentiles 0 .. 1: score_9 for the top one, score_N_up below
        general = ["1girl", "long_hair", "smile" if i % 2 else "from_side", "dress" if i % 3 else "jacket"]
        m.add(ImageRecord(id=f"danbooru-{i}", source="danbooru", width=640, height=640, rating="g", score=100 + i,
                          tags={"general": general}))
    m.save()
    code, out = cli("caption", "order", "--style", "pony", cwd=p.root)
    assert code == 0, out
    captions = [r.caption for r in p.manifest().kept()]
    assert all("source_anime" in c and "rating_safe" in c for c in captions)
    assert any("score_9" in c for c in captions)

    code, out = cli("doctor", "--rule", "absorbed", "--json", cwd=p.root)
    (f,) = json.loads(out)["findings"]
    assert f["data"]["tags"] == ["long_hair"]  # was long_hair, rating_safe, source_anime

    code, out = cli("caption", "prune-core", "--suggest", cwd=p.root)
    assert code == 0, out
    assert "source_anime" in out and "added by `kiln caption order`" in out
    code, out = cli("caption", "prune-core", cwd=p.root)
    assert code == 0, out
    after = [r.caption for r in p.manifest().kept()]
    assert after == [[t for t in c if t != "long_hair"] for c in captions]  # the special tags stay


def test_suggest_core_never_marks_special_tags():
    counts = [TagCount("score_9", 10, 1.0), TagCount("source_anime", 10, 1.0), TagCount("masterpiece", 10, 1.0),
              TagCount("red_hair", 10, 1.0)]
    rows = {s.tag: s for s in suggest_core(counts, {}, bundled_features())}
    assert rows["red_hair"].core
    for tag in ("score_9", "source_anime", "masterpiece"):
        assert not rows[tag].core and "kiln caption order" in rows[tag].reason
