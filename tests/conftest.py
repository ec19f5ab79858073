"""Shared fixtures: a fake Label Studio for the fast backend tests, conversational TRL rows, and a real Label Studio 1.23.2 for the
end-to-end tests (started once per test session from ``.venv-ls``; skipped with a reason when it is absent).

Environment knobs for the real one: ``RLTHF_LS_DATA_DIR`` (default ``.cache/ls-data``, migrated once and
reused), ``RLTHF_LS_USER``, ``RLTHF_LS_PASSWORD``, ``RLTHF_LS_TOKEN``, ``RLTHF_LS_URL`` + ``RLTHF_LS_TOKEN``
to use an already running server instead.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_ls():
    """An in-memory Label Studio (:class:`ml_backend.memory_client.InMemoryLabelStudio`)."""
    from ml_backend.memory_client import InMemoryLabelStudio

    return InMemoryLabelStudio()


@pytest.fixture
def trl_conversations():
    """Builds ``n`` rows of TRL's conversational format: a system and a user message, a right and a wrong answer."""

    def build(n: int) -> list[dict]:
        return [{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Question {i}?"}],
                 "chosen": [{"role": "assistant", "content": f"Right {i}."}],
                 "rejected": [{"role": "assistant", "content": f"Wrong {i}."}]} for i in range(n)]

    return build


# ---------------------------------------------------------------------- real Label Studio
LS_VENV = REPO / ".venv-ls"


@pytest.fixture(scope="session")
def label_studio():
    """A real Label Studio 1.23.2 on 127.0.0.1 for the whole session (``.venv-ls``; data dir reused)."""
    from ml_backend import ls_server

    url = os.environ.get("RLTHF_LS_URL")
    token = os.environ.get("RLTHF_LS_TOKEN", ls_server.DEFAULT_TOKEN)
    if url:
        yield {"url": url.rstrip("/"), "token": token, "started_in_s": 0.0, "first_start": False}
        return
    if not (LS_VENV / "bin" / "label-studio").exists():
        pytest.skip(f"Label Studio venv {LS_VENV} is absent: run `make .venv-ls/.installed` (or `make test`)")
    data_dir = Path(os.environ.get("RLTHF_LS_DATA_DIR", REPO / ".cache" / "ls-data"))
    first_start = not (data_dir / "label_studio.sqlite3").exists()
    server = ls_server.start_label_studio(
        data_dir=data_dir,
        username=os.environ.get("RLTHF_LS_USER", ls_server.DEFAULT_USER),
        password=os.environ.get("RLTHF_LS_PASSWORD", ls_server.DEFAULT_PASSWORD),
        token=token,
        timeout=float(os.environ.get("RLTHF_LS_START_TIMEOUT", "420")),
    )
    try:
        yield {"url": server.url, "token": server.token, "started_in_s": server.started_in_s,
               "first_start": first_start, "log": str(server.log_path)}
    finally:
        server.stop()


def setup_through_cli(label_studio: dict, pairs_file: Path, backend_url: str, *, title: str, capsys, user: str = "") -> dict:
    """``rlthf label-studio setup ... --json`` against the session's Label Studio (with the backend's basic-auth user
    when given); asserts it exits 0 and returns the JSON outcome it printed."""
    import json

    from rlthf_selector.cli import main

    args = ["label-studio", "setup", "--url", label_studio["url"], "--api-key", label_studio["token"],
            "--pairs", str(pairs_file), "--backend-url", backend_url, "--title", title, "--json"]
    assert main(args + (["--basic-auth-user", user] if user else [])) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@contextlib.contextmanager
def serve_backend(model_dir: Path, label_studio: dict, *, debounce_s: float, max_wait_s: float, user: str = "",
                  password: str = "", **settings):
    """The ML backend on 127.0.0.1 in a thread (werkzeug, threaded), talking to the real Label Studio, behind basic
    auth when ``user`` is given; yields its URL, app and :class:`~ml_backend.app.Backend`, and stops the server and
    the worker after. ``settings``: further :class:`~rlthf_selector.config.BackendConfig` fields."""
    import threading

    from werkzeug.serving import make_server

    from rlthf_selector.config import BackendConfig

    from ml_backend.app import create_app
    from ml_backend.ls_server import free_port

    config = BackendConfig(
        model_dir=str(model_dir), label_studio_url=label_studio["url"], label_studio_api_key=label_studio["token"],
        basic_auth_user=user, basic_auth_pass=password, debounce_s=debounce_s, max_wait_s=max_wait_s, **settings,
    )
    app = create_app(config)
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{port}", "app": app, "backend": app.extensions["rlthf"]}
    finally:
        server.shutdown()
        app.extensions["rlthf"].worker.stop()
