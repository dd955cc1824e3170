"""Every KILN_* environment variable kiln reads, in one list, and the check that reports a
misspelled one instead of ignoring it.

Three kinds of variables:
- section settings, `KILN_<SECTION>__<KEY>[__<KEY>...]` (config/resolve.py reads them);
- site credentials, `KILN_<SITE>_<FIELD>` (config/credentials.py reads them);
- the few others in OTHER_VARIABLES.

A misspelled key inside a known section is already an error (the section model forbids unknown
keys), so a variable that is plainly meant for kiln is an error too, with a "did you mean":
one that names no section, a known section followed by one underscore where two belong, a
credential field that does not exist, a real credential field after a site name close to a
known one (a key otherwise dropped, the fetch run anonymously), and a name close to one of
OTHER_VARIABLES. (No misspelled name is written out here: a test checks every KILN_ name in the
code.) A KILN_ name that looks like none of these, such as KILN_PROJECT, or the API key of a
site kiln does not know, is left alone: other programs are called kiln too.
"""

from __future__ import annotations

import difflib
import os
from typing import Iterable, Mapping

from lorakiln.config.credentials import FIELDS as CREDENTIAL_FIELDS
from lorakiln.core.errors import ConfigError

PREFIX = "KILN_"

# KILN_* variables that are neither section settings nor credentials: name -> what it is
OTHER_VARIABLES = {
    "KILN_CONFIG_DIR": "folder of the user's credentials.toml (config/credentials.py)",
    "KILN_CACHE_DIR": "folder of derived files such as tokenizers (train/families/clip_tokenizer.py)",
    "KILN_TEST_WORKERS": "pytest workers for `./dev test` (the dev script)",
}

# credential tables: KILN_<TABLE>_<FIELD> (the sites' credentials_key; a test checks the site registry)
CREDENTIAL_TABLES = ("danbooru", "gelbooru", "safebooru", "e621")


def credential_variables() -> list[str]:
    """Every KILN_<SITE>_<FIELD> name load_credentials reads."""
    return [f"{PREFIX}{t.upper()}_{f.upper()}" for t in CREDENTIAL_TABLES for f in CREDENTIAL_FIELDS]


def known_variables(sections: Iterable[str]) -> list[str]:
    """Every fixed KILN_* name, and the `KILN_<SECTION>__` prefix of each section."""
    return sorted([*OTHER_VARIABLES, *credential_variables(), *(f"{PREFIX}{s.upper()}__" for s in sections)])


def misspelled(var: str, sections: Iterable[str]) -> str | None:
    """Why `var` looks meant for kiln but is read by nothing (with a "did you mean"), or None."""
    if not var.startswith(PREFIX) or var in OTHER_VARIABLES:
        return None
    names = sorted(s.upper() for s in sections)
    rest = var[len(PREFIX):]
    head, sep, tail = rest.partition("__")
    if sep and head in names:
        return None
    for table in CREDENTIAL_TABLES:
        start = f"{table.upper()}_"
        if rest.startswith(start):
            field = rest[len(start):]
            if field.lower() in CREDENTIAL_FIELDS:
                return None
            fields = [f.upper() for f in CREDENTIAL_FIELDS]
            close = difflib.get_close_matches(field, fields, n=1)
            hint = f" (did you mean {PREFIX}{start}{close[0]}?)" if close else ""
            return (f"not a credential kiln reads{hint}; [{table}] credentials are "
                    f"{', '.join(PREFIX + start + f for f in fields)}")
    why = _credential_of_unknown_site(rest) or _close_to_other(var, sep)
    if why:
        return why
    for name in names:
        if rest.startswith(f"{name}_") and len(rest) > len(name) + 1:
            return (f"not read by kiln (did you mean {PREFIX}{name}__{rest[len(name) + 1:].lstrip('_')}?); "
                    "section settings take two underscores after the section")
    if sep:
        close = difflib.get_close_matches(head, names, n=1)
        hint = f" (did you mean {PREFIX}{close[0]}__{tail}?)" if close else ""
        return (f"no section [{head.lower()}]{hint}; settings are KILN_<SECTION>__<KEY>, sections: "
                f"{', '.join(s.lower() for s in names)}")
    return None


def _credential_of_unknown_site(rest: str) -> str | None:
    """`<SITE>_<FIELD>` with a real credential field after a site name close to a known one."""
    for field in sorted(CREDENTIAL_FIELDS, key=len, reverse=True):  # API_KEY before KEY-like tails
        end = f"_{field.upper()}"
        site = rest[:-len(end)] if rest.endswith(end) else ""
        if not site or "__" in site:
            continue
        tables = [t.upper() for t in CREDENTIAL_TABLES]
        close = difflib.get_close_matches(site, tables, n=1, cutoff=0.6)
        if close:
            return (f"no site {site.lower()!r} (did you mean {PREFIX}{close[0]}{end}?); kiln reads credentials "
                    f"for {', '.join(t.lower() for t in tables)}, as KILN_<SITE>_<FIELD>")
        return None
    return None


def _close_to_other(var: str, sep: str) -> str | None:
    """A name close to one of kiln's fixed variables (a missing or extra letter or underscore)."""
    if sep:
        return None
    close = difflib.get_close_matches(var, list(OTHER_VARIABLES), n=1, cutoff=0.85)
    if close:
        return f"not read by kiln (did you mean {close[0]}?)"
    return None


def check_environment(sections: Iterable[str], environ: Mapping[str, str] | None = None) -> None:
    """Raise a ConfigError naming the first KILN_* variable that is meant for kiln but misspelled."""
    environ = os.environ if environ is None else environ
    sections = list(sections)
    for var in sorted(environ):
        why = misspelled(var, sections)
        if why:
            raise ConfigError(f"environment variable {var}", why)
