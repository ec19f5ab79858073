"""An in-memory Label Studio with the interface of :class:`~ml_backend.label_studio_client.LabelStudioClient`.

For the fast tests, the benchmark and the load script: projects, tasks with annotations, predictions and
views held like Label Studio holds them (a task PATCH replaces the whole data dict), every call recorded.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from typing import Any

class InMemoryLabelStudio:
    """In-memory stand-in for :class:`ml_backend.label_studio_client.LabelStudioClient`.

    Holds projects, tasks (with annotations), predictions and views like Label Studio does, and records
    every call. ``delay_s`` slows ``list_tasks`` (a long training); ``fail`` makes every call raise
    :class:`LabelStudioUnavailable`.
    """

    def __init__(self) -> None:
        self.projects: dict[int, dict[str, Any]] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.predictions: list[dict[str, Any]] = []
        self.views: dict[int, dict[str, dict[str, Any]]] = {}  # project id -> title -> view data
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
        """A new project holding one task per data dict; its id."""
        pid = next(self._ids)
        self.projects[pid] = {"id": pid, "label_config": label_config, "model_version": "", "sampling": "Sequential sampling"}
        for p in pairs:
            tid = next(self._ids)
            self.tasks[tid] = {"id": tid, "project": pid, "data": dict(p), "annotations": []}
        return pid

    def task_ids(self, pid: int) -> list[int]:
        return sorted(t for t, v in self.tasks.items() if v["project"] == pid)

    def annotate(self, tid: int, result: list[dict[str, Any]], *, was_cancelled: bool = False) -> dict[str, Any]:
        with self.lock:
            ann = {"id": next(self._ann_ids), "result": result, "was_cancelled": was_cancelled,
                   "updated_at": f"{time.time():.6f}", "ground_truth": False}
            self.tasks[tid]["annotations"].append(ann)
            return copy.deepcopy(ann)

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
        with self.lock:
            out = [copy.deepcopy(t) for t in self.tasks.values() if t["project"] == pid]
        if self.delay_s:  # a slow read: what arrives meanwhile is seen by the next training only
            time.sleep(self.delay_s)
        return out

    def import_tasks(self, pid: int, tasks: list[dict[str, Any]]) -> list[int]:
        """New tasks from ``{"data", "predictions"}`` records; their ids in order."""
        self._check("import_tasks", len(tasks))
        ids = []
        with self.lock:
            for record in tasks:
                tid = next(self._ids)
                self.tasks[tid] = {"id": tid, "project": pid, "data": dict(record["data"]), "annotations": []}
                self.predictions.extend({**p, "task": tid} for p in copy.deepcopy(record.get("predictions") or []))
                ids.append(tid)
        return ids

    def find_project(self, title: str) -> dict[str, Any] | None:
        self._check("find_project", title)
        found = [p for p in self.projects.values() if p.get("title") == title]
        return copy.deepcopy(found[0]) if found else None

    def create_project(self, title: str, label_config: str, **fields: Any) -> dict[str, Any]:
        self._check("create_project", title)
        pid = self.add_project(label_config, [])
        self.projects[pid].update(title=title, **fields)
        return copy.deepcopy(self.projects[pid])

    def connect_ml_backend(self, pid: int, url: str, **kw: Any) -> dict[str, Any]:
        """Records the connection; unlike Label Studio, calls no ``/setup`` (the tests do)."""
        self._check("connect_ml_backend", url)
        self.projects[pid]["ml_backend_url"] = url
        return {"id": pid, "url": url}

    def list_ml_backends(self, pid: int) -> list[dict[str, Any]]:
        self._check("list_ml_backends", pid)
        url = self.projects[pid].get("ml_backend_url")
        return [{"id": pid, "url": url}] if url else []

    def import_predictions(self, pid: int, predictions: list[dict[str, Any]]) -> int:
        self._check("import_predictions", len(predictions))
        with self.lock:
            self.predictions.extend(copy.deepcopy(predictions))
        return len(predictions)

    def delete_unlabeled_task_predictions(self, pid: int) -> int:
        """Drop the predictions of the project's tasks without a submitted annotation, as Label Studio's Data Manager
        action over ``total_annotations == 0`` does; the count dropped."""
        self._check("delete_unlabeled_task_predictions", pid)
        with self.lock:
            unlabeled = {t for t, v in self.tasks.items() if v["project"] == pid
                         and not any(not a.get("was_cancelled") for a in v["annotations"])}
            kept = [p for p in self.predictions if p["task"] not in unlabeled]
            dropped = len(self.predictions) - len(kept)
            self.predictions = kept
        return dropped

    def update_project(self, pid: int, **fields: Any) -> dict[str, Any]:
        self._check("update_project", fields)
        self.projects[pid].update(fields)
        return copy.deepcopy(self.projects[pid])

    def update_task_data(self, tid: int, data: dict[str, Any]) -> None:
        self._check("update_task_data", tid)
        with self.lock:
            self.tasks[tid]["data"] = dict(data)  # replaces the whole dict, as Label Studio does

    def ensure_view(self, pid: int, title: str, data: dict[str, Any]) -> int:
        self._check("ensure_view", title)
        with self.lock:
            views = self.views.setdefault(pid, {})
            views[title] = {"title": title, **copy.deepcopy(dict(data))}
            return pid * 1000 + list(views).index(title)

    def export_tasks(self, pid: int, *, all_tasks: bool = True) -> list[dict[str, Any]]:
        self._check("export_tasks", pid)
        out = []
        for t in self.list_tasks(pid):
            t["predictions"] = [p for p in self.predictions if p["task"] == t["id"]]
            if all_tasks or t["annotations"]:
                out.append(t)
        return out

    def predictions_for(self, tid: int, model_version: str) -> list[dict[str, Any]]:
        """The predictions of one task under one model version."""
        return [p for p in self.predictions if p["task"] == tid and p["model_version"] == model_version]
