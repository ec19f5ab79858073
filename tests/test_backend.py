"""Fast tests of the ML backend through Flask's test client, with a fake Label Studio injected."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flask")

from label_config import load_label_config, parse_label_config  # noqa: E402
from rlthf_selector.config import BackendConfig  # noqa: E402
from rlthf_selector.synthetic import make_synthetic_pairs  # noqa: E402

from ml_backend.app import create_app  # noqa: E402

PAIRWISE = load_label_config("pairwise")
CHOICES = load_label_config("choices")
N_PAIRS = 80


def pair_data(n: int = N_PAIRS, seed: int = 3) -> list[dict]:
    p = make_synthetic_pairs(n, seed=seed)
    return [
        {"prompt": str(p.prompt[i]), "response_a": str(p.response_a[i]), "response_b": str(p.response_b[i]),
         "ai_label": "a" if p.ai_label[i] > 0 else "b", "pair_id": str(p.ids[i])}
        for i in range(n)
    ]


def result(label: int, config: str = PAIRWISE) -> list[dict]:
    return parse_label_config(config).result(label)


def make_app(tmp_path: Path, fake, *, start_worker: bool = False, **overrides):
    cfg = dict(model_dir=str(tmp_path / "models"), debounce_s=0.0, max_wait_s=0.0)
    cfg.update(overrides)
    app = create_app(BackendConfig(**cfg), client_factory=lambda entry: fake, start_worker=start_worker)
    app.testing = True
    return app


def setup_project(client, pid: int, config: str = PAIRWISE):
    r = client.post("/setup", json={"project": f"{pid}.1700000000", "schema": config, "hostname": "http://ls", "access_token": "tok"})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def tasks_payload(fake, pid: int, ids=None) -> dict:
    ids = ids if ids is not None else fake.task_ids(pid)
    return {"project": f"{pid}.1700000000", "label_config": fake.projects[pid]["label_config"],
            "tasks": [{"id": t, "project": pid, "data": fake.tasks[t]["data"]} for t in ids]}


def webhook_created(fake, pid: int, tid: int, ann: dict) -> dict:
    return {"action": "ANNOTATION_CREATED", "project": {"id": pid, "label_config": fake.projects[pid]["label_config"]},
            "task": {"id": tid, "data": fake.tasks[tid]["data"]}, "annotation": dict(ann, task=tid)}


def train_project(tmp_path: Path, fake, n: int = N_PAIRS, **overrides):
    """A project of ``n`` pairs, set up and trained once (worker driven synchronously): (app, client, backend, pid)."""
    pid = fake.add_project(PAIRWISE, pair_data(n))
    app = make_app(tmp_path, fake, **overrides)
    client = app.test_client()
    setup_project(client, pid)
    backend = app.extensions["rlthf"]
    assert backend.worker.run_due() == [pid]
    return app, client, backend, pid


@pytest.fixture
def trained(tmp_path, fake_ls):
    """A project of N_PAIRS pairs, set up and trained once."""
    return train_project(tmp_path, fake_ls)


# ---------------------------------------------------------------------- protocol
def test_health_is_open_and_reports_worker_and_label_studio(tmp_path, fake_ls):
    app = make_app(tmp_path, fake_ls, basic_auth_user="u", basic_auth_pass="p")
    body = app.test_client().get("/health").get_json()
    assert body["status"] == "UP" and body["model_class"] == "RLTHFSelector"
    assert body["worker"] == {"alive": False}
    assert body["label_studio"]["state"] in ("unknown", "unconfigured")


def test_predict_before_training_returns_ai_prelabels(tmp_path, fake_ls):
    pid = fake_ls.add_project(CHOICES, pair_data(10))
    client = make_app(tmp_path, fake_ls).test_client()
    assert setup_project(client, pid, CHOICES) == {"model_version": "rlthf-0"}
    r = client.post("/predict", json=tasks_payload(fake_ls, pid))
    assert r.status_code == 200
    body = r.get_json()
    assert body["model_version"] == "rlthf-0" and len(body["results"]) == 10
    for res, tid in zip(body["results"], fake_ls.task_ids(pid)):
        want = "A" if fake_ls.tasks[tid]["data"]["ai_label"] == "a" else "B"
        assert res["result"] == [{"from_name": "preference", "to_name": "prompt", "type": "choices", "value": {"choices": [want]}}]
        assert res["rlthf"]["label_source"] == "ai" and res["rlthf"]["region"] == "unscored"


def test_training_writes_back_predictions_version_sampling_fields_and_view(trained, fake_ls):
    app, client, backend, pid = trained
    state = backend.registry.get(pid).state
    assert state.model_version == "rlthf-1" and state.iteration == 1
    project = fake_ls.projects[pid]
    assert project["model_version"] == "rlthf-1" and project["sampling"] == "Uncertainty sampling"
    preds = [p for p in fake_ls.predictions if p["model_version"] == "rlthf-1"]
    assert sorted(p["task"] for p in preds) == fake_ls.task_ids(pid)  # all tasks, in one bulk call
    assert sum(1 for c in fake_ls.calls if c[0] == "import_predictions") == 1
    queued = marked = 0
    for tid in fake_ls.task_ids(pid):
        data = fake_ls.tasks[tid]["data"]
        assert data["prompt"] and data["response_a"] and data["response_b"] and data["pair_id"]  # merged, never wiped
        queued += "rlthf_priority" in data
        marked += "rlthf_audit" in data
        # By default only queued tasks and those marked for audit (flipped, the trusted sample) are patched.
        assert ("rlthf_region" in data) == ("rlthf_priority" in data or "rlthf_audit" in data)
    assert queued == int(round(0.1 * N_PAIRS))
    assert sum(1 for c in fake_ls.calls if c[0] == "update_task_data") == queued + marked


def test_write_regions_writes_every_task_and_leaving_the_queue_clears_the_priority(tmp_path, fake_ls):
    pid = fake_ls.add_project(PAIRWISE, pair_data())
    app = make_app(tmp_path, fake_ls, write_regions=True)
    client = app.test_client()
    setup_project(client, pid)
    backend = app.extensions["rlthf"]
    backend.worker.run_due()
    assert all(fake_ls.tasks[t]["data"]["rlthf_region"] in ("trusted", "human", "flip", "held", "random check")
               for t in fake_ls.task_ids(pid))
    queued = [t for t in fake_ls.task_ids(pid) if "rlthf_priority" in fake_ls.tasks[t]["data"]]
    for tid in queued[:3]:  # humans answer the head of the queue
        fake_ls.annotate(tid, result(1))
    client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": pid}})
    backend.worker.run_due()
    for tid in queued[:3]:
        assert "rlthf_priority" not in fake_ls.tasks[tid]["data"]
        assert fake_ls.tasks[tid]["data"]["prompt"]
    assert fake_ls.views[pid]["RLTHF: needs human"]["ordering"] == ["tasks:data.rlthf_priority"]


def test_predict_after_training_orders_the_queue_by_score(trained, fake_ls):
    app, client, backend, pid = trained
    body = client.post("/predict", json=tasks_payload(fake_ls, pid)).get_json()
    assert body["model_version"] == "rlthf-1"
    queue = [r for r in body["results"] if r["rlthf"]["priority"] is not None]
    rest = [r for r in body["results"] if r["rlthf"]["priority"] is None]
    assert len(queue) == int(round(0.1 * N_PAIRS))
    by_priority = sorted(queue, key=lambda r: r["rlthf"]["priority"])
    assert [r["rlthf"]["priority"] for r in by_priority] == list(range(len(queue)))
    scores = [r["score"] for r in by_priority]
    assert scores == sorted(scores) and max(scores) < 0.5
    assert min(r["score"] for r in rest) > 0.5
    assert all(isinstance(r["rlthf"]["reward_gap"], float) for r in body["results"])
    # predictions written to Label Studio carry the same scores
    tid = body["results"][0]
    assert fake_ls.predictions_for(fake_ls.task_ids(pid)[0], "rlthf-1")[0]["score"] == pytest.approx(tid["score"])


def test_human_label_wins_and_annotations_are_never_touched(trained, fake_ls):
    app, client, backend, pid = trained
    tid = fake_ls.task_ids(pid)[5]
    ai = 1 if fake_ls.tasks[tid]["data"]["ai_label"] == "a" else -1
    ann = fake_ls.annotate(tid, result(-ai))
    skipped_tid = fake_ls.task_ids(pid)[6]
    fake_ls.annotate(skipped_tid, result(1), was_cancelled=True)
    before = json.dumps({t: fake_ls.tasks[t]["annotations"] for t in fake_ls.task_ids(pid)}, sort_keys=True)
    assert client.post("/webhook", json=webhook_created(fake_ls, pid, tid, ann)).get_json()["status"] == "queued"
    backend.worker.run_due()
    state = backend.registry.get(pid).state
    assert state.model_version == "rlthf-2"
    r = client.post("/predict", json=tasks_payload(fake_ls, pid, [tid, skipped_tid])).get_json()["results"]
    assert r[0]["result"] == result(-ai) and r[0]["rlthf"]["label_source"] == "human" and r[0]["score"] == 1.0
    assert r[1]["rlthf"]["label_source"] != "human"  # a skipped annotation is no label
    after = json.dumps({t: fake_ls.tasks[t]["annotations"] for t in fake_ls.task_ids(pid)}, sort_keys=True)
    assert before == after
    assert not any(c[0].startswith(("create_annotation", "update_annotation", "delete_annotation")) for c in fake_ls.calls)


def test_deleted_annotation_returns_the_pair_to_its_machine_label(trained, fake_ls):
    app, client, backend, pid = trained
    tid = fake_ls.task_ids(pid)[2]
    ai = 1 if fake_ls.tasks[tid]["data"]["ai_label"] == "a" else -1
    ann = fake_ls.annotate(tid, result(-ai))
    client.post("/webhook", json=webhook_created(fake_ls, pid, tid, ann))
    backend.worker.run_due()
    fake_ls.tasks[tid]["annotations"].clear()
    r = client.post("/webhook", json={"action": "ANNOTATIONS_DELETED", "project": {"id": pid}, "annotations": [{"id": ann["id"]}]})
    assert r.get_json()["status"] == "queued"
    backend.worker.run_due()
    state = backend.registry.get(pid).state
    assert state.model_version == "rlthf-3"
    pos = state.position(tid)
    assert state.human_label[pos] == 0 and state.label_source[pos] != 3


def test_duplicate_webhook_is_acknowledged_once_and_unchanged_labels_do_not_retrain(trained, fake_ls):
    app, client, backend, pid = trained
    tid = fake_ls.task_ids(pid)[0]
    ann = fake_ls.annotate(tid, result(1))
    payload = webhook_created(fake_ls, pid, tid, ann)
    assert client.post("/webhook", json=payload).get_json()["status"] == "queued"
    assert client.post("/webhook", json=payload).get_json()["status"] == "duplicate"
    backend.worker.run_due()
    assert backend.registry.get(pid).state.model_version == "rlthf-2"
    # An UPDATED event that changes nothing in Label Studio: acknowledged, trained on, but no new version.
    client.post("/webhook", json=dict(payload, action="ANNOTATION_UPDATED"))
    backend.worker.run_due()
    assert backend.worker.last_results[pid]["status"] == "unchanged"
    assert backend.registry.get(pid).state.model_version == "rlthf-2"
    # START_TRAINING forces a retrain
    assert client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": pid}}).get_json()["status"] == "queued"
    backend.worker.run_due()
    assert backend.registry.get(pid).state.model_version == "rlthf-3"


def test_tasks_imported_later_get_prelabels_then_join_the_next_training(trained, fake_ls):
    app, client, backend, pid = trained
    new = pair_data(5, seed=99)
    for d in new:
        tid = max(fake_ls.tasks) + 1
        fake_ls.tasks[tid] = {"id": tid, "project": pid, "data": dict(d), "annotations": []}
    new_ids = fake_ls.task_ids(pid)[-5:]
    r = client.post("/predict", json=tasks_payload(fake_ls, pid, new_ids)).get_json()["results"]
    assert all(x["rlthf"]["region"] == "unscored" and x["rlthf"]["label_source"] == "ai" for x in r)
    assert client.post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": pid}, "tasks": []}).get_json()["status"] == "queued"
    backend.worker.run_due()
    state = backend.registry.get(pid).state
    assert state.model_version == "rlthf-2" and len(state.task_ids) == N_PAIRS + 5
    r = client.post("/predict", json=tasks_payload(fake_ls, pid, new_ids)).get_json()["results"]
    assert all(x["rlthf"]["region"] in ("trusted", "human", "flip", "held") for x in r)


def test_unhandled_events_are_ignored(trained):
    app, client, backend, pid = trained
    r = client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": pid}})
    assert r.status_code == 200 and r.get_json()["status"] == "ignored"


def test_versions_and_metrics(trained, fake_ls):
    app, client, backend, pid = trained
    assert client.get(f"/versions?project={pid}").get_json()["versions"] == ["rlthf-1"]
    assert "rlthf-1" in client.get("/versions").get_json()["versions"]
    m = client.get("/metrics").get_json()
    p = m["projects"][str(pid)]
    assert p["iteration"] == 1 and p["tasks"] == N_PAIRS and sum(p["label_sources"].values()) == N_PAIRS
    assert m["worker"]["trainings"] == 1


# ---------------------------------------------------------------------- background worker
def test_webhook_is_acknowledged_at_once_while_a_training_runs(tmp_path, fake_ls):
    pid = fake_ls.add_project(PAIRWISE, pair_data())
    app = make_app(tmp_path, fake_ls, start_worker=True, debounce_s=0.05)
    client = app.test_client()
    backend = app.extensions["rlthf"]
    try:
        fake_ls.delay_s = 1.5  # every training now takes > 1.5 s
        setup_project(client, pid)
        deadline = time.monotonic() + 5
        while backend.worker.status()["running"] != pid and time.monotonic() < deadline:
            time.sleep(0.01)
        assert backend.worker.status()["running"] == pid
        tid = fake_ls.task_ids(pid)[0]
        ann = fake_ls.annotate(tid, result(1))
        started = time.perf_counter()
        r = client.post("/webhook", json=webhook_created(fake_ls, pid, tid, ann))
        ack = time.perf_counter() - started
        assert r.status_code == 200 and r.get_json()["status"] == "queued"
        assert ack < 0.5, f"webhook took {ack:.3f} s while training"
        assert backend.worker.wait_idle(timeout=30)
        # the event that arrived during the first training led to a second one
        assert backend.registry.get(pid).state.model_version == "rlthf-2"
    finally:
        backend.worker.stop()


def test_a_burst_of_webhooks_leads_to_one_training(tmp_path, fake_ls):
    pid = fake_ls.add_project(PAIRWISE, pair_data())
    app = make_app(tmp_path, fake_ls, start_worker=True, debounce_s=0.4, max_wait_s=30)
    client = app.test_client()
    backend = app.extensions["rlthf"]
    try:
        setup_project(client, pid)
        assert backend.worker.wait_idle(timeout=30)
        first = backend.worker.trainings
        for tid in fake_ls.task_ids(pid)[:15]:
            ann = fake_ls.annotate(tid, result(1))
            assert client.post("/webhook", json=webhook_created(fake_ls, pid, tid, ann)).status_code == 200
        assert backend.worker.wait_idle(timeout=30)
        assert backend.worker.trainings - first == 1
        state = backend.registry.get(pid).state
        assert int((state.human_label != 0).sum()) == 15  # the one training saw every label
    finally:
        backend.worker.stop()


def test_restart_resumes_from_the_model_dir_without_training(trained, tmp_path, fake_ls):
    app, client, backend, pid = trained
    before = client.post("/predict", json=tasks_payload(fake_ls, pid)).get_json()
    n_writes = sum(1 for c in fake_ls.calls if c[0] != "get_project" and c[0] != "list_tasks")
    app2 = make_app(tmp_path, fake_ls)
    after = app2.test_client().post("/predict", json=tasks_payload(fake_ls, pid)).get_json()
    assert after == before
    # the restart catches up with Label Studio once: nothing changed, so no new version and no writes
    assert app2.extensions["rlthf"].worker.run_due() == [pid]
    assert app2.extensions["rlthf"].worker.last_results[pid]["status"] == "unchanged"
    assert sum(1 for c in fake_ls.calls if c[0] != "get_project" and c[0] != "list_tasks") == n_writes


def test_annotations_made_while_the_backend_was_down_are_picked_up_on_restart(trained, tmp_path, fake_ls):
    app, client, backend, pid = trained
    tid = fake_ls.task_ids(pid)[4]
    fake_ls.annotate(tid, result(-1))  # no webhook reached the backend
    app2 = make_app(tmp_path, fake_ls)
    assert app2.extensions["rlthf"].worker.run_due() == [pid]
    state = app2.extensions["rlthf"].registry.get(pid).state
    assert state.model_version == "rlthf-2" and state.human_label[state.position(tid)] == -1


def test_a_crash_during_training_keeps_the_previous_model_serving(trained, fake_ls, monkeypatch):
    app, client, backend, pid = trained
    import ml_backend.registry as registry_module

    def boom(*a, **k):
        raise RuntimeError("simulated crash in select_step")

    monkeypatch.setattr(registry_module, "train_state", boom)
    client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": pid}})
    backend.worker.run_due()
    assert backend.worker.errors == 1 and "simulated crash" in backend.worker.last_results[pid]["error"]
    assert backend.registry.get(pid).state.model_version == "rlthf-1"
    assert client.post("/predict", json=tasks_payload(fake_ls, pid)).get_json()["model_version"] == "rlthf-1"
    assert pid in backend.worker.status()["pending"]  # retried later with backoff


def test_label_studio_outage_is_retried_and_shown_in_health(trained, fake_ls):
    app, client, backend, pid = trained
    fake_ls.fail = True
    client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": pid}})
    backend.worker.run_due()
    health = client.get("/health").get_json()
    assert health["status"] == "UP" and health["label_studio"]["state"] == "unreachable"
    assert backend.registry.get(pid).state.model_version == "rlthf-1"
    fake_ls.fail = False
    backend.worker.retry_s = 0.0
    backend.worker._pending[pid].not_before = 0.0
    backend.worker.run_due()
    assert backend.registry.get(pid).state.model_version == "rlthf-2"
    assert client.get("/health").get_json()["label_studio"]["state"] == "reachable"


def test_failed_write_back_is_redone_after_a_restart(tmp_path, fake_ls, monkeypatch):
    pid = fake_ls.add_project(PAIRWISE, pair_data())
    app = make_app(tmp_path, fake_ls)
    client = app.test_client()
    setup_project(client, pid)
    original = fake_ls.update_project

    def down(*a, **k):
        from ml_backend.label_studio_client import LabelStudioUnavailable

        raise LabelStudioUnavailable("down")

    fake_ls.update_project = down
    result_ = app.extensions["rlthf"].worker.run_due()
    assert result_ == [pid] and app.extensions["rlthf"].worker.last_results[pid]["writeback_pending"]
    fake_ls.update_project = original
    app2 = make_app(tmp_path, fake_ls)  # restart: resumes the pending write-back
    assert app2.extensions["rlthf"].worker.run_due() == [pid]
    assert fake_ls.projects[pid]["model_version"] == "rlthf-1"


def test_file_lock_keeps_a_second_process_from_training_the_same_project(trained, tmp_path, fake_ls):
    app, client, backend, pid = trained
    other = make_app(tmp_path, fake_ls).extensions["rlthf"]
    with backend.store.training_lock(pid) as got:
        assert got
        assert other.registry.train(pid, True) == {"status": "busy"}
    assert other.registry.train(pid, True)["status"] == "trained"
    # the first process notices the newer version on its next read
    assert backend.registry.get(pid).state.model_version == "rlthf-2"


def test_tasks_that_do_not_match_the_config_are_left_out_and_named(tmp_path, fake_ls):
    data = pair_data(40)
    data[3] = {"prompt": "p", "response_a": "x"}  # no response_b
    pid = fake_ls.add_project(PAIRWISE, data)
    app = make_app(tmp_path, fake_ls)
    client = app.test_client()
    setup_project(client, pid)
    app.extensions["rlthf"].worker.run_due()
    state = app.extensions["rlthf"].registry.get(pid).state
    assert len(state.task_ids) == 39
    assert any("response_b is missing" in w for w in state.warnings)


def test_the_judges_evidence_in_task_data_reaches_the_queue_and_the_flips(tmp_path, fake_ls):
    from rlthf_selector.label_studio_tasks import task_records
    from rlthf_selector.pairs import LabelSource

    # A second judge that is always right, imported the way `rlthf label-studio setup` imports pairs.
    pairs = make_synthetic_pairs(400, seed=3)
    pairs = pairs.replace(extra={"second_judge_label": pairs.gold_label.copy()})
    tasks = [t["data"] for t in task_records(pairs, control=parse_label_config(PAIRWISE), model_version="rlthf-0")]
    assert tasks[0]["second_judge_label"] in ("a", "b")
    tasks[5] = dict(tasks[5], second_judge_label="maybe")  # a bad value: left out and named, the task still trains
    pid = fake_ls.add_project(PAIRWISE, tasks)
    app = make_app(tmp_path, fake_ls)
    setup_project(app.test_client(), pid)
    backend = app.extensions["rlthf"]
    backend.worker.run_due()
    state = backend.registry.get(pid).state
    assert len(state.task_ids) == 400
    assert any(f"task {fake_ls.task_ids(pid)[5]}: second_judge_label left out" in w for w in state.warnings)
    assert app.test_client().get("/metrics").get_json()["projects"][str(pid)]["evidence_fields"] == [
        "second_judge_label"]
    # Before any answer the mistake model is its prior: too unsure to flip anything.
    assert not (state.label_source == LabelSource.FLIPPED).any()
    assert state.summary["mistake_model"]["answers"] == 0
    # Two served batches answered: the answers show the second judge's disagreement marks the AI's mistakes, the
    # model says so, and flips where it is sure.
    client = app.test_client()
    gold_by_task = {t: int(g) for t, g in zip(fake_ls.task_ids(pid), pairs.gold_label)}
    for _ in range(2):
        state = answer_and_retrain(client, backend, fake_ls, pid, served_queue(state), gold_by_task)
    learned = state.summary["mistake_model"]
    assert learned["answers"] >= 70 and "the second judge disagrees with the AI" in learned["explanation"]
    weights = {w["signal"]: w for w in learned["weights"]}
    assert weights["second_judge_disagrees"]["lower"] > 0
    flipped = state.label_source == LabelSource.FLIPPED
    assert flipped.sum() >= 5
    gold = pairs.gold_label  # the tasks were created, and are held, in the pairs' order
    # The second judge is always right here, and the model learned to follow it: nearly every flip is right.
    assert float((state.labels[flipped] == gold[flipped]).mean()) >= 0.9
    metrics = client.get("/metrics").get_json()["projects"][str(pid)]
    assert metrics["mistake_model"]["explanation"] == learned["explanation"]
    # Without the evidence in the task data, nothing is flipped (the reflection rule is off by default).
    plain = fake_ls.add_project(PAIRWISE, pair_data(400))
    setup_project(app.test_client(), plain)
    backend.worker.run_due()
    assert not (backend.registry.get(plain).state.label_source == LabelSource.FLIPPED).any()
    assert app.test_client().get("/metrics").get_json()["projects"][str(plain)]["evidence_fields"] == []


def test_a_change_in_the_judges_evidence_alone_is_a_change_worth_retraining():
    from ml_backend.training import fingerprint
    from rlthf_selector.label_studio_tasks import build_task_table

    control = parse_label_config(PAIRWISE)
    tasks = [{"id": i + 1, "data": dict(d, judge_doubt=0.2), "annotations": []} for i, d in enumerate(pair_data(10))]
    before = fingerprint(build_task_table(tasks, control), control)
    tasks[4]["data"]["judge_doubt"] = 0.9
    table = build_task_table(tasks, control)
    assert table.pairs.extra["judge_doubt"][4] == 0.9
    assert fingerprint(table, control) != before


# ---------------------------------------------------------------------- control draws and live estimates
CONTROL, QUEUE = 2, 1  # rlthf_selector.estimates.CONTROL_DRAW, QUEUE_DRAW


def served_queue(state) -> np.ndarray:
    """Positions of the served queue, in the order Label Studio serves it."""
    served = np.flatnonzero(state.queue_rank >= 0)
    return served[np.argsort(state.queue_rank[served])]


def gold_of(fake, pid: int) -> dict[int, int]:
    """The synthetic pairs' gold labels by task id (the simulated annotator's answers)."""
    from rlthf_selector.synthetic import make_synthetic_pairs

    tids = fake.task_ids(pid)
    gold = make_synthetic_pairs(len(tids), seed=3).gold_label
    return {t: int(g) for t, g in zip(tids, gold)}


def answer_and_retrain(client, backend, fake, pid: int, positions, gold: dict[int, int]):
    state = backend.registry.get(pid).state
    for i in positions:
        tid = int(state.task_ids[i])
        fake.annotate(tid, result(gold[tid]))
    client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": pid}})
    backend.worker.run_due()
    return backend.registry.get(pid).state


def test_the_queue_holds_control_draws_at_the_configured_share_spread_through_it(tmp_path, fake_ls):
    app, client, backend, pid = train_project(tmp_path, fake_ls, 400, control_share=0.1)
    state = backend.registry.get(pid).state
    order = served_queue(state)
    assert len(order) == 40  # the queue keeps its length: control draws take a share of its slots
    is_control = state.drawn_by[order] == CONTROL
    assert is_control.sum() == 4
    assert np.flatnonzero(is_control).tolist() == [4, 14, 24, 34]  # one in each stretch of ten
    assert (state.drawn_by[order[~is_control]] == QUEUE).all()
    # Each draw is recorded: its iteration, its frame (the unlabeled pairs) and the mistake score then.
    assert (state.draw_round[order] == 1).all() and (state.draw_frame[order] == 400).all()
    # The mistake model's P(AI label wrong) at the draw: before any answer, its prior's.
    assert ((state.draw_score[order] > 0) & (state.draw_score[order] < 1)).all()
    assert state.draw_score[order[~is_control]].min() >= np.median(state.draw_score[order[is_control]]) - 1e-9
    assert (state.drawn_by[state.queue_rank < 0] == 0).all()
    draws = client.get("/metrics").get_json()["projects"][str(pid)]["draws"]
    assert draws["control_served"] == 4 and draws["queue_served"] == 36 and draws["control_share"] == 0.1
    # Each served pair says why it is asked: control draws are random checks, the others name their signals.
    reasons = state.summary["queue_reasons"]
    assert set(reasons) == {str(int(state.task_ids[i])) for i in order}
    assert all(reasons[str(int(state.task_ids[i]))] == "random check" for i in order[is_control])
    assert any("the reward model contradicts the AI label" in reasons[str(int(state.task_ids[i]))]
               for i in order[~is_control])
    # Label Studio serves the control draws with the queue (scores below 0.5), so annotators meet them in turn.
    scores = [p["score"] for p in fake_ls.predictions if p["model_version"] == "rlthf-1"
              and p["task"] in {int(state.task_ids[i]) for i in order[is_control]}]
    assert len(scores) == 4 and max(scores) < 0.5


def test_a_control_draw_reaches_annotators_at_the_share_even_with_a_retrain_after_every_answer(tmp_path, fake_ls):
    app, client, backend, pid = train_project(tmp_path, fake_ls, control_share=0.1)
    gold = gold_of(fake_ls, pid)
    heads = []
    for _ in range(20):
        head = served_queue(backend.registry.get(pid).state)[0]
        heads.append(int(backend.registry.get(pid).state.drawn_by[head]))
        answer_and_retrain(client, backend, fake_ls, pid, [head], gold)
    assert heads.count(CONTROL) == 2 and heads[4] == CONTROL and heads[14] == CONTROL


def test_a_served_batch_catches_up_a_backlog_and_keeps_waiting_draws_first():
    # The backend serves what the library's assemble_batch gives: here the case only a backend meets (answers
    # arriving between retrains, a control draw still waiting).
    from rlthf_selector.selection import assemble_batch

    rng = np.random.default_rng(0)
    human, ai = np.zeros(100, np.int8), np.ones(100, np.int8)
    queue = np.arange(50, 80)
    # 40 answers so far, none of them control: the control is 4 behind, so it goes first, back to back.
    served = assemble_batch(queue, human_label=human, ai_label=ai, length=20, waiting_control=np.array([7]), share=0.2,
                            answered=40, answered_control=0, rng=rng)
    assert np.flatnonzero(served.is_control).tolist() == [0, 1, 2, 3]
    assert served.order[0] == 7 and 7 not in served.fresh_control and len(served.fresh_control) == 3
    assert len(served.order) == 20 and len(set(served.order.tolist())) == 20
    with pytest.raises(ValueError, match="control share must be in"):
        assemble_batch(queue, human_label=human, ai_label=ai, length=20, share=1.5, rng=rng)


def test_metrics_show_live_estimates_from_the_answered_control_draws(trained, fake_ls):
    app, client, backend, pid = trained
    gold = gold_of(fake_ls, pid)
    assert client.get("/metrics").get_json()["projects"][str(pid)]["estimates"]["ai_accuracy"]["value"] is None
    for _ in range(3):  # humans answer the whole served queue, then Label Studio's webhook retrains
        state = answer_and_retrain(client, backend, fake_ls, pid, served_queue(backend.registry.get(pid).state), gold)
    answered_control = int(((state.drawn_by == CONTROL) & (state.human_label != 0)).sum())
    answered_targeted = (state.drawn_by == QUEUE) & (state.human_label != 0)
    answered_queue = int(answered_targeted.sum())
    assert answered_control >= 3 and answered_queue >= 15
    assert (state.answered_in[state.human_label != 0] == state.drawn_by[state.human_label != 0]).all()
    body = client.get("/metrics").get_json()["projects"][str(pid)]
    est = body["estimates"]
    assert set(est) >= {"ai_accuracy", "control_overturn", "queue_precision", "queue_minus_control", "mistake_auc",
                        "pool_accuracy"}
    acc = est["ai_accuracy"]
    assert acc["n"] == answered_control and acc["confidence"] == 0.9
    assert 0.0 <= acc["lower"] <= acc["value"] <= acc["upper"] <= 1.0
    assert est["queue_precision"]["n"] == answered_queue
    assert est["mistake_auc"]["method"] == "hanley-mcneil"
    assert isinstance(body["estimate_warnings"], list) and all(isinstance(w, str) for w in body["estimate_warnings"])
    assert body["draws"]["control_answered"] == answered_control


def test_pairs_labelled_outside_the_queue_count_in_neither_group(trained, fake_ls):
    app, client, backend, pid = trained
    state = backend.registry.get(pid).state
    outside = int(np.flatnonzero(state.queue_rank < 0)[0])
    state = answer_and_retrain(client, backend, fake_ls, pid, [outside], gold_of(fake_ls, pid))
    assert state.human_label[outside] != 0 and state.answered_in[outside] == 0 and state.label_round[outside] == 1
    est = client.get("/metrics").get_json()["projects"][str(pid)]["estimates"]
    assert est["ai_accuracy"]["n"] == 0 and est["queue_precision"]["n"] == 0


def test_no_control_draws_with_a_share_of_zero(tmp_path, fake_ls):
    backend, pid = train_project(tmp_path, fake_ls, control_share=0.0)[2:]
    state = backend.registry.get(pid).state
    assert len(served_queue(state)) == 8 and not (state.drawn_by == CONTROL).any()


def test_draw_records_survive_a_restart(trained, tmp_path, fake_ls):
    app, client, backend, pid = trained
    before = backend.registry.get(pid).state
    after = make_app(tmp_path, fake_ls).extensions["rlthf"].registry.get(pid).state
    from ml_backend.state import DRAW_RECORDS

    for name in DRAW_RECORDS:
        assert np.array_equal(getattr(after, name), getattr(before, name), equal_nan=True), name


def test_a_state_file_from_before_control_draws_still_loads_and_trains(trained, tmp_path, fake_ls):
    app, client, backend, pid = trained
    pdir = tmp_path / "models" / f"project-{pid}"
    vdir = pdir / (pdir / "CURRENT").read_text().strip()
    with np.load(vdir / "arrays.npz") as npz:
        old = {k: npz[k] for k in npz.files if k not in ("drawn_by", "draw_round", "draw_frame", "draw_score",
                                                          "label_round", "answered_in")}
    np.savez(vdir / "arrays.npz", **old)
    scalars = json.loads((vdir / "state.json").read_text())
    for key in ("estimates", "estimate_warnings", "estimate_confidence", "draws"):
        scalars["summary"].pop(key)
    (vdir / "state.json").write_text(json.dumps(scalars))

    app2 = make_app(tmp_path, fake_ls)
    client2, backend2 = app2.test_client(), app2.extensions["rlthf"]
    state = backend2.registry.get(pid).state
    assert state.model_version == "rlthf-1" and (state.drawn_by == 0).all() and (state.label_round == -1).all()
    assert client2.post("/predict", json=tasks_payload(fake_ls, pid)).status_code == 200
    metrics = client2.get("/metrics").get_json()["projects"][str(pid)]
    assert metrics["estimates"]["ai_accuracy"]["value"] is None and metrics["estimate_warnings"] == []
    # The next retrain draws the control afresh.
    state = answer_and_retrain(client2, backend2, fake_ls, pid, [0], gold_of(fake_ls, pid))
    assert state.model_version == "rlthf-2" and (state.drawn_by[served_queue(state)] > 0).all()
    assert (state.drawn_by == CONTROL).sum() == 1


# ---------------------------------------------------------------------- auth
def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("method,path", [("post", "/setup"), ("post", "/predict"), ("post", "/webhook"), ("post", "/train"),
                                         ("get", "/versions"), ("get", "/metrics"), ("get", "/openapi.json"),
                                         ("get", "/report/1")])
def test_every_route_but_health_needs_credentials_when_set(tmp_path, fake_ls, method, path):
    client = make_app(tmp_path, fake_ls, basic_auth_user="annot", basic_auth_pass="s3cret-pass").test_client()
    for headers in ({}, _basic("annot", "wrong"), _basic("other", "s3cret-pass"), {"Authorization": "Bearer s3cret-pass"}):
        r = getattr(client, method)(path, json={}, headers=headers)
        assert r.status_code == 401, (path, headers)
        assert "s3cret-pass" not in r.get_data(as_text=True)
    r = getattr(client, method)(path, json={}, headers=_basic("annot", "s3cret-pass"))
    assert r.status_code != 401
    assert client.get("/health").status_code == 200


def test_secrets_never_appear_in_metrics_or_health(tmp_path, fake_ls):
    app = make_app(tmp_path, fake_ls, label_studio_url="http://ls", label_studio_api_key="KEY-abc-123",
                   basic_auth_user="u", basic_auth_pass="PASS-xyz")
    client = app.test_client()
    texts = [client.get("/metrics", headers=_basic("u", "PASS-xyz")).get_data(as_text=True), client.get("/health").get_data(as_text=True)]
    assert not any("KEY-abc-123" in t or "PASS-xyz" in t for t in texts)
    assert "KEY-abc-123" not in repr(app.extensions["rlthf"].config)


# ---------------------------------------------------------------------- bad input
def test_bad_input_gets_a_4xx_naming_the_problem_and_stores_nothing(tmp_path, fake_ls):
    app = make_app(tmp_path, fake_ls, max_body_mb=0.01)
    client = app.test_client()
    store = app.extensions["rlthf"].store
    cases = [
        (client.post("/setup", data=b"{not json", content_type="application/json"), 400, "not valid JSON"),
        (client.post("/setup", data="{\"project\": \"caf\xe9\"}".encode("latin-1"), content_type="application/json"), 400, "not UTF-8"),
        (client.post("/setup", data=b"", content_type="application/json"), 400, "empty"),
        (client.post("/setup", json=[1, 2]), 400, "JSON object"),
        (client.post("/setup", json={"project": 1}), 400, "schema"),
        (client.post("/setup", json={"project": "abc", "schema": PAIRWISE}), 400, "project must be"),
        (client.post("/setup", json={"project": 1, "schema": "<View><Text name='t' value='$text'/></View>"}), 422, "prompt"),
        (client.post("/setup", json={"project": 1, "schema": "<View"}), 422, "not valid XML"),
        (client.post("/predict", json={"project": 1}), 400, "tasks"),
        (client.post("/predict", json={"project": 7, "tasks": []}), 404, "project 7"),
        (client.post("/predict", json={"project": 1, "label_config": PAIRWISE,
                                       "tasks": [{"id": 1, "data": {"prompt": "p", "response_a": "a"}}]}), 422, "tasks[0].data.response_b is missing"),
        (client.post("/predict", json={"project": 1, "tasks": [{"id": "x", "data": {}}]}), 422, "tasks[0].id"),
        (client.post("/predict", json={"project": 1, "label_config": PAIRWISE,
                                       "tasks": [{"id": 1, "data": {"prompt": "p", "response_a": "a", "response_b": "b", "ai_label": "c"}}]}), 422, "ai_label"),
        (client.post("/webhook", json={"project": {"id": 1}}), 400, "action"),
        (client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 9}, "annotation": {"id": 1}}), 404, "project 9"),
        (client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 9}}), 400, "annotation"),
        (client.post("/webhook", json={"action": "ANNOTATIONS_DELETED", "project": {"id": 9}, "annotations": "x"}), 400, "annotations"),
        (client.post("/predict", data=b"{\"x\": \"" + b"a" * 20000 + b"\"}", content_type="application/json"), 413, "larger than"),
        (client.get("/versions?project=5"), 404, "project 5"),
    ]
    for response, status, words in cases:
        body = response.get_json()
        assert response.status_code == status, (status, words, body)
        assert words in body["error"], (words, body)
        assert "Traceback" not in body["error"]
    assert store.project_ids() == []


def test_unexpected_errors_answer_500_without_a_stack_trace(trained, fake_ls, monkeypatch):
    app, client, backend, pid = trained
    import ml_backend.routes as routes_module

    monkeypatch.setattr(routes_module, "_prediction", lambda *a, **kw: 1 / 0)
    r = client.post("/predict", json=tasks_payload(fake_ls, pid, fake_ls.task_ids(pid)[:1]))
    assert r.status_code == 500
    assert r.get_json()["error"] == "internal error (ZeroDivisionError); see the backend log"


def test_openapi_lists_every_route(tmp_path, fake_ls):
    spec = make_app(tmp_path, fake_ls).test_client().get("/openapi.json").get_json()
    assert set(spec["paths"]) == {"/health", "/setup", "/predict", "/webhook", "/train", "/versions", "/metrics",
                                  "/report/{project_id}", "/pool/{project_id}", "/pool/{project_id}/pairs"}


# ---------------------------------------------------------------------- fuzzing from the OpenAPI shapes
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_task = st.fixed_dictionaries(
    {"id": st.one_of(st.integers(-3, 10**4), st.text(max_size=3)),
     "data": st.one_of(_json, st.fixed_dictionaries({"prompt": st.text(max_size=20), "response_a": st.text(max_size=20),
                                                     "response_b": st.one_of(st.text(max_size=20), st.integers()),
                                                     "ai_label": st.sampled_from(["a", "b", "x", None])}))})
_project = st.one_of(st.integers(-2, 4), st.sampled_from(["1.17", "2", "x.1", ""]), st.fixed_dictionaries({"id": st.integers(-1, 4)}))
_predict_body = st.fixed_dictionaries({"tasks": st.one_of(st.lists(_task, max_size=4), _json)},
                                      optional={"project": _project, "label_config": st.sampled_from([PAIRWISE, CHOICES, "<View/>", 3])})
_webhook_body = st.fixed_dictionaries(
    {"action": st.one_of(st.sampled_from(["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "START_TRAINING",
                                          "TASKS_CREATED", "OTHER"]), _json)},
    optional={"project": _project, "annotation": st.one_of(_json, st.fixed_dictionaries({"id": st.integers(), "result": _json})),
              "annotations": st.one_of(_json, st.lists(st.fixed_dictionaries({"id": st.integers()}), max_size=3))})


@pytest.fixture
def fuzz_client(trained):
    app, client, backend, pid = trained
    return client, backend


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.one_of(_predict_body, _json))
def test_fuzz_predict_never_answers_5xx(fuzz_client, body):
    client, backend = fuzz_client
    r = client.post("/predict", json=body)
    assert r.status_code in (200, 400, 404, 422), r.get_json()
    assert "error" in r.get_json() or "results" in r.get_json()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=st.one_of(_webhook_body, _json))
def test_fuzz_webhook_never_answers_5xx(fuzz_client, body):
    client, backend = fuzz_client
    r = client.post("/webhook", json=body)
    assert r.status_code in (200, 400, 404, 422), r.get_json()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_fuzz_raw_bytes_never_answer_5xx(fuzz_client, raw):
    client, backend = fuzz_client
    for path in ("/predict", "/webhook", "/setup"):
        r = client.post(path, data=raw, content_type="application/json")
        assert r.status_code < 500, (path, r.get_json())


# ---------------------------------------------------------------------- fuzzing generated from the OpenAPI document
from ml_backend.openapi import openapi_spec  # noqa: E402


def schema_strategy(node: dict, components: dict) -> st.SearchStrategy:
    """Request bodies drawn from an OpenAPI 3.0 schema (the subset the backend's document uses: $ref, oneOf,
    anyOf, enum, nullable, object with properties/required, array, string with pattern, integer with
    minimum, boolean, and the empty schema). Optional properties are present or absent at random, and
    objects may carry extra keys, as real clients send."""
    if "$ref" in node:
        return schema_strategy(components[node["$ref"].rsplit("/", 1)[-1]], components)
    if "oneOf" in node or "anyOf" in node:
        strategy = st.one_of([schema_strategy(s, components) for s in node.get("oneOf", node.get("anyOf"))])
    elif "enum" in node:
        strategy = st.sampled_from(node["enum"])
    elif node.get("type") == "object":
        props = node.get("properties", {})
        required = set(node.get("required", ()))
        strategy = st.fixed_dictionaries(
            {k: schema_strategy(v, components) for k, v in props.items() if k in required},
            optional={**{k: schema_strategy(v, components) for k, v in props.items() if k not in required},
                      "extra_field": _json},
        )
    elif node.get("type") == "array":
        strategy = st.lists(schema_strategy(node.get("items", {}), components), max_size=4)
    elif node.get("type") == "string":
        strategy = st.from_regex(node["pattern"], fullmatch=True) if "pattern" in node else st.text(max_size=30)
    elif node.get("type") == "integer":
        strategy = st.integers(min_value=node.get("minimum", -(10**6)), max_value=10**6)
    elif node.get("type") == "boolean":
        strategy = st.booleans()
    elif not node.get("type"):
        strategy = _json
    else:
        raise ValueError(f"schema_strategy: unsupported schema {node}")
    return st.one_of(strategy, st.none()) if node.get("nullable") else strategy


def request_strategy(path: str) -> st.SearchStrategy:
    spec = openapi_spec()
    body = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return schema_strategy(body, spec["components"]["schemas"])


def test_schema_strategy_follows_the_schema():
    example = {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer", "minimum": 3},
                                                                   "b": {"type": "string", "pattern": "^[0-9]+$"}}}
    @settings(max_examples=50, deadline=None)
    @given(schema_strategy(example, {}))
    def check(value):
        assert isinstance(value["a"], int) and value["a"] >= 3
        assert "b" not in value or value["b"].isdigit()
    check()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=request_strategy("/predict"))
def test_fuzz_predict_from_the_openapi_schema(fuzz_client, body):
    # Bodies that satisfy the published schema (unknown projects and tasks included) are answered
    # with results or a 4xx naming the problem, never a 5xx.
    client, backend = fuzz_client
    r = client.post("/predict", json=body)
    assert r.status_code in (200, 400, 404, 422), (r.status_code, r.get_json())
    payload = r.get_json()
    assert ("results" in payload) if r.status_code == 200 else isinstance(payload.get("error"), str)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=request_strategy("/webhook"))
def test_fuzz_webhook_from_the_openapi_schema(fuzz_client, body):
    client, backend = fuzz_client
    registry = backend.registry
    before = {pid: registry.get(pid).state.human_label.copy() for pid in registry.project_ids()}
    r = client.post("/webhook", json=body)
    assert r.status_code in (200, 400, 404, 422), (r.status_code, r.get_json())
    # A webhook only queues work: no stored human label changes inside the request.
    for pid, labels in before.items():
        np.testing.assert_array_equal(registry.get(pid).state.human_label, labels)


def test_backend_config_from_env_reads_yes_and_no_and_names_a_bad_value():
    env = {"RLTHF_WRITE_REGIONS": "off", "RLTHF_WRITEBACK": " Yes ", "RLTHF_CONTROL_SHARE": "0.25"}
    config = BackendConfig.from_env(env, model_dir="elsewhere")
    assert (config.write_regions, config.writeback, config.control_share) == (False, True, 0.25)
    assert config.model_dir == "elsewhere"  # overrides win over the environment
    with pytest.raises(ValueError, match=r"RLTHF_WRITEBACK='maybe' is not a valid bool \(1, true"):
        BackendConfig.from_env({"RLTHF_WRITEBACK": "maybe"})
    with pytest.raises(ValueError, match=r"RLTHF_CONTROL_SHARE='a tenth' is not a valid float"):
        BackendConfig.from_env({"RLTHF_CONTROL_SHARE": "a tenth"})
