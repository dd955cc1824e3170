import json
import os

import pytest

from lorakiln.config.project import ProjectInfo
from lorakiln.config.resolve import resolve_section
from lorakiln.config.sections import SectionModel
from lorakiln.core.atomic import atomic_open, clean_partials
from lorakiln.core.errors import ConfigError, KilnError
from lorakiln.core.manifest import Manifest
from lorakiln.core.records import ImageRecord, Status
from lorakiln.core.registry import Registry
from lorakiln.services.project import open_project


def test_manifest_round_trip_and_funnel(tmp_path):
    m = Manifest(tmp_path / "manifest.jsonl")
    a = m.add(ImageRecord(id="danbooru-1", source="danbooru", tags={"general": ["solo", "smile"]}))
    b = m.add(ImageRecord(id="danbooru-2", source="danbooru", subset="summer"))
    c = m.add(ImageRecord(id="danbooru-3", source="danbooru"))
    b.drop("duplicate: phash distance 2", duplicate_of="danbooru-1")
    c.fail("download: md5 mismatch")
    m.save()
    back = Manifest.load(tmp_path / "manifest.jsonl")
    assert [r.id for r in back] == ["danbooru-1", "danbooru-2", "danbooru-3"]
    assert back["danbooru-2"].duplicate_of == "danbooru-1"
    assert back["danbooru-3"].status == Status.error
    assert back["danbooru-1"].all_tags() == ["solo", "smile"]
    f = back.funnel()
    assert f["main"]["total"] == 2 and f["main"]["kept"] == 1 and f["main"]["error: download"] == 1
    assert f["summer"]["dropped: duplicate"] == 1
    assert a.kept


def test_manifest_bad_line_names_file_and_line(tmp_path):
    p = tmp_path / "manifest.jsonl"
    p.write_text(json.dumps({"id": "x", "source": "local"}) + "\n{not json\n")
    with pytest.raises(ConfigError, match=r"manifest.jsonl: line 2"):
        Manifest.load(p)


def test_atomic_write_keeps_old_file_when_interrupted(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(p) as fh:
            fh.write("half of the new")
            raise RuntimeError("killed")
    assert p.read_text() == "old"
    assert not list(tmp_path.glob(".*.part"))
    (tmp_path / ".x.part").write_text("leftover")
    assert clean_partials(tmp_path) == 1


def test_registry_lists_and_rejects_unknown():
    r: Registry[int] = Registry("thing")
    r.register("b", 2)

    @r.register("a")
    def _a():
        return 1

    assert r.names() == ["a", "b"] and "a" in r
    with pytest.raises(KilnError, match="unknown thing 'c'; known: a, b"):
        r.get("c")
    with pytest.raises(KeyError):
        r.register("a", 3)


class _Demo(SectionModel):
    threshold: int = 10
    names: list[str] = []


def test_resolve_precedence_defaults_preset_project_env_cli():
    env = {"KILN_DEMO__THRESHOLD": "7", "KILN_DEMO__NAMES": '["x"]'}
    got = resolve_section(_Demo, name="demo", preset={"threshold": 3}, project={"threshold": 5}, environ=env)
    assert got.threshold == 7 and got.names == ["x"]
    got = resolve_section(_Demo, name="demo", preset={"threshold": 3}, project={}, environ={})
    assert got.threshold == 3
    got = resolve_section(_Demo, name="demo", project={"threshold": 5}, cli={"threshold": 9}, environ=env)
    assert got.threshold == 9
    got = resolve_section(_Demo, name="demo", project={"threshold": 5}, cli={"threshold": None}, environ={})
    assert got.threshold == 5
    with pytest.raises(ConfigError, match=r"\[demo\] thresh"):
        resolve_section(_Demo, name="demo", project={"threshold": 5, "thresh": 1}, environ={})


def test_project_info_validation():
    assert ProjectInfo(name="a", trigger="x, y").trigger == ["x", "y"]
    with pytest.raises(ValueError):
        ProjectInfo(name="a b", trigger=["x"])
    with pytest.raises(ValueError):
        ProjectInfo(name="a", trigger=[""])


def test_malformed_project_toml_is_reported_with_path(project):
    p = project.config_path
    p.write_text(p.read_text() + "\n[nonsense]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"project.toml: unknown table \[nonsense\]"):
        open_project(project.root)
    p.write_text("schema_version = 1\n[project\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        open_project(project.root)
    p.write_text('schema_version = 99\n[project]\nname="a"\ntrigger=["b"]\n')
    with pytest.raises(ConfigError, match="newer than this lorakiln"):
        open_project(project.root)


def test_cli_init_and_status(tmp_path, cli):
    code, out = cli("init", "kafka", "--trigger", "kafka_hsr", "--base", "animagine-xl-3.1", cwd=tmp_path)
    assert code == 0, out
    assert (tmp_path / "kafka" / "project.toml").exists()
    assert (tmp_path / "kafka" / "manifest.jsonl").exists() and (tmp_path / "kafka" / "images").is_dir()
    assert "schema_version = 1" in (tmp_path / "kafka" / "project.toml").read_text()
    code, out = cli("--project", tmp_path / "kafka", "status")
    assert code == 0 and "kafka_hsr" in out
    code, out = cli("status", cwd=tmp_path / "kafka" / "images")  # a parent folder holds project.toml
    assert code == 0 and "no images yet" in out
    code, out = cli("status", cwd=tmp_path)
    assert code == 1 and "no lorakiln project" in out
    code, out = cli("init", "kafka", "--trigger", "x", cwd=tmp_path)
    assert code == 1 and "already exists" in out


def test_atomic_files_get_normal_permissions(tmp_path):
    from lorakiln.core.atomic import write_text

    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


def test_error_messages_keep_bracketed_text(tmp_path, project):
    import subprocess
    import sys

    p = project.config_path
    p.write_text(p.read_text() + "\n[nonsense]\nx = 1\n")
    res = subprocess.run([sys.executable, "-m", "lorakiln", "status"], cwd=project.root, capture_output=True,
                         text=True, env={**os.environ, "COLUMNS": "300"})
    assert res.returncode == 1
    assert "unknown table [nonsense]" in res.stderr
