"""Config values out of any real range, malformed files and unknown keys: clear errors naming the
file (or the KILN_* variable) and the key, never a traceback, never a silently accepted value."""

import pytest

from lorakiln.config.resolve import env_overrides, resolve_section
from lorakiln.config.sections import sections
from lorakiln.core.errors import ConfigError
from lorakiln.services.project import open_project


def _resolve(name, project=None, environ=None, cli=None):
    return resolve_section(sections()[name], name=name, project=project or {}, environ=environ or {}, cli=cli)


def _append(project, text: str) -> None:
    p = project.config_path
    p.write_text(p.read_text() + "\n" + text + "\n")


def test_dedupe_threshold_beyond_64_bits_stops_dedupe(project, cli):
    _append(project, "[dedupe]\nthreshold = 99999999999999999999999")
    code, out = cli("--project", project.root, "dedupe")
    assert code == 1
    assert "project.toml" in out and "[dedupe] threshold: Input should be less than or equal to" in out


@pytest.mark.parametrize("section, values, words", [
    ("dedupe", {"threshold": 64}, "threshold 64 would make every pair"),  # 64-bit hashes: 0..63
    ("dedupe", {"aspect_tolerance": float("inf")}, "finite"),
    ("plan", {"weights": {"back": float("inf")}}, "finite"),
    ("plan", {"epochs": 10**12}, "less than or equal"),
    ("eval", {"weights": [float("nan")]}, "finite"),
    ("eval", {"probes": {"seeds": [-1]}}, "greater than or equal to 0"),
    ("filter", {"background": [300, 0, 0]}, "0 to 255"),
    ("filter", {"max_aspect": 0.5}, "every image would be dropped"),
    ("export", {"repeats": {"main": 10**9}}, "repeats.main: Input should be less than or equal to 10000"),
    ("train", {"seed": -3}, "greater than or equal to 0"),
    ("train", {"optimizer": {"learning_rate": 0}}, "greater than 0"),
    ("train", {"optimizer": {"learning_rate": -1e-4}}, "greater than 0"),
    ("train", {"optimizer": {"text_encoder_lr": -1e-5}}, "outside 0"),
    ("train", {"optimizer": {"text_encoder_lr": [1e-5, float("inf")]}}, "finite"),
    ("train", {"optimizer": {"optimizer_args": {"weight_decay": float("inf")}}}, "finite"),
    ("train", {"buckets": {"resolution": [1024, 10**6]}}, "outside 64"),
    ("train", {"buckets": {"max_bucket_reso": 10**15}}, "less than or equal"),  # would loop for ever
    ("train", {"buckets": {"min_bucket_reso": 1024, "max_bucket_reso": 512}}, "below min_bucket_reso"),
    ("train", {"loss": {"multires_noise_iterations": -1}}, "greater than or equal"),
    ("train", {"network": {"network_weights": 5}}, "valid string"),  # a path given a number
    ("fetch", {"queries": [{"site": "danbooru", "query": "x", "top": 10**30}]}, "queries.0.top"),
    ("filter", {"disable": "greyscale"}, "valid list, e.g. ['greyscale']"),  # a list given a string
])
def test_values_outside_their_real_range_are_refused(section, values, words):
    with pytest.raises(ConfigError) as e:
        _resolve(section, project=values)
    assert words in str(e.value) and "project.toml" in str(e.value)


def test_every_numeric_setting_refuses_inf_and_huge_integers():
    """Walk every section's fields: any int or float field refuses 10**30 and inf."""
    from lorakiln.config.messages import _inner_model

    checked = 0

    def walk(model, path):
        nonlocal checked
        for name, field in model.model_fields.items():
            inner = _inner_model(field.annotation)
            if inner is not None and name not in ("queries", "also"):
                walk(inner, (*path, name))
                continue
            text = str(field.annotation)
            for bad, kind in ((10**30, "int"), (float("inf"), "float")):
                if kind not in text or "dict" in text or "list" in text or "tuple" in text:
                    continue
                doc: dict = {}
                node = doc
                for p in path[1:]:
                    node = node.setdefault(p, {})
                node[name] = bad
                with pytest.raises(ConfigError):
                    _resolve(path[0], project=doc)
                checked += 1

    for sec, model in sections().items():
        walk(model, (sec,))
    assert checked > 100


def test_env_errors_name_the_variable_not_project_toml():
    with pytest.raises(ConfigError) as e:
        _resolve("dedupe", project={"threshold": 4}, environ={"KILN_DEDUPE__THRESHOLD": "99999999999999999999999"})
    assert "KILN_DEDUPE__THRESHOLD" in str(e.value) and "project.toml" not in str(e.value)
    with pytest.raises(ConfigError, match="KILN_FILTER__REQUIRE_TAGS.*JSON"):
        _resolve("filter", environ={"KILN_FILTER__REQUIRE_TAGS": "solo"})
    with pytest.raises(ConfigError, match="KILN_FILTER__REQUIRE_TAGS: not valid JSON"):
        _resolve("filter", environ={"KILN_FILTER__REQUIRE_TAGS": "[solo"})
    with pytest.raises(ConfigError, match="command line"):
        _resolve("dedupe", cli={"threshold": -1})
    with pytest.raises(ConfigError, match="KILN_TRAIN__OPTIMIZER__LEARNING_RATE.*finite"):
        _resolve("train", environ={"KILN_TRAIN__OPTIMIZER__LEARNING_RATE": "inf"})


def test_env_reaches_nested_tables():
    env = {"KILN_TRAIN__OPTIMIZER__LEARNING_RATE": "3e-4", "KILN_TRAIN__NETWORK__NETWORK_DIM": "8"}
    cfg = _resolve("train", environ=env)
    assert cfg.optimizer.learning_rate == 3e-4 and cfg.network.network_dim == 8
    assert env_overrides("train", env) == {"optimizer": {"learning_rate": "3e-4"}, "network": {"network_dim": "8"}}


def test_non_utf8_project_toml_names_the_file(project):
    project.config_path.write_bytes(project.config_path.read_bytes() + b'\n# caf\xe9\n')
    with pytest.raises(ConfigError, match=r"project.toml: not UTF-8 text \(byte 0xe9 on line \d+\)"):
        open_project(project.root)


def test_utf8_bom_is_accepted(project):
    project.config_path.write_bytes(b"\xef\xbb\xbf" + project.config_path.read_bytes())
    assert open_project(project.root).info.name == "kafka"


@pytest.mark.parametrize("text, line", [
    ('schema_version = 1\nschema_version = 2\n', 2),  # duplicate key
    ('schema_version = 1\n[project]\nname = "a"\n[project]\nname = "b"\n', 4),  # table twice
    ('schema_version = 1\n[project]\nname = "a\n', 3),  # unterminated string
    ('schema_version = 1\nx = 1979-13-45\n', 2),  # invalid date
    ('schema_version = 1\nx = ' + "[" * 500 + "]" * 500 + "\n", 2),  # nested too deeply
    ('schema_version = 1\nx = ' + "9" * 5000 + "\n", 2),  # integer too long to read
    ('schema_version = 1\nx = "\x01"\n', 2),  # control character
])
def test_malformed_toml_names_file_and_line(project, text, line):
    project.config_path.write_text(text)
    with pytest.raises(ConfigError) as e:
        open_project(project.root)
    msg = str(e.value)
    assert "project.toml: not valid TOML: line" in msg and f"line {line}," in msg


def test_unknown_keys_suggest_the_close_one(project):
    with pytest.raises(ConfigError, match=r"\[dedupe\] treshold: unknown key \(did you mean 'threshold'\?\)"):
        _resolve("dedupe", project={"treshold": 3})
    with pytest.raises(ConfigError, match=r"optimizer.learnig_rate: unknown key \(did you mean 'learning_rate'\?\)"):
        _resolve("train", project={"optimizer": {"learnig_rate": 3e-4}})
    with pytest.raises(ConfigError, match=r"learning_rate: not a key of this table; it belongs in \[train.optimizer\]"):
        _resolve("train", project={"learning_rate": 3e-4})
    with pytest.raises(ConfigError, match=r"queries.0.topp: unknown key \(did you mean 'top'\?\)"):
        _resolve("fetch", project={"queries": [{"site": "danbooru", "query": "x", "topp": 3}]})
    _append(project, "[dedup]\nthreshold = 3")
    with pytest.raises(ConfigError, match=r"unknown table \[dedup\] \(did you mean 'dedupe'\?\)"):
        open_project(project.root)
    project.config_path.write_text(project.config_path.read_text().replace("[dedup]", "[dedupe]")
                                   .replace("threshold = 3", "treshold = 3"))
    with pytest.raises(ConfigError, match="did you mean 'threshold'"):
        open_project(project.root)


def test_schema_version_out_of_range(project):
    text = project.config_path.read_text()
    for v in ("0", "-1", "true"):
        project.config_path.write_text(text.replace("schema_version = 1", f"schema_version = {v}"))
        with pytest.raises(ConfigError, match="schema_version"):
            open_project(project.root)
