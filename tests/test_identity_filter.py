"""Identity filter (issue 12): the pure core on difference matrices with known clusters, and
`kiln filter --identity` end to end on toy-world pictures with the committed toy CCIP model."""

import numpy as np
import pytest

from lorakiln.core.records import Status
from lorakiln.services.identity import INFO_KEY
from lorakiln.vision.identity import drop_reason, find_main_character

THR = 0.2


def _matrix(groups, outliers=0, seed=0, within=(0.02, 0.15), between=(0.5, 0.9)):
    """Groups of mutually alike pictures (differences in `within`), far from each other and
    from `outliers` pictures that resemble nothing (differences in `between`)."""
    rng = np.random.default_rng(seed)
    labels = [g for g, size in enumerate(groups) for _ in range(size)] + [-1 - i for i in range(outliers)]
    n = len(labels)
    d = rng.uniform(*between, size=(n, n))
    same = np.equal.outer(labels, labels)
    d[same] = rng.uniform(*within, size=int(same.sum()))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    return d, np.array(labels)


def test_main_cluster_kept_outliers_and_second_character_dropped():
    d, labels = _matrix([20, 5], outliers=6)
    r = find_main_character(d, THR)
    assert r.skipped is None
    kept = np.array([j.kept for j in r.judgements])
    assert kept[labels == 0].all()
    assert not kept[labels != 0].any()  # the second, smaller character and the loners
    assert labels[r.medoid] == 0 and all(labels[i] == 0 for i in r.core)
    j = r.judgements[-1]
    assert j.difference > THR and j.reason == drop_reason(j.difference, THR)
    assert j.reason.endswith(f"from the main character (threshold {THR:g})")


def test_one_odd_comparison_does_not_drop_a_member():
    d, labels = _matrix([20], outliers=4)
    d[3, 7] = d[7, 3] = 0.95  # one bad pairwise difference inside the main character
    r = find_main_character(d, THR)
    assert all(r.judgements[i].kept for i in range(20))


def test_no_dominant_character_drops_nothing():
    d, _ = _matrix([8, 8, 8])
    r = find_main_character(d, THR)
    assert r.skipped and "no dominant character" in r.skipped
    assert r.dropped == [] and all(j.reason is None for j in r.judgements)


def test_loners_do_not_hide_the_main_character_but_a_rival_does():
    d, labels = _matrix([10], outliers=15)  # the main character is 40% of the pictures, the rest all differ
    r = find_main_character(d, THR)
    assert r.skipped is None and r.main == list(range(10)) and len(r.dropped) == 15
    d, _ = _matrix([12, 10], outliers=3)  # 12 against 10: 55% of the grouped pictures, below 60%
    r = find_main_character(d, THR)
    assert r.dropped == [] and "other groups: [10]" in r.skipped
    assert find_main_character(d, THR, min_share=0.5).dropped == list(range(12, 25))
    d, _ = _matrix([5], outliers=20)  # 5 alike among 25: too few of all the pictures to drop the rest
    r = find_main_character(d, THR)
    assert r.dropped == [] and "5 of all 25 pictures (20%, below 30%)" in r.skipped


def test_too_few_pictures_drops_nothing():
    d, _ = _matrix([8], outliers=3)
    r = find_main_character(d, THR, min_pictures=15)
    assert r.skipped.startswith("11 pictures: at least 15")
    assert r.dropped == []
    assert find_main_character(d, THR, min_pictures=5).dropped == [8, 9, 10]


def test_threshold_override_moves_the_border():
    d, labels = _matrix([20], outliers=0)
    d = np.vstack([d, np.full(20, 0.3)])
    d = np.hstack([d, np.append(np.full(20, 0.3), 0.0)[:, None]])  # a picture 0.3 from everyone
    assert find_main_character(d, 0.35).judgements[-1].kept
    loose, strict = find_main_character(d, 0.35), find_main_character(d, 0.25)
    assert loose.dropped == [] and strict.dropped == [20]
    assert strict.judgements[-1].difference == pytest.approx(0.3)


def test_bad_input():
    with pytest.raises(ValueError):
        find_main_character(np.zeros((3, 4)), THR)
    with pytest.raises(ValueError):
        find_main_character(np.full((20, 20), np.nan), THR)
    with pytest.raises(ValueError):
        find_main_character(np.zeros((20, 20)), 0.0)


# -- end to end with the toy world -----------------------------------------------------------------

N_KIE, OTHERS = 20, ["tsubaki_(kiln)", "hotaru_(kiln)", "koharu_(kiln)"]


@pytest.fixture
def toy_project(project, tmp_path):
    from lorakiln.toyworld import Mix, generate
    from lorakiln.toyworld.weights import CCIP

    src = tmp_path / "pictures"
    src.mkdir()
    mix = Mix(anonymous=0.0, two_figures=0.0)
    for i, s in enumerate(generate(N_KIE, 11, characters=["kie_(kiln)"], mix=mix)):
        s.image.save(src / f"kie{i:02d}.png")
    for k, c in enumerate(OTHERS):
        for i, s in enumerate(generate(2, 50 + k, characters=[c], mix=mix)):
            s.image.save(src / f"other_{c[:5]}{i}.png")
    project.set_section("filter", {"min_short_side": 0, "ccip_local": str(CCIP)})
    return project, src


def _others(m, src):
    """Ids of the other characters' pictures (the import renames files; their hashes stay)."""
    from lorakiln.core.hashing import sha256_file

    shas = {sha256_file(p) for p in src.glob("other_*.png")}
    return {r.id for r in m if r.sha256 in shas}


def test_kiln_filter_identity_end_to_end(toy_project, cli):
    project, src = toy_project
    assert cli("import", src, cwd=project.root)[0] == 0
    assert len(project.manifest()) == N_KIE + 2 * len(OTHERS)

    code, out = cli("filter", "--identity", "--dry-run", cwd=project.root)
    assert code == 0 and "would drop 6" in out, out
    assert all(r.kept for r in project.manifest())  # a dry run saves nothing

    code, out = cli("filter", "--identity", cwd=project.root)
    assert code == 0, out
    m = project.manifest()
    dropped = {r.id: r.reason for r in m if r.status == Status.dropped}
    others = _others(m, src)
    kie = {r.id for r in m} - others
    assert set(dropped) == others, (dropped, others)  # 0 of 20 kie pictures wrongly dropped
    assert all(why.startswith("identity: ") and "from the main character (threshold 0.159)" in why
               for why in dropped.values())
    assert all(m[rid].kept and m[rid].extra[INFO_KEY]["difference"] <= 0.159 for rid in kie)
    assert "26 computed, 0 cached" in out and "main character in 20 of 26" in out

    code, out = cli("filter", "--identity", "--force", cwd=project.root)  # judged again: nothing recomputed
    assert code == 0 and "0 computed, 26 cached" in out, out
    assert {r.id for r in project.manifest() if r.status == Status.dropped} == others

    code, out = cli("filter", "--undo", "identity", cwd=project.root)
    assert code == 0 and "restored 6" in out
    assert all(r.kept for r in project.manifest())
    code, out = cli("filter", "--identity", cwd=project.root)  # restored pictures stay
    assert code == 0 and all(r.kept for r in project.manifest())

    from lorakiln.services.doctor import run_doctor
    from lorakiln.services.project import open_project

    (f,) = run_doctor(open_project(project.root), {"rules": ["identity"]}).findings  # kiln doctor names them
    assert f.severity == "warning" and set(f.items) == others and "6 kept pictures differ" in f.message


def test_without_a_model_the_other_filters_still_run(project, cli, tmp_path):
    from lorakiln.toyworld import generate

    src = tmp_path / "pictures"
    src.mkdir()
    a, b = (s.image for s in generate(2, 3, characters=["kie_(kiln)"]))
    a.save(src / "kie.png")
    b.resize((40, 40)).save(src / "small.png")
    (tmp_path / "nowhere").mkdir()
    project.set_section("filter", {"ccip_local": str(tmp_path / "nowhere"), "min_short_side": 60})
    assert cli("import", src, cwd=project.root)[0] == 0
    code, out = cli("filter", "--identity", cwd=project.root)
    assert code == 0, out
    assert "model_feat.onnx" in out and "identity filter skipped" in out and "nowhere" in out
    assert sorted(str(r.reason).split(":")[0] for r in project.manifest()) == ["None", "too small"]
    # kiln run's filter stage says so too, instead of skipping identity silently
    project.set_section("filter", {"identity": True})
    code, out = cli("run", "--from", "filter", "--until", "filter", "--force", cwd=project.root)
    assert code == 0, out
    assert "identity filter skipped" in out and "model_feat.onnx" in out


def test_unreadable_picture_does_not_stop_the_batch(toy_project, cli):
    project, src = toy_project
    assert cli("import", src, cwd=project.root)[0] == 0
    assert cli("filter", cwd=project.root)[0] == 0  # headers and colour statistics cached
    m = project.manifest()
    victim = next(r for r in m if r.id not in _others(m, src))
    path = project.abs(victim.file)
    path.write_bytes(path.read_bytes()[:120])  # header intact, pixels cut off
    code, out = cli("filter", "--identity", cwd=project.root)
    assert code == 0, out
    m = project.manifest()
    assert m[victim.id].status == Status.error and victim.id in out
    assert {r.id for r in m if r.status == Status.dropped} == _others(m, src)


def test_model_and_threshold_resolution(tmp_path):
    from lorakiln.config.eval import ModelsConfig
    from lorakiln.config.filter import FilterConfig
    from lorakiln.core.errors import KilnError
    from lorakiln.services.identity import identity_backend
    from lorakiln.toyworld.weights import CCIP

    eval_only = identity_backend(FilterConfig(), ModelsConfig(ccip_local=str(CCIP)))
    assert str(CCIP) in eval_only.origin and eval_only.threshold == pytest.approx(0.15853)
    assert identity_backend(FilterConfig(), ModelsConfig(ccip_local=str(CCIP), ccip_threshold=0.3)).threshold == 0.3
    mine = identity_backend(FilterConfig(ccip_local=str(CCIP), identity_threshold=0.2),
                            ModelsConfig(ccip_local=str(tmp_path), ccip_threshold=0.3))
    assert str(CCIP) in mine.origin and mine.threshold == 0.2
    with pytest.raises(KilnError, match="metrics.json"):
        identity_backend(FilterConfig(ccip_local=str(tmp_path)), ModelsConfig())
