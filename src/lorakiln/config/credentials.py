"""Site credentials: from the environment or the user's credentials file, never from a project.

Environment (wins): KILN_<SITE>_LOGIN, KILN_<SITE>_API_KEY, KILN_<SITE>_USER_ID, KILN_<SITE>_USERNAME
File: $KILN_CONFIG_DIR/credentials.toml, else $XDG_CONFIG_HOME/lorakiln/credentials.toml,
else ~/.config/lorakiln/credentials.toml, one table per site:

```toml
[danbooru]
login = "alice"
api_key = "..."

[gelbooru]
user_id = "123456"     # the numeric id, not the login
api_key = "..."

[e621]
login = "alice"        # also names you in the User-Agent, as e621 asks
api_key = "..."
```
The key is held as a SecretStr so it never shows in a repr, a log line or a traceback.
Text a site sends back (error bodies, pages) can still echo it: `secret_forms` lists every
form it can take there and `redact_forms` masks them.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import quote, quote_plus

import tomlkit
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from lorakiln.core.errors import ConfigError

FIELDS = ("login", "api_key", "user_id", "username")
# URL query parameters that carry credentials: never stored, cached, logged or saved in a base URL
SECRET_PARAMS = frozenset({"api_key", "user_id", "login", "password_hash", "pass_hash", "key"})


class SiteCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    login: str | None = None
    api_key: SecretStr | None = None
    user_id: str | None = None
    username: str | None = None  # for the User-Agent when no login is given

    @property
    def key(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None

    @property
    def who(self) -> str | None:
        """The name to put in a User-Agent."""
        return self.username or self.login

    @property
    def any(self) -> bool:
        return bool(self.key)


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("KILN_CONFIG_DIR"):
        return Path(env["KILN_CONFIG_DIR"])
    if env.get("XDG_CONFIG_HOME"):
        return Path(env["XDG_CONFIG_HOME"]) / "lorakiln"
    return Path.home() / ".config" / "lorakiln"


def credentials_path(environ: Mapping[str, str] | None = None) -> Path:
    return config_dir(environ) / "credentials.toml"


def load_credentials(site: str, environ: Mapping[str, str] | None = None) -> SiteCredentials:
    """Credentials for one site table (e.g. "danbooru"); fields from the environment win."""
    env = os.environ if environ is None else environ
    values = dict(_file_table(credentials_path(env), site))
    prefix = "KILN_" + re.sub(r"[^A-Za-z0-9]", "_", site).upper() + "_"
    for f in FIELDS:
        if env.get(prefix + f.upper()):
            values[f] = env[prefix + f.upper()]
    try:
        return SiteCredentials.model_validate({k: str(v) for k, v in values.items()})
    except ValidationError as e:
        bad = ", ".join(str(err["loc"][0]) for err in e.errors())
        raise ConfigError(credentials_path(env), f"[{site}] unknown or bad field(s): {bad}; "
                          f"use {', '.join(FIELDS)}") from None


def _file_table(path: Path, site: str) -> dict:
    if not path.exists():
        return {}
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
    except tomlkit.exceptions.ParseError as e:
        # the parser's message gives a line and column, never the text around it
        raise ConfigError(path, f"not valid TOML (line {e.line}, column {e.col})") from None
    except OSError as e:
        raise ConfigError(path, f"cannot read: {e.strerror}") from None
    table = doc.get(site) or {}
    if not isinstance(table, dict):
        raise ConfigError(path, f"[{site}] must be a table")
    return table


# -- redaction ---------------------------------------------------------------------------------
MASK = "***"
_MIN_PLAIN = 3  # shorter values would mask ordinary text
_MIN_CORE = 8  # a base64 run of a secret inside a longer encoded text


def secret_forms(secrets: Iterable[str | None], basic: tuple[str, str] | None = None) -> list[str]:
    """Every way these secrets can appear in text a site echoes back, longest first: as written,
    URL- and percent-encoded (either hex case), JSON- and HTML-escaped, base64 (standard or
    URL-safe, padded or not, and the run of characters they give at any offset inside a longer
    base64 text), and the HTTP Basic credential base64("login:key") in full."""
    forms: set[str] = set()
    for s in (s for s in secrets if s and len(s) >= _MIN_PLAIN):
        forms |= _text_forms(s) | _base64_forms(s.encode())
        if len(s) >= _MIN_CORE:
            forms |= _base64_cores(s.encode())
    if basic and all(basic):
        for enc in _base64_forms(f"{basic[0]}:{basic[1]}".encode()):
            forms |= {enc, *_percent(enc)}
    return sorted((f for f in forms if len(f) >= _MIN_PLAIN), key=len, reverse=True)


def redact_forms(text: str, forms: Iterable[str]) -> str:
    """`text` with every form (from secret_forms) masked."""
    for f in forms:
        if f in text:
            text = text.replace(f, MASK)
    return text


def _text_forms(s: str) -> set[str]:
    return {s, *_percent(s), quote_plus(s), json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1],
            html.escape(s)}


def _percent(s: str) -> set[str]:
    upper = {quote(s, safe=""), quote(s), quote_plus(s)}
    return upper | {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), u) for u in upper}


def _base64_forms(raw: bytes) -> set[str]:
    std, url = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    return {std, url, std.rstrip("="), url.rstrip("=")}


def _base64_cores(raw: bytes) -> set[str]:
    """The base64 characters fixed by `raw` alone, for each of the three byte offsets it may sit at."""
    cores = set()
    for off in range(3):
        enc = base64.b64encode(b"\0" * off + raw).decode()
        core = enc[-(-8 * off // 6): 8 * (off + len(raw)) // 6]
        if len(core) >= _MIN_CORE:
            cores |= {core, core.translate(str.maketrans("+/", "-_"))}
    return cores
