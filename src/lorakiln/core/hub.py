"""Is the model hub reachable? One quick connection test, so an offline machine gets kiln's clear
message at once instead of huggingface_hub's six retries with backoff (20-35 s each time).

Every place that downloads from the hub can ask `hub_reachable()` first and, when it says no,
read only the local cache (`local_files_only=True`).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

PROBE_TIMEOUT = 3.0  # seconds to open a connection to the hub (or the proxy) before calling it unreachable
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")
_TRUE = {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE


def hub_endpoint() -> str:
    """The hub URL downloads go to: HF_ENDPOINT as it is now, else huggingface_hub's default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def hub_reachable(endpoint: str | None = None, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection to the hub, or to the proxy in between, opens. Refused, no route
    and no DNS fail at once; only a silently dropping firewall costs the timeout."""
    proxy = next((os.environ[v] for v in _PROXY_VARS if os.environ.get(v)), None)
    if proxy:
        url = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    else:
        url = urlsplit(endpoint or hub_endpoint())
    if not url.hostname:
        return True  # nothing to test: the download itself says what is wrong
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except (OSError, ValueError):
        return False
    return True
