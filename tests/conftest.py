"""Shared fixtures: a fake Label Studio for the fast backend tests, and a real Label Studio 1.23.2 for the
end-to-end tests (started once per test session from ``.venv-ls``; skipped with a reason when it is absent).

Environment knobs for the real one: ``RLTHF_LS_DATA_DIR`` (default ``.cache/ls-data``, migrated once and
reused), ``RLTHF_LS_USER``, ``RLTHF_LS_PASSWORD``, ``RLTHF_LS_TOKEN``, ``RLTHF_LS_URL`` + ``RLTHF_LS_TOKEN``
to use an already running server instead.
"""

from __future__ import annotations

import copy
import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


class FakeLabelStudio:
    """In-memory stand-in for :class:`ml_backend.label_studio_client.LabelStudioClient`.

    Holds projects, tasks (with annotations), predictions and views like Label Studio does, and records
    every call. ``delay_s`` slows ``list_tasks`` (a long training); ``fail`` makes every call raise
    :class:`LabelStudioUnavailable`.
    """

    def __init__(self) -> None:
        self.projects: dict[int, dict[str, Any]] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.predictions: list[dict[str, Any]] = []
        self.views: dict[int, dict[str, Any]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.delay_s = 0.0
        self.fail = False
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self._ann_ids = itertools.count(1)
        self.last_error = None
        self.last_ok = None

    # -- helpers for tests
    def add_project(self, label_config: str, pairs: list[dict[str, Any]]) -> int:
        pid = next(self._ids)
        self.projects[pid] = {"id": pid, "label_config": label_config, "model_version": "", "sampling": "Sequential sampling"}
        for p in pairs:
            tid = next(self._ids)
            self.tasks[tid] = {"id": tid, "project": pid, "data": dict(p), "annotations": []}
        return pid

    def task_ids(self, pid: int) -> list[int]:
        return sorted(t for t, v in self.tasks.items() if v["project"] == pid)

    def annotate(self, tid: int, result: list[dict[str, Any]], *, was_cancelled: bool = False) -> dict[str, Any]:
        ann = {"id": next(self._ann_ids), "result": result, "was_cancelled": was_cancelled,
               "updated_at": f"2026-01-01T00:00:{len(self.calls):02d}Z", "ground_truth": False}
        self.tasks[tid]["annotations"].append(ann)
        return ann

    def _check(self, what: str, arg: Any = None) -> None:
        from ml_backend.label_studio_client import LabelStudioUnavailable

        self.calls.append((what, arg))
        if self.fail:
            self.last_error = "down"
            raise LabelStudioUnavailable(f"Label Studio {what} failed: ConnectError")
        self.last_error = None

    # -- the client interface the backend uses
    def get_project(self, pid: int) -> dict[str, Any]:
        self._check("get_project", pid)
        return copy.deepcopy(self.projects[pid])

    def list_tasks(self, pid: int) -> list[dict[str, Any]]:
        self._check("list_tasks", pid)
        out = [copy.deepcopy(t) for t in self.tasks.values() if t["project"] == pid]
        if self.delay_s:  # a slow read: what arrives meanwhile is seen by the next training only
            time.sleep(self.delay_s)
        return out

    def import_predictions(self, pid: int, predictions: list[dict[str, Any]]) -> int:
        self._check("import_predictions", len(predictions))
        self.predictions.extend(copy.deepcopy(predictions))
        return len(predictions)

    def update_project(self, pid: int, **fields: Any) -> dict[str, Any]:
        self._check("update_project", fields)
        self.projects[pid].update(fields)
        return copy.deepcopy(self.projects[pid])

    def update_task_data(self, tid: int, data: dict[str, Any]) -> None:
        self._check("update_task_data", tid)
        self.tasks[tid]["data"] = dict(data)  # replaces the whole dict, as Label Studio does

    def ensure_view(self, pid: int, title: str, data: dict[str, Any]) -> int:
        self._check("ensure_view", title)
        self.views[pid] = {"title": title, **data}
        return pid

    def export_tasks(self, pid: int, *, all_tasks: bool = True) -> list[dict[str, Any]]:
        self._check("export_tasks", pid)
        out = []
        for t in self.list_tasks(pid):
            t["predictions"] = [p for p in self.predictions if p["task"] == t["id"]]
            if all_tasks or t["annotations"]:
                out.append(t)
        return out

    def predictions_for(self, tid: int, model_version: str) -> list[dict[str, Any]]:
        return [p for p in self.predictions if p["task"] == tid and p["model_version"] == model_version]


@pytest.fixture
def fake_ls() -> FakeLabelStudio:
    return FakeLabelStudio()


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
