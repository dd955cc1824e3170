"""KILN_* environment variables: a misspelled one is an error naming it, never silently ignored."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lorakiln.config.environment import CREDENTIAL_TABLES, OTHER_VARIABLES, credential_variables, misspelled
from lorakiln.config.resolve import resolve_section
from lorakiln.config.sections import sections
from lorakiln.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def _dedupe(environ):
    return resolve_section(sections()["dedupe"], name="dedupe", project={}, environ=environ)


@pytest.mark.parametrize("var, suggestion", [
    ("KILN_DEDUP__THRESHOLD", "KILN_DEDUPE__THRESHOLD"),  # an unknown section
    ("KILN_DEDUPE_THRESHOLD", "KILN_DEDUPE__THRESHOLD"),  # a known section with one underscore
    ("KILN_TRAIN_OPTIMIZER__LEARNING_RATE", "KILN_TRAIN__OPTIMIZER__LEARNING_RATE"),
    ("KILN_DANBOORU_APIKEY", "KILN_DANBOORU_API_KEY"),  # a credential field that does not exist
])
def test_misspelled_variable_is_an_error_naming_it(var, suggestion):
    with pytest.raises(ConfigError, match=rf"environment variable {var}: .*did you mean {suggestion}\?"):
        _dedupe({var: "3"})


def test_unknown_section_far_from_any_lists_the_sections():
    with pytest.raises(ConfigError, match=r"KILN_ZZZ__A: no section \[zzz\]; .*sections: .*dedupe"):
        _dedupe({"KILN_ZZZ__A": "1"})


def test_kilns_other_variables_and_foreign_names_pass():
    env = {v: "x" for v in [*OTHER_VARIABLES, *credential_variables()]}
    env.update({"KILN_DEDUPE__THRESHOLD": "3", "KILN_SOMETHING": "another program called kiln", "PATH": "/bin"})
    assert _dedupe(env).threshold == 3
    for var in ("KILN_DANBOORU_LOGIN", "KILN_DANBOORU_API_KEY", "KILN_GELBOORU_API_KEY", "KILN_GELBOORU_USER_ID",
                "KILN_E621_LOGIN", "KILN_E621_API_KEY", "KILN_E621_USERNAME", "KILN_CONFIG_DIR",
                "KILN_TEST_WORKERS", "KILN_CACHE_DIR"):
        assert misspelled(var, sections()) is None, var


def test_every_kiln_variable_named_in_the_code_is_known():
    """One list: a KILN_ name written anywhere in src/ or the dev script is one the check knows."""
    names: set[str] = set()
    for path in [*ROOT.joinpath("src").rglob("*.py"), ROOT / "dev"]:
        names |= set(re.findall(r"\bKILN_[A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8")))
    bad = {n: misspelled(n, sections()) for n in names if misspelled(n, sections())}
    assert not bad


def test_credential_tables_are_the_sites_credentials():
    from lorakiln.sources.registry import SITES

    assert set(CREDENTIAL_TABLES) == {SITES.get(n).credentials_key for n in SITES.names()}


def test_kiln_command_stops_on_a_misspelled_variable(project, cli, monkeypatch):
    monkeypatch.setenv("KILN_DEDUPE_THRESHOLD", "3")
    code, out = cli("dedupe", cwd=project.root)
    assert code == 1 and "KILN_DEDUPE_THRESHOLD" in out and "KILN_DEDUPE__THRESHOLD" in out
    monkeypatch.delenv("KILN_DEDUPE_THRESHOLD")
    monkeypatch.setenv("KILN_DEDUP__THRESHOLD", "3")
    code, out = cli("config", "show", "plan", cwd=project.root)
    assert code == 1 and "KILN_DEDUP__THRESHOLD" in out


@pytest.mark.parametrize("var, suggestion", [
    ("KILN_DANBORU_API_KEY", "KILN_DANBOORU_API_KEY"),  # a site name one letter short: the key was dropped
    ("KILN_DANBORU_LOGIN", "KILN_DANBOORU_LOGIN"),
    ("KILN_GELBORU_API_KEY", "KILN_GELBOORU_API_KEY"),
    ("KILN_GELBOORUU_USER_ID", "KILN_GELBOORU_USER_ID"),
    ("KILN_E62_USERNAME", "KILN_E621_USERNAME"),
    ("KILN_CONFIGDIR", "KILN_CONFIG_DIR"),  # close to one of kiln's other variables
    ("KILN_CACHE_DIRS", "KILN_CACHE_DIR"),
])
def test_misspelled_site_of_a_credential_is_an_error(var, suggestion):
    with pytest.raises(ConfigError, match=rf"environment variable {var}: .*did you mean {suggestion}\?"):
        _dedupe({var: "x"})


@pytest.mark.parametrize("var", ["KILN_PROJECT", "KILN_", "KILN_PIXIV_API_KEY", "KILN_HOME", "KILN_LOG_LEVEL"])
def test_names_far_from_kilns_pass(var):
    assert misspelled(var, sections()) is None


def test_fetch_settings_stop_on_a_misspelled_credential(project, cli, monkeypatch):
    monkeypatch.setenv("KILN_DANBORU_API_KEY", "x")
    code, out = cli("config", "show", "fetch", cwd=project.root)
    assert code == 1 and "KILN_DANBOORU_API_KEY" in out
