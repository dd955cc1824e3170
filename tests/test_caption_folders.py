"""`kiln doctor FOLDER`, `kiln train --data FOLDER` and `kiln plan FOLDER` on a hostile plain folder:
they read captions as `kiln import` does, never block on a pipe, and name every bad file."""

import os
from pathlib import Path

from lorakiln.config.doctor import DoctorConfig
from lorakiln.config.train import BucketConfig, SubsetOptions
from lorakiln.services.doctor import run_doctor_folder
from lorakiln.services.plan import folder_counts
from lorakiln.train.data import DatasetSpec, folder_subsets, scan_dataset

from bad_files import NON_UTF8, image, pipe_guard  # noqa: F401  (pipe_guard is a fixture)

TAGS = "kie, 初音ミク, smile"


def _hostile(folder: Path, pipe_guard) -> Path:
    """5_kie/ with captions in UTF-16, Shift-JIS and UTF-8, a pipe, a folder and a binary file as
    captions, a link loop, and a non-UTF-8 image name."""
    sub = folder / "5_kie"
    sub.mkdir(parents=True)
    image(sub / "utf16.png", 1, TAGS.encode("utf-16"))
    image(sub / "sjis.png", 2, TAGS.encode("shift_jis"))
    image(sub / "plain.png", 3, TAGS.encode("utf-8"))
    image(sub / "pipe.png", 4)
    pipe_guard(sub / "pipe.txt")
    image(sub / "dir.png", 5)
    (sub / "dir.txt").mkdir()
    image(sub / "binary.png", 6, b"\x00\x01\x02\x03garbage")
    (sub / "loop.png").symlink_to("loop.png")
    image(os.fsencode(sub) + b"/" + NON_UTF8 + b".png", 7, b"kie, odd")
    return folder


def test_doctor_folder_reads_every_encoding_and_notes_bad_captions(tmp_path, pipe_guard):
    folder = _hostile(tmp_path / "set", pipe_guard)
    report = run_doctor_folder(folder, DoctorConfig(rules=["trigger"]), ["kie"], None)
    assert report.images == 7 and report.findings == []  # every caption read has the trigger
    notes = "\n".join(report.notes)
    for name, words in (("pipe.txt", "not a regular file"), ("dir.txt", "a folder"), ("binary.txt", "NUL")):
        assert any(name in n and words in n for n in report.notes), notes
    assert "hung" not in notes
    notes.encode("utf-8")  # printable


def test_train_data_reads_captions_like_import_and_skips_bad_ones(tmp_path, pipe_guard):
    folder = _hostile(tmp_path / "set", pipe_guard)
    subs = folder_subsets(folder, SubsetOptions())
    scanned = scan_dataset(DatasetSpec(subs, BucketConfig(), 1))
    captions = {Path(it.path).name: it.caption for it in scanned.items}
    assert captions["utf16.png"] == captions["sjis.png"] == captions["plain.png"] == TAGS
    assert not any("\x00" in c or "hung" in c for c in captions.values())
    problems = {Path(p).name: why for p, why in scanned.problems}
    assert set(problems) == {"pipe.png", "dir.png", "binary.png"}
    assert problems["dir.png"].startswith("caption dir.txt: a folder")


def test_plan_folder_counts_only_image_files(tmp_path, pipe_guard):
    folder = _hostile(tmp_path / "set", pipe_guard)
    (folder / "5_kie" / "folder.png").mkdir()
    counts, _ = folder_counts(folder)
    assert counts == {"kie": 7}  # not the loop, not the folder


def test_export_rewrites_a_caption_someone_saved_as_utf16(project):
    from test_caption_data import add_images, kafka_records

    from lorakiln.services.export import export_dataset
    from lorakiln.services.project import open_project

    add_images(project, kafka_records(2))
    export_dataset(open_project(project.root))
    cap = next(project.dataset_dir.rglob("danbooru-100.txt"))
    text = cap.read_text(encoding="utf-8")
    cap.write_bytes(text.encode("utf-16"))  # a tag editor re-saved it
    res = export_dataset(open_project(project.root))  # was a UnicodeDecodeError
    assert res.captions_written == 1 and cap.read_text(encoding="utf-8") == text


def test_eval_reads_reference_captions_with_the_same_reader(project, tmp_path):
    from lorakiln.config.eval import EvalConfig
    from lorakiln.services.evaluate import dataset_facts

    refs = tmp_path / "refs"
    refs.mkdir()
    image(refs / "a.png", 1, "kafka_hsr, 初音ミク, smile".encode("utf-16"))
    image(refs / "b.png", 2, b"kafka_hsr, \xe9t\xe9")  # cp1252
    (refs / "c.txt").mkdir()
    image(refs / "c.png", 3)
    facts = dataset_facts({}, project, EvalConfig(), sorted(refs.glob("*.png")))
    assert facts.n_images == 2
    assert "初音ミク" in facts.shares and "été" in facts.shares
    assert not any("\x00" in t or "\ufffd" in t for t in facts.shares)


def test_train_subset_names_from_non_utf8_folders_can_go_into_metadata(tmp_path):
    root = os.fsencode(tmp_path)
    os.mkdir(root + b"/3_" + NON_UTF8)
    image(root + b"/3_" + NON_UTF8 + b"/a.png", 1, b"kie, smile")
    subs = folder_subsets(tmp_path, SubsetOptions())
    assert [(s.name, s.class_tokens, s.num_repeats) for s in subs] == [("3_\\xff\\xfe-bad", "\\xff\\xfe-bad", 3)]
    scanned = scan_dataset(DatasetSpec(subs, BucketConfig(), 1))
    assert [it.caption for it in scanned.items] == ["kie, smile"]
    # safetensors metadata must be UTF-8: a lone surrogate failed the save after training
    import torch
    from safetensors.torch import save

    save({"w": torch.zeros(1)}, metadata={"ss_dataset_dirs": subs[0].name})


def test_unreadable_subfolder_is_named_not_a_traceback(tmp_path):
    import pytest

    from lorakiln.core.errors import KilnError

    for sub in ("2_a", "3_b"):
        (tmp_path / "k" / sub).mkdir(parents=True)
    image(tmp_path / "k" / "2_a" / "a.png", 1, b"kie, smile")
    image(tmp_path / "k" / "3_b" / "b.png", 2, b"kie")
    locked = tmp_path / "k" / "3_b"
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("this user reads folders whatever their permissions (root)")
        report = run_doctor_folder(tmp_path / "k", DoctorConfig(rules=["trigger"]), ["kie"], None)
        assert report.images == 1 and any("3_b" in n and "permission denied" in n for n in report.notes)
        with pytest.raises(KilnError, match="3_b: folder not readable"):
            folder_counts(tmp_path / "k")
        scanned = scan_dataset(DatasetSpec(folder_subsets(tmp_path / "k", SubsetOptions()), BucketConfig(), 1))
        assert len(scanned.items) == 1 and [Path(p).name for p, _ in scanned.problems] == ["3_b"]
    finally:
        locked.chmod(0o755)
