"""Against a real Label Studio 1.23.2 (started by the test session from ``.venv-ls``): what an annotation team meets.

- After ten retrains of a 500-task project each task holds at most one prediction, the stream opens the queue blind,
  and the export records which human labels were given blind.
- ``rlthf label-studio setup`` with a backend nobody can reach exits non-zero with Label Studio's whole message and
  leaves no project behind, whether it stops at its own check or Label Studio refuses the connection.
"""

from __future__ import annotations

import json
import uuid

import pytest

from ml_backend.ls_server import free_port, wait_until
from conftest import setup_through_cli  # noqa: E402

pytestmark = [pytest.mark.label_studio, pytest.mark.slow]

N_TASKS = 500
RETRAINS = 10


@pytest.fixture
def backend(tmp_path, label_studio):
    """The ML backend on 127.0.0.1 in a thread, retraining 0.3 s after the last event."""
    from conftest import serve_backend

    with serve_backend(tmp_path / "models", label_studio, debounce_s=0.3, max_wait_s=5.0) as served:
        yield served


def _client(label_studio):
    from ml_backend.label_studio_client import LabelStudioClient

    return LabelStudioClient(label_studio["url"], label_studio["token"], retries=1)


def test_ten_retrains_leave_one_prediction_per_task_and_the_queue_opens_blind(tmp_path, label_studio, backend, capsys):
    from label_config import parse_label_config
    from rlthf_selector.cli import main as rlthf_main
    from rlthf_selector.io import write_jsonl
    from rlthf_selector.synthetic import make_synthetic_pairs

    client = _client(label_studio)
    pairs_file = write_jsonl(make_synthetic_pairs(N_TASKS, seed=21).replace(gold_label=None), tmp_path / "pairs.jsonl")
    title = f"rlthf-team-{uuid.uuid4().hex[:8]}"
    outcome = setup_through_cli(label_studio, pairs_file, backend["url"], title=title, capsys=capsys)
    pid = outcome["project_id"]
    worker = backend["backend"].worker
    try:
        project = client.get_project(pid)
        assert project["show_collab_predictions"] is False  # "Use predictions to prelabel tasks" off
        assert "retrains" in project["description"] and "webhook" in project["description"]
        wait_until(lambda: client.get_project(pid).get("model_version") == "rlthf-1" and worker.wait_idle(0.1),
                   timeout=120, what="the first training's write-back")
        control = parse_label_config(project["label_config"])

        # A human accepts a pre-annotation holding the AI's answer (a task outside the queue, opened from the Data
        # Manager, which pre-fills it): Label Studio links the annotation to that prediction. It comes first, while
        # no retrain runs: a write-back replaces the predictions of unannotated tasks, the one this starts from too.
        outside = next(t for t in client.list_tasks(pid) if "rlthf_priority" not in t["data"] and not t["annotations"])
        (shown,) = outside["predictions"]
        assert shown["result"]
        client._raw("POST", f"api/tasks/{outside['id']}/annotations",
                     json={"result": shown["result"], "task": outside["id"], "parent_prediction": shown["id"]})
        wait_until(lambda: worker.wait_idle(0.1) and client.get_project(pid)["model_version"] != "rlthf-1", timeout=120,
                   what="the retrain the pre-annotated answer's webhook starts")
        after_outside = client.get_project(pid)["model_version"]

        # Two humans answer from the stream: it opens the queue head with nothing to pre-select.
        served = []
        for _ in range(2):
            task = client.next_task(pid)
            assert task["predictions"] == []
            assert "rlthf_priority" in task["data"]
            served.append(task)
            client.create_annotation(task["id"], control.result(-1))

        ml_backend_id = client.list_ml_backends(pid)[0]["id"]
        wait_until(lambda: worker.wait_idle(0.1) and client.get_project(pid)["model_version"] != after_outside,
                   timeout=120, what="the retrain the stream answers' webhooks start")
        assert worker.wait_idle(60)
        annotated = {served[0]["id"], served[1]["id"], outside["id"]}
        # An annotation made while a retrain was running can get that retrain's prediction as well: at most one more.
        kept = {t["id"]: [p["id"] for p in t["predictions"]] for t in client.list_tasks(pid) if t["id"] in annotated}
        assert all(1 <= len(p) <= 2 for p in kept.values())
        assert shown["id"] in kept[outside["id"]]  # what an annotation started from stays
        first = int(client.get_project(pid)["model_version"].split("-")[1])
        for k in range(first + 1, first + 1 + RETRAINS):
            client.train(ml_backend_id)  # START_TRAINING: a retrain even when no label changed
            try:
                wait_until(lambda: client.get_project(pid).get("model_version") == f"rlthf-{k}" and worker.wait_idle(0.1),
                           timeout=120, what=f"retrain to rlthf-{k}")
            except TimeoutError as exc:
                raise AssertionError(f"{exc}; the backend's last training: {worker.last_results.get(pid)}") from None
        current = f"rlthf-{first + RETRAINS}"
        tasks = client.list_tasks(pid)
        assert len(tasks) == N_TASKS and {t["id"] for t in tasks if t["annotations"]} == annotated
        assert client.prediction_counts(pid)[current] == N_TASKS - len(annotated)
        for t in tasks:
            if t["id"] in annotated:  # ten retrains added nothing to a labelled task
                assert [p["id"] for p in t["predictions"]] == kept[t["id"]]
            else:  # one prediction, the current one; a queued task's has nothing to show
                (prediction,) = t["predictions"]
                assert prediction["model_version"] == current
                assert (prediction["result"] == []) == ("rlthf_priority" in t["data"])

        out = tmp_path / "export"
        assert rlthf_main(["export", "--url", label_studio["url"], "--api-key", label_studio["token"],
                           "--project", str(pid), "--out", str(out)]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["human_labels"]["blind"] == 2 and summary["human_labels"]["saw_prelabel"] == 1
        records = {r["task_id"]: r for r in map(json.loads, (out / "human_labels.jsonl").read_text().splitlines())}
        assert {t: r["blind"] for t, r in records.items()} == {served[0]["id"]: True, served[1]["id"]: True,
                                                               outside["id"]: False}
    finally:
        client.delete_project(pid)


@pytest.mark.parametrize("backend_check", [True, False], ids=["setup's own check", "Label Studio's check"])
def test_setup_with_an_unreachable_backend_fails_whole_and_leaves_no_project(tmp_path, label_studio, backend_check):
    import subprocess
    import sys

    from rlthf_selector.io import write_jsonl
    from rlthf_selector.synthetic import make_synthetic_pairs

    from ml_backend.ls_server import REPO_ROOT

    client = _client(label_studio)
    before = {p["id"] for p in client.list_projects()}
    pairs_file = write_jsonl(make_synthetic_pairs(20, seed=2).replace(gold_label=None), tmp_path / "pairs.jsonl")
    dead = f"http://127.0.0.1:{free_port()}"
    title = f"rlthf-dead-backend-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "rlthf_selector.cli", "label-studio", "setup", "--url", label_studio["url"],
           "--pairs", str(pairs_file), "--backend-url", dead, "--title", title]
    if not backend_check:
        cmd.append("--no-backend-check")
    env = {"PATH": "/usr/bin:/bin", "LABEL_STUDIO_API_KEY": label_studio["token"], "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=REPO_ROOT, env=env)
    assert run.returncode == 1, run.stderr
    message = run.stderr.strip()
    assert message.startswith("rlthf label-studio setup: error: ") and "\n" not in message
    if backend_check:
        assert message.endswith("Nothing was created in Label Studio.") and f"ML backend at {dead} does not answer" in message
    else:  # Label Studio's own words, whole, then what was rolled back
        assert f"Can't connect to ML backend {dead}, health check failed" in message
        assert "firewall is properly configured" in message and "Additional info:" in message
        assert message.endswith("created by this run, was deleted again")
    assert {p["id"] for p in client.list_projects()} == before
