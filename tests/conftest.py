import os
from pathlib import Path

import pytest

# Tests run toy-size models: torch's OpenMP threads gain nothing there and, spin-waiting on a
# small shared machine, make tiny tensor ops 10-20x slower (measured). One thread per test
# process (xdist runs several processes) uses the cores best.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# nothing in the tests may reach a model hub
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# CLI output is checked as text: a wide console keeps long temporary paths on one line
os.environ["COLUMNS"] = "400"


@pytest.fixture
def project(tmp_path: Path):
    """A fresh project in a temporary folder."""
    from lorakiln.services.project import init_project

    return init_project(tmp_path / "proj", "kafka", ["kafka_hsr"], base=None)


@pytest.fixture
def cli(monkeypatch):
    """Run `kiln ...` in-process; returns (exit_code, output)."""
    from typer.testing import CliRunner

    from lorakiln.cli import common
    from lorakiln.cli.app import app

    runner = CliRunner()

    def run(*args: str, cwd: Path | None = None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        common.set_global_project(None)
        res = runner.invoke(app, [str(a) for a in args], catch_exceptions=True)
        exc = res.exception
        if exc is not None and not isinstance(exc, SystemExit):
            from lorakiln.core.errors import KilnError

            if isinstance(exc, KilnError):
                return 1, res.output + f"error: {exc}"
            raise exc
        return res.exit_code, res.output

    return run


# -- an unreachable hub: no internet in tests, HF_ENDPOINT points at a closed port on 127.0.0.1 ----
def _closed_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def unreachable_hub(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read once at import; the suite sets it
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    return endpoint
