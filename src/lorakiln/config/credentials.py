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
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

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
