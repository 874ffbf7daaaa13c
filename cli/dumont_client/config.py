"""Where the API key and URL come from: arguments, then the environment, then `dumont login`'s file.

The file is `config.json` in the user config directory (`~/.config/dumont` on Linux, or
`$DUMONT_CONFIG_DIR`), readable by its owner only (0600), because it holds a bearer token.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

DEFAULT_API_URL = "https://dumontcloud.com"
API_KEY_VARIABLE = "DUMONT_API_KEY"
API_URL_VARIABLE = "DUMONT_API_URL"
CONFIG_DIR_VARIABLE = "DUMONT_CONFIG_DIR"
CONFIG_FILE_NAME = "config.json"


@dataclass(frozen=True)
class Settings:
    api_key: str | None
    api_url: str


def config_dir() -> Path:
    override = os.environ.get(CONFIG_DIR_VARIABLE)
    return Path(override) if override else Path(platformdirs.user_config_dir("dumont"))


def config_path() -> Path:
    return config_dir() / CONFIG_FILE_NAME


def read_config() -> dict[str, str]:
    """The saved login, or {} when there is none (or it is unreadable)."""
    try:
        data = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return {}
    return {key: value for key, value in data.items() if isinstance(value, str)}


def write_config(*, api_url: str, api_key: str) -> Path:
    """Save the login with mode 0600 (the directory 0700), replacing any earlier one."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    # Created 0600 from the first byte: the token is never readable by others, even briefly.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"api_url": api_url, "api_key": api_key}, handle, indent=2)
        handle.write("\n")
    os.chmod(temporary, 0o600)  # an older temporary file may have had another mode
    os.replace(temporary, path)
    return path


def normalize_api_url(url: str) -> str:
    """`https://host`, `https://host/` and `https://host/api/` all mean the same API."""
    url = url.strip().rstrip("/")
    if url.endswith("/api"):
        url = url[: -len("/api")]
    if "://" not in url:
        url = f"https://{url}"
    return url


def resolve(api_key: str | None = None, api_url: str | None = None) -> Settings:
    """Arguments first, then DUMONT_API_KEY / DUMONT_API_URL, then the saved login."""
    saved = read_config()
    key = api_key or os.environ.get(API_KEY_VARIABLE) or saved.get("api_key")
    url = api_url or os.environ.get(API_URL_VARIABLE) or saved.get("api_url") or DEFAULT_API_URL
    return Settings(api_key=key or None, api_url=normalize_api_url(url))
