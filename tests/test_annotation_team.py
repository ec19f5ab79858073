"""Fast tests of what an annotation team meets in Label Studio: blind queued tasks, one prediction per task, the
export's record of blind labels, and a setup that checks the backend first and rolls back what it created.

The Label Studio side is :class:`ml_backend.memory_client.InMemoryLabelStudio` or a small scripted client; the
same behaviour against a real Label Studio 1.23.2 is in ``tests/test_label_studio_e2e.py``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flask")

from label_config import load_label_config, parse_label_config  # noqa: E402
from rlthf_selector.config import BackendConfig  # noqa: E402
from rlthf_selector.synthetic import make_synthetic_pairs  # noqa: E402

from ml_backend.app import create_app  # noqa: E402

PAIRWISE = load_label_config("pairwise")
CONTROL = parse_label_config(PAIRWISE)


def _pair_data(n: int, seed: int = 5) -> list[dict]:
    p = make_synthetic_pairs(n, seed=seed)
    return [{"prompt": str(p.prompt[i]), "response_a": str(p.response_a[i]), "response_b": str(p.response_b[i]),
             "ai_label": "a" if p.ai_label[i] > 0 else "b", "pair_id": str(p.ids[i])} for i in range(n)]


def _trained_backend(tmp_path: Path, fake, n: int = 80, **overrides):
    """A project of ``n`` pairs connected to a backend (worker driven by the test) and trained once."""
    pid = fake.add_project(PAIRWISE, _pair_data(n))
    config = BackendConfig(model_dir=str(tmp_path / "models"), debounce_s=0.0, max_wait_s=0.0, **overrides)
    app = create_app(config, client_factory=lambda entry: fake, start_worker=False)
    client = app.test_client()
    r = client.post("/setup", json={"project": f"{pid}.1700000000", "schema": PAIRWISE})
    assert r.status_code == 200, r.get_json()
    backend = app.extensions["rlthf"]
    assert backend.worker.run_due() == [pid]
    return client, backend, pid


def _retrain(client, backend, pid: int) -> None:
    client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": pid}})
    assert backend.worker.run_due() == [pid]


# ---------------------------------------------------------------------- blind by default
def test_queued_tasks_get_predictions_without_an_answer_and_the_rest_keep_theirs(tmp_path, fake_ls):
    client, backend, pid = _trained_backend(tmp_path, fake_ls)
    state = backend.registry.get(pid).state
    queued = {int(t) for t, p in zip(state.task_ids, state.priority) if np.isfinite(p)}
    assert 0 < len(queued) < len(state.task_ids)
    for tid in fake_ls.task_ids(pid):
        (prediction,) = fake_ls.predictions_for(tid, state.model_version)
        pos = state.position(tid)
        if tid in queued:  # nothing to pre-select, but the score still puts it in the queue's place
            assert prediction["result"] == [] and prediction["score"] < 0.5
            assert prediction["score"] == pytest.approx(state.score[pos])
        else:
            assert CONTROL.label_of(prediction["result"]) == state.labels[pos] != 0


def test_show_prelabels_gives_queued_tasks_their_label(tmp_path, fake_ls):
    client, backend, pid = _trained_backend(tmp_path, fake_ls, show_prelabels=True)
    state = backend.registry.get(pid).state
    for tid in fake_ls.task_ids(pid):
        (prediction,) = fake_ls.predictions_for(tid, state.model_version)
        assert CONTROL.label_of(prediction["result"]) == state.labels[state.position(tid)] != 0


def test_predict_answers_queued_tasks_blind_too_unless_prelabels_are_shown(tmp_path, fake_ls):
    # Label Studio asks /predict for a task without a prediction (a moment between a retrain's delete and its import):
    # a queued pair must still open with nothing pre-selected.
    for show in (False, True):
        client, backend, pid = _trained_backend(tmp_path / str(show), fake_ls, show_prelabels=show)
        payload = {"project": f"{pid}.1700000000", "label_config": PAIRWISE,
                   "tasks": [{"id": t, "project": pid, "data": fake_ls.tasks[t]["data"]} for t in fake_ls.task_ids(pid)]}
        results = client.post("/predict", json=payload).get_json()["results"]
        queued = [r for r in results if r["rlthf"]["priority"] is not None]
        others = [r for r in results if r["rlthf"]["priority"] is None]
        assert queued and others and all(r["score"] < 0.5 for r in queued)
        assert all((r["result"] == []) != show for r in queued)  # blind unless prelabels are shown
        assert all(r["result"] for r in others)


def test_show_prelabels_reads_its_environment_variable():
    assert BackendConfig.from_env({}).show_prelabels is False
    assert BackendConfig.from_env({"RLTHF_SHOW_PRELABELS": "yes"}).show_prelabels is True
    with pytest.raises(ValueError, match="RLTHF_SHOW_PRELABELS='maybe'"):
        BackendConfig.from_env({"RLTHF_SHOW_PRELABELS": "maybe"})


# ---------------------------------------------------------------------- one prediction per task
def test_retrains_leave_one_prediction_per_task_and_annotated_tasks_keep_theirs(tmp_path, fake_ls):
    client, backend, pid = _trained_backend(tmp_path, fake_ls)
    tasks = fake_ls.task_ids(pid)
    labelled = tasks[:3]
    kept_before = {}
    for tid in labelled:  # humans answer three pairs under rlthf-1
        kept_before[tid] = fake_ls.predictions_for(tid, "rlthf-1")
        fake_ls.annotate(tid, CONTROL.result(1))
    for _ in range(4):
        _retrain(client, backend, pid)
    state = backend.registry.get(pid).state
    assert state.model_version == "rlthf-5"
    per_task = Counter(p["task"] for p in fake_ls.predictions)
    assert max(per_task.values()) == 1 and set(per_task) == set(tasks)
    for tid in labelled:  # the prediction an annotation may have started from stays; no newer one is added
        assert [p for p in fake_ls.predictions if p["task"] == tid] == kept_before[tid]
    for tid in set(tasks) - set(labelled):
        assert len(fake_ls.predictions_for(tid, "rlthf-5")) == 1


# ---------------------------------------------------------------------- the export's record of blind labels
def _task(tid: int, *, annotation: dict | None, predictions: list[dict], ai: str = "a") -> dict:
    return {"id": tid, "data": {"prompt": f"p{tid}", "response_a": "A text", "response_b": "B text", "ai_label": ai,
                                "pair_id": f"pair-{tid}"},
            "annotations": [annotation] if annotation else [], "predictions": predictions}


def test_export_records_whether_each_human_label_was_given_blind():
    from rlthf_selector.label_studio_tasks import task_labels

    labelled = {"id": 70, "result": CONTROL.result(1), "score": 0.8, "model_version": "rlthf-3"}
    blank = {"id": 71, "result": [], "score": 0.1, "model_version": "rlthf-3"}
    right = CONTROL.result(-1)
    taken_over = [dict(right[0], origin="prediction-changed")]
    tasks = [
        _task(1, annotation={"id": 11, "result": right}, predictions=[]),                                  # typed in
        _task(2, annotation={"id": 12, "result": right, "parent_prediction": 71}, predictions=[blank]),    # blind queue
        _task(3, annotation={"id": 13, "result": right, "parent_prediction": 70}, predictions=[labelled]),  # prelabel
        _task(4, annotation={"id": 14, "result": taken_over}, predictions=[]),  # its prediction since deleted
        _task(5, annotation=None, predictions=[labelled]),                                                 # no human
    ]
    got = task_labels(tasks, label_config=PAIRWISE, model_version="rlthf-3")
    records = {r["task_id"]: r for r in got.human_labels}
    assert sorted(records) == [1, 2, 3, 4]
    assert {t: r["blind"] for t, r in records.items()} == {1: True, 2: True, 3: False, 4: False}
    assert records[3] == {"id": "pair-3", "task_id": 3, "label": "b", "blind": False, "annotation_ids": [13],
                          "order_shown": ["a", "b"]}


def test_export_project_writes_the_human_labels_beside_the_data_set(tmp_path):
    from ml_backend.cli import export_project

    tasks = [_task(1, annotation={"id": 11, "result": CONTROL.result(1)}, predictions=[]),
             _task(2, annotation=None, predictions=[])]

    class Client:
        def get_project(self, pid):
            return {"id": pid, "label_config": PAIRWISE, "model_version": "rlthf-2"}

        def list_tasks(self, pid):
            return tasks

    summary = export_project(Client(), 4, tmp_path)
    assert summary["human_labels"] == {"path": str(tmp_path / "human_labels.jsonl"), "blind": 1, "saw_prelabel": 0}
    rows = [json.loads(line) for line in (tmp_path / "human_labels.jsonl").read_text().splitlines()]
    assert [(r["id"], r["label"], r["blind"]) for r in rows] == [("pair-1", "a", True)]


# ---------------------------------------------------------------------- setup: backend first, roll back on failure
class _ScriptedLabelStudio:
    """Just what ``setup_project`` calls; ``fail_on`` names the call that raises."""

    def __init__(self, *, existing: dict | None = None, fail_on: str = ""):
        self.existing = existing
        self.fail_on = fail_on
        self.calls: list[str] = []
        self.deleted_projects: list[int] = []
        self.deleted_tasks: list[int] = []

    def _call(self, name: str) -> None:
        from ml_backend.label_studio_client import LabelStudioError

        self.calls.append(name)
        if name == self.fail_on:
            raise LabelStudioError(f"Label Studio {name} failed: HTTP 400: the whole reason, to its last word")

    def find_project(self, title):
        return self.existing

    def create_project(self, title, label_config, **kw):
        self._call("create_project")
        return {"id": 9, "label_config": label_config}

    def update_project(self, pid, **fields):
        self._call("update_project")
        return {"id": pid, **fields}

    def list_tasks(self, pid):
        return [{"id": 1, "data": {"pair_id": "already"}}]

    def import_tasks(self, pid, records):
        self._call("import_tasks")
        return list(range(100, 100 + len(records)))

    def connect_ml_backend(self, pid, url, **kw):
        self._call("connect_ml_backend")
        return {"id": 3}

    def delete_project(self, pid):
        self.deleted_projects.append(pid)

    def delete_tasks(self, pid, ids):
        self.deleted_tasks.extend(ids)


def test_setup_with_a_dead_backend_creates_nothing_and_says_so_whole(monkeypatch):
    from ml_backend.cli import SetupError, setup_project
    from ml_backend.ls_server import free_port

    pairs = make_synthetic_pairs(5, seed=1)
    ls = _ScriptedLabelStudio()
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SetupError) as info:
        setup_project(ls, pairs, backend_url=url)
    message = str(info.value)
    assert message.startswith(f"the ML backend at {url} does not answer (ConnectError")
    assert message.endswith("Nothing was created in Label Studio.")
    assert ls.calls == []


@pytest.mark.parametrize("existing", [None, {"id": 4, "label_config": PAIRWISE}], ids=["new project", "reused project"])
def test_setup_rolls_back_what_it_created_when_connecting_the_backend_fails(existing):
    from ml_backend.cli import SetupError, setup_project

    pairs = make_synthetic_pairs(5, seed=1)
    ls = _ScriptedLabelStudio(existing=existing, fail_on="connect_ml_backend")
    with pytest.raises(SetupError) as info:
        setup_project(ls, pairs, backend_url="http://backend:9090", backend_check=False)
    message = str(info.value)
    assert "the whole reason, to its last word" in message
    if existing is None:
        assert ls.deleted_projects == [9] and message.endswith("project 9, created by this run, was deleted again")
    else:  # a reused project keeps its tasks; only the ones this run imported go
        assert ls.deleted_projects == [] and ls.deleted_tasks == list(range(100, 105))
        assert message.endswith("the 5 tasks this run imported into project 4 were deleted again")


def test_label_studio_errors_keep_their_whole_message():
    from ml_backend.label_studio_client import _error_text

    reason = ("Can't connect to ML backend http://127.0.0.1:1, health check failed. Make sure it is up and your "
              "firewall is properly configured. <a href=\"https://labelstud.io/guide/ml.html\">Learn more</a> about how "
              "to set up an ML backend. Additional info: " + "x" * 300 + " end.")
    text = _error_text({"detail": "Validation error", "validation_errors": {"non_field_errors": [reason]},
                        "exc_info": "a long trace " * 100})
    assert text.startswith("Validation error: Can't connect to ML backend")
    assert "Learn more (https://labelstud.io/guide/ml.html) about" in text and text.endswith(" end.")
    assert "trace" not in text


# ---------------------------------------------------------------------- the backend's log
def test_each_webhook_retrain_and_write_back_is_logged_with_its_duration(tmp_path, fake_ls, caplog):
    import logging
    import re

    caplog.set_level(logging.INFO, logger="ml_backend")
    client, backend, pid = _trained_backend(tmp_path, fake_ls)
    tid = fake_ls.task_ids(pid)[0]
    ann = fake_ls.annotate(tid, CONTROL.result(1))
    body = {"action": "ANNOTATION_CREATED", "project": {"id": pid}, "task": {"id": tid}, "annotation": dict(ann, task=tid)}
    assert client.post("/webhook", json=body).get_json()["status"] == "queued"
    assert client.post("/webhook", json=body).get_json()["status"] == "duplicate"
    backend.worker.run_due()
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    patterns = [
        rf"retrain of project {pid}: trained, model version rlthf-1, in \d+\.\d\d s",
        rf"write-back of rlthf-1 to project {pid}: 80 predictions \(\d+ older removed\), \d+ tasks patched, in \d+\.\d\d s",
        rf"webhook ANNOTATION_CREATED for project {pid}: retrain queued, in \d+\.\d ms",
        rf"webhook ANNOTATION_CREATED for project {pid}: duplicate, in \d+\.\d ms",
        rf"retrain of project {pid}: trained, model version rlthf-2, in \d+\.\d\d s",
        rf"write-back of rlthf-2 to project {pid}: 79 predictions \(79 older removed\), \d+ tasks patched, in \d+\.\d\d s",
    ]
    for pattern in patterns:
        assert any(re.fullmatch(pattern, line) for line in lines), (pattern, lines)


# ---------------------------------------------------------------------- rlthf serve
@pytest.mark.parametrize("flags, server", [([], "rlthf-ml-backend"), (["--development"], "Werkzeug")],
                         ids=["default: waitress", "--development: Flask"])
def test_rlthf_serve_uses_the_production_server_unless_asked_for_flasks(tmp_path, flags, server):
    import os
    import subprocess
    import sys
    import urllib.request

    from ml_backend.ls_server import REPO_ROOT, free_port, wait_healthy

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "BASIC_AUTH_"))}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rlthf_selector.cli", "serve", "--port", str(port),
                                 "--model-dir", str(tmp_path / "models"), *flags],
                                cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", timeout=60, process=proc, log_path=log)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.headers["Server"].startswith(server)
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_rerun_of_setup_says_it_reused_the_project_and_imported_no_new_pairs(tmp_path, monkeypatch, capsys):
    import ml_backend.label_studio_client as lsc
    from rlthf_selector.cli import main
    from rlthf_selector.io import write_jsonl

    pairs = make_synthetic_pairs(5, seed=1)
    pairs_file = write_jsonl(pairs.replace(gold_label=None), tmp_path / "pairs.jsonl")

    class Rerun(_ScriptedLabelStudio):
        url = "http://ls"

        def __init__(self, url, api_key):
            super().__init__(existing={"id": 4, "label_config": PAIRWISE})

        def list_tasks(self, pid):  # every pair is there from the first run
            return [{"id": i, "data": {"pair_id": str(p)}} for i, p in enumerate(pairs.ids)]

    monkeypatch.setattr(lsc, "LabelStudioClient", Rerun)
    assert main(["label-studio", "setup", "--url", "http://ls", "--api-key", "k", "--pairs", str(pairs_file),
                 "--backend-url", "http://backend:9090", "--no-backend-check", "--title", "T"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "reused project 4 (title 'T'): 0 new pairs imported, 5 already there; ML backend http://backend:9090 connected (id 3)"


def test_setup_on_error_skip_imports_the_good_pairs_and_names_the_bad_one(tmp_path, monkeypatch, capsys):
    import ml_backend.label_studio_client as lsc
    from rlthf_selector.cli import main
    from rlthf_selector.io import write_jsonl

    pairs = make_synthetic_pairs(5, seed=1)
    pairs.response_b[2] = pairs.response_a[2]  # nothing to choose between: a bad row
    pairs_file = write_jsonl(pairs.replace(gold_label=None), tmp_path / "pairs.jsonl")
    imported = []

    class Fresh(_ScriptedLabelStudio):
        url = "http://ls"

        def __init__(self, url, api_key):
            super().__init__(existing={"id": 4, "label_config": PAIRWISE})

        def list_tasks(self, pid):
            return []

        def import_tasks(self, pid, tasks, **kw):
            imported.extend(tasks)
            return super().import_tasks(pid, tasks, **kw)

    monkeypatch.setattr(lsc, "LabelStudioClient", Fresh)
    run = ["label-studio", "setup", "--url", "http://ls", "--api-key", "k", "--pairs", str(pairs_file),
           "--backend-url", "http://backend:9090", "--no-backend-check", "--title", "T"]
    assert main(run) == 2  # the default stops at the bad row, naming it, before anything is created
    assert "pairs.jsonl:3: response_a and response_b are identical" in capsys.readouterr().err and not imported
    assert main(run + ["--on-error", "skip"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1" in err and "pairs.jsonl:3: response_a and response_b are identical" in err
    assert f"{pairs_file}:3: identical responses" in err  # every skip listed by line
    assert len(imported) == 4
    imported.clear()
    assert main(run + ["--on-error", "skip", "--json"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["input"]["skipped_at"] == [{"where": f"{pairs_file}:3", "reason": "identical responses"}]
