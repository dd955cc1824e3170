"""kiln doctor: each rule on fixture datasets built to trigger it and not to trigger it."""

import json
import random

import pytest

from lorakiln.config.doctor import DoctorConfig
from lorakiln.core.errors import KilnError
from lorakiln.core.records import ImageRecord
from lorakiln.planning.doctor import RULES, Dataset, Item, norm_tag, run_rules
from lorakiln.planning.doctor.duplicates import near_pairs
from lorakiln.planning.doctor.toggles import is_worn

CFG = DoctorConfig()


def item(i, *tags, **kw) -> Item:
    return Item(f"img{i}", frozenset(norm_tag(t) for t in tags), **kw)


def dataset(items, **kw) -> Dataset:
    kw.setdefault("trigger", ["kie"])
    return Dataset(items, **kw)


def run(rule: str, ds: Dataset, cfg: DoctorConfig = CFG):
    return RULES.get(rule)(ds, cfg)


def warnings(findings):
    return [f for f in findings if f.severity == "warning"]


# -- views ---------------------------------------------------------------------------
def test_views_back_share_over_the_limit():
    items = [item(i, "from_behind" if i < 3 else "smile") for i in range(10)]
    (f,) = warnings(run("views", dataset(items)))
    assert f.items == ["img0", "img1", "img2"] and f.data["back_share"] == 0.3


def test_views_counts_repeats_like_an_epoch_does():
    # seed 000: front views at 9 repeats, backs at 1: three backs are now few
    items = [item(i, "from_behind", repeats=1) if i < 3 else item(i, "smile", repeats=9) for i in range(10)]
    assert not warnings(run("views", dataset(items)))
    items = [item(i, "from_behind", repeats=9) if i < 3 else item(i, "smile", repeats=1) for i in range(10)]
    assert warnings(run("views", dataset(items)))  # the same backs at high repeats take over


def test_views_no_other_angles_is_info():
    (f,) = run("views", dataset([item(i, "smile") for i in range(5)]))
    assert f.severity == "info" and "other angles" in f.message
    assert run("views", dataset([item(0, "from_side"), item(1, "smile")])) == []


# -- toggles -------------------------------------------------------------------------
def test_toggles_clothing_in_nearly_every_image_sticks():
    items = [item(i, "black_jacket" if i < 9 else "bikini", "long_hair") for i in range(10)]
    (f,) = warnings(run("toggles", dataset(items)))
    assert f.data["tag"] == "black_jacket" and f.data["count"] == 9 and len(f.items) == 9


def test_toggles_quarter_rule_not_triggered():
    items = [item(i, "black_jacket" if i < 6 else "bikini") for i in range(10)]
    assert run("toggles", dataset(items)) == []
    items = [item(i, "black_jacket") for i in range(10)]  # in every image: the absorbed rule's business
    assert run("toggles", dataset(items)) == []


def test_toggles_declared_toggle_too_rare_and_too_common():
    items = [item(i, "swimsuit" if i == 0 else "smile") for i in range(10)]
    (f,) = run("toggles", dataset(items), DoctorConfig(toggles=["swimsuit"]))
    assert "only 1 of 10" in f.message and f.items == ["img0"]
    items = [item(i, "swimsuit" if i < 5 else "smile") for i in range(10)]
    assert run("toggles", dataset(items), DoctorConfig(toggles=["swimsuit"])) == []
    items = [item(i, "kieoutfit") for i in range(10)]
    (f,) = run("toggles", dataset(items), DoctorConfig(toggles=["kieoutfit"]))
    assert "stick" in f.message


def test_toggles_core_tags_are_never_reported():
    items = [item(i, "capelet" if i < 9 else "smile") for i in range(10)]
    assert run("toggles", dataset(items), DoctorConfig(core_tags=["capelet"])) == []


def test_worn_vocabulary():
    assert is_worn("black_jacket") and is_worn("hair_ornament") and is_worn("elbow_gloves") and is_worn("bow")
    assert not is_worn("long_hair") and not is_worn("no_hat") and not is_worn("long_sleeves")
    assert not is_worn("purple_eyes")


# -- headshots -----------------------------------------------------------------------
def test_headshots_missing_lists_crop_candidates_largest_first():
    items = [item(0, "full_body", width=500, height=500), item(1, "cowboy_shot", width=2000, height=2000),
             item(2, "from_behind", width=4000, height=4000), item(3, "full_body", width=1000, height=1000)]
    (f,) = run("headshots", dataset(items))
    assert f.items == ["img1", "img3", "img0"]  # the back view is no source for a face crop


def test_headshots_enough():
    items = [item(i, "portrait" if i < 2 else "full_body") for i in range(10)]
    assert run("headshots", dataset(items)) == []  # 20% >= 15%


# -- style ---------------------------------------------------------------------------
def test_style_one_artist_dominates():
    items = [item(i, artists=("artist_a",) if i < 5 else (f"artist_{i}",)) for i in range(10)]
    (f,) = run("style", dataset(items))
    assert f.data["artist"] == "artist_a" and len(f.items) == 5
    items = [item(i, artists=(f"artist_{i % 3}",)) for i in range(10)]
    assert run("style", dataset(items)) == []


def test_style_tag_dominates():
    items = [item(i, "anime_screencap" if i < 7 else "smile") for i in range(10)]
    (f,) = run("style", dataset(items))
    assert f.data["tag"] == "anime_screencap"
    items = [item(i, "anime_screencap" if i < 6 else "smile") for i in range(10)]
    assert run("style", dataset(items)) == []


# -- resolution ----------------------------------------------------------------------
def test_resolution_small_images():
    items = [item(0, width=832, height=1216), item(1, width=512, height=640), item(2, width=800, height=1000),
             item(3)]
    found = run("resolution", dataset(items, resolution=(1024, 1024)))
    small = [f for f in found if f.severity == "warning"][0]
    assert small.items == ["img1"]  # 800x1000 passes: 0.76 of 1024^2
    assert [f for f in found if f.severity == "info"][0].items == ["img3"]
    assert run("resolution", dataset(items[:1], resolution=(1024, 1024))) == []
    (f,) = run("resolution", dataset(items))  # no training resolution known
    assert f.severity == "info"


# -- trigger -------------------------------------------------------------------------
def test_trigger_missing_in_captions():
    items = [item(0, "kie", "smile", captioned=True), item(1, "smile", captioned=True)]
    (f,) = run("trigger", dataset(items))
    assert f.items == ["img1"] and f.severity == "warning"


def test_trigger_present_with_any_spelling():
    items = [item(0, "Kafka \\(HSR\\)", captioned=True), item(1, "kafka_(hsr)", captioned=True)]
    assert run("trigger", dataset(items, trigger=["kafka (hsr)"])) == []


def test_trigger_no_captions_yet_is_info():
    (f,) = run("trigger", dataset([item(0, "smile")]))
    assert f.severity == "info"


def test_trigger_checks_captions_export_builds_from_tags():
    # a project: export writes a caption for every image, from its tags where none was edited
    items = [item(0, "kie", "smile", captioned=True), item(1, "1girl", "portrait")]
    (f,) = run("trigger", dataset(items, exports_captions=True))
    assert f.severity == "warning" and f.items == ["img1"] and f.data["from_tags"] == 1


# -- absorbed ------------------------------------------------------------------------
def test_absorbed_tags_in_every_image():
    items = [item(i, "kie", "1girl", "long_hair", "red_eyes", "smile" if i else "frown") for i in range(4)]
    (f,) = run("absorbed", dataset(items))
    assert f.data["tags"] == ["long_hair", "red_eyes"]  # trigger and 1girl are expected everywhere


def test_absorbed_not_triggered_when_tags_vary():
    items = [item(i, "kie", "long_hair" if i else "short_hair") for i in range(4)]
    assert run("absorbed", dataset(items)) == []


# -- duplicates ----------------------------------------------------------------------
def test_duplicates_near_and_exact():
    items = [item(0, phash="ffffffffffffffff", sha256="a"), item(1, phash="fffffffffffffff0", sha256="b"),
             item(2, phash="0000000000000000", sha256="c"), item(3, phash="0f0f0f0f0f0f0f0f", sha256="a")]
    found = run("duplicates", dataset(items), DoctorConfig(duplicate_distance=4))
    exact = [f for f in found if "identical" in f.message][0]
    near = [f for f in found if "near-duplicates" in f.message][0]
    assert exact.items == ["img0", "img3"]
    assert near.data["pairs"] == [["img0", "img1", 4]]


def test_duplicates_none_and_no_hashes():
    items = [item(0, phash="ffffffffffffffff"), item(1, phash="0000000000000000")]
    assert run("duplicates", dataset(items)) == []
    (f,) = run("duplicates", dataset([item(0), item(1)]))
    assert f.severity == "info" and "kiln dedupe" in f.fix


def test_near_pairs_matches_brute_force():
    rng = random.Random(3)
    hashes = [f"{rng.getrandbits(64):016x}" for _ in range(300)]
    hashes += [f"{int(h, 16) ^ (1 << rng.randrange(64)):016x}" for h in hashes[:20]]  # one bit flipped
    want = sorted((i, j, bin(int(a, 16) ^ int(b, 16)).count("1")) for i, a in enumerate(hashes)
                  for j, b in enumerate(hashes) if i < j and bin(int(a, 16) ^ int(b, 16)).count("1") <= 12)
    assert sorted(near_pairs(hashes, 12)) == want and len(want) >= 20


# -- running the rules ---------------------------------------------------------------
def test_rule_selection_and_errors():
    ds = dataset([item(i, "from_behind") for i in range(3)])
    assert {f.rule for f in run_rules(ds, DoctorConfig(rules=["views"]))} == {"views"}
    assert "views" not in {f.rule for f in run_rules(ds, DoctorConfig(skip=["views"]))}
    with pytest.raises(KilnError, match="unknown doctor rule"):
        run_rules(ds, DoctorConfig(rules=["nope"]))
    (f,) = run_rules(dataset([]), CFG)
    assert "no kept images" in f.message
    sev = [f.severity for f in run_rules(ds, CFG)]
    assert "info" in sev and sev == sorted(sev, key=lambda s: s != "warning")  # warnings first


# -- service and CLI -----------------------------------------------------------------
@pytest.fixture
def doc_project(tmp_path):
    from lorakiln.services.project import init_project

    p = init_project(tmp_path / "kie", "kie", ["kierose"], base="animagine-xl-3.1")
    m = p.manifest()
    for i in range(20):
        general = ["1girl", "long_hair", "capelet", "from_behind" if i < 5 else "smile"]
        m.add(ImageRecord(id=f"danbooru-{i}", source="danbooru", width=640, height=640,
                          tags={"general": general, "artist": ["solo_artist"]},
                          caption=["kierose", *general] if i >= 10 else None))
    m.add(ImageRecord(id="danbooru-99", source="danbooru", status="dropped", reason="too small"))
    m.save()
    return p


def test_service_reads_captions_then_tags(doc_project):
    from lorakiln.services.doctor import run_doctor

    report = run_doctor(doc_project)
    rules = {f.rule for f in report.findings if f.severity == "warning"}
    assert report.images == 20
    assert {"views", "resolution", "style", "headshots", "absorbed"} <= rules
    res = [f for f in report.findings if f.rule == "resolution"][0]
    assert "1024x1024" in res.message  # the Animagine preset's resolution
    back = [f for f in report.findings if f.rule == "views"][0]
    assert back.items == [f"danbooru-{i}" for i in range(5)]


def test_service_uses_export_repeats(doc_project):
    from lorakiln.services.doctor import run_doctor
    from lorakiln.services.project import open_project

    m = doc_project.manifest()
    for i in range(5):
        m[f"danbooru-{i}"].subset = "back"
    m.save()
    doc_project.set_section("export", {"repeats": {"main": 3, "back": 1}})  # 5 / (5 + 15 x 3) = 10%
    assert warnings(run_doctor(open_project(doc_project.root), {"rules": ["views"]}).findings) == []
    doc_project.set_section("export", {"repeats": {"main": 1, "back": 3}})  # 15 / 30 = 50%
    (f,) = run_doctor(open_project(doc_project.root), {"rules": ["views"]}).findings
    assert f.data["back_share"] == pytest.approx(0.5)


def test_cli_doctor_strict_all_and_json(doc_project, cli):
    code, out = cli("doctor", cwd=doc_project.root)
    assert code == 0 and "views" in out and "fix:" in out and "warning" in out
    code, out = cli("doctor", "--strict", cwd=doc_project.root)
    assert code == 1
    code, out = cli("doctor", "--rule", "headshots", cwd=doc_project.root)
    assert "more (--all)" in out
    code, out = cli("doctor", "--rule", "headshots", "--all", cwd=doc_project.root)
    assert "more (--all)" not in out and "danbooru-19" in out
    code, out = cli("doctor", "--json", "--rule", "trigger", cwd=doc_project.root)
    data = json.loads(out)  # ten captions are still built from tags, without the trigger: export writes them so
    assert data["images"] == 20 and [f["data"] for f in data["findings"]] == [
        {"missing": 10, "captioned": 20, "from_tags": 10}]
    code, out = cli("doctor", "--list-rules", cwd=doc_project.root)
    assert all(name in out for name in RULES.names())
    code, out = cli("doctor", "--strict", "--rule", "trigger", cwd=doc_project.root)
    assert code == 1
    code, out = cli("caption", "trigger", cwd=doc_project.root)
    code, out = cli("doctor", "--strict", "--rule", "trigger", cwd=doc_project.root)
    assert code == 0, out


def test_cli_doctor_on_a_folder(tmp_path, cli):
    from lorakiln.demo.images import Spec, make_image

    folder = tmp_path / "set" / "3_kie"
    folder.mkdir(parents=True)
    for i in range(3):
        make_image(Spec(seed=i, width=64, height=80)).save(folder / f"{i}.png")
        (folder / f"{i}.txt").write_text("kie, 1girl, long hair, from behind" if i == 0 else "1girl, long hair")
    code, out = cli("doctor", tmp_path / "set", "--trigger", "kie", "--resolution", "512", "--json", cwd=tmp_path)
    assert code == 0, out
    data = json.loads(out)
    by_rule = {f["rule"]: f for f in data["findings"] if f["severity"] == "warning"}
    assert by_rule["trigger"]["items"] == ["kie/1.png", "kie/2.png"]
    assert len(by_rule["resolution"]["items"]) == 3 and by_rule["views"]["items"] == ["kie/0.png"]


def test_doctor_folder_reads_legacy_captions_and_leaves_out_broken_images(tmp_path):
    from lorakiln.demo.images import Spec, make_image
    from lorakiln.services.doctor import run_doctor_folder

    folder = tmp_path / "set"
    folder.mkdir()
    for i in range(2):
        make_image(Spec(seed=i, width=64, height=80)).save(folder / f"{i}.png")
    (folder / "0.txt").write_bytes(b"kie, caf\xe9, 1girl")  # cp1252, as old Windows tools wrote it
    (folder / "1.txt").write_bytes(b"\xef\xbb\xbfkie, smile")  # UTF-8 with a BOM
    (folder / "broken.png").write_bytes(b"not a picture")
    report = run_doctor_folder(folder, DoctorConfig(rules=["trigger"]), ["kie"], None)
    assert report.images == 2 and report.findings == []  # the BOM does not hide the trigger
    assert any("broken.png" in n and "left out" in n for n in report.notes)


def test_doctor_warns_where_export_does(tmp_path, cli):
    """Imported captions without the trigger: export warns, so doctor --strict must fail too."""
    from lorakiln.demo.images import Spec, make_image
    from lorakiln.services.project import init_project

    p = init_project(tmp_path / "kie", "kie", ["kierose"], base="animagine-xl-3.1")
    src = tmp_path / "heads"
    src.mkdir()
    for i in range(3):
        make_image(Spec(seed=i, width=64, height=80)).save(src / f"{i}.png")
        (src / f"{i}.txt").write_text("1girl, solo, portrait, close-up")
    assert cli("import", src, "--subset", "headshots", cwd=p.root)[0] == 0
    code, out = cli("export", cwd=p.root)
    assert code == 0 and "3 captions lack the trigger" in out
    code, out = cli("doctor", "--json", "--rule", "trigger", cwd=p.root)
    (f,) = json.loads(out)["findings"]
    assert f["severity"] == "warning" and f["data"]["missing"] == 3 and len(f["items"]) == 3
    assert cli("doctor", "--strict", "--rule", "trigger", cwd=p.root)[0] == 1
