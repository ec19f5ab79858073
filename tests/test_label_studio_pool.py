"""A large project: the pool stays in the backend, Label Studio holds only the human batches (issue 17, item 5).

Setup, retrains and export run through the backend's Flask app (in-process, through httpx's WSGI transport) against
the in-memory Label Studio, on 100,000 generated pairs.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("flask")
httpx = pytest.importorskip("httpx")

from label_config import load_label_config, parse_label_config  # noqa: E402
from rlthf_selector.config import BackendConfig  # noqa: E402
from rlthf_selector.estimates import CONTROL_DRAW  # noqa: E402
from rlthf_selector.synthetic import make_synthetic_pairs  # noqa: E402

from ml_backend.app import create_app  # noqa: E402
from ml_backend.memory_client import InMemoryLabelStudio  # noqa: E402

PAIRWISE = load_label_config("pairwise")
# Each training is the library's whole selection step on every pool pair (out-of-fold Bradley-Terry fits on hashing
# features), about ten seconds a training per 10,000 pairs on a busy 2-core machine: 20,000 pairs in the fast run,
# the 100,000 (about two minutes) among the slow tests.
POOL_SIZES = [20_000, pytest.param(100_000, marks=pytest.mark.slow)]
BATCH = 200  # RLTHF_QUEUE_BUDGET as a count: each retrain asks this many pairs, a tenth of them control draws


def backend_app(tmp_path, fake, **overrides):
    cfg = dict(model_dir=str(tmp_path / "models"), debounce_s=0.0, max_wait_s=0.0, queue_budget=BATCH)
    cfg.update(overrides)
    app = create_app(BackendConfig(**cfg), client_factory=lambda entry: fake, start_worker=False)
    app.testing = True
    return app


def http_for(app):
    return httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://backend")


def held_pair_ids(fake, pid):
    return [fake.tasks[t]["data"]["pair_id"] for t in fake.task_ids(pid)]


def retrain(app, fake, pid):
    """A START_TRAINING webhook, then the worker's training (synchronously)."""
    r = app.test_client().post("/webhook", json={"action": "START_TRAINING", "project": {"id": pid}})
    assert r.get_json()["status"] == "queued"
    backend = app.extensions["rlthf"]
    assert backend.worker.run_due() == [pid]
    result = backend.worker.last_results[pid]
    assert result["status"] == "trained", result
    return backend.registry.get(pid).state, result


def answer_batch(fake, pid, state, control, truth, *, n):
    """Answer ``n`` of the served, unanswered tasks (queue order) with the generator's gold label; their pair ids."""
    served = np.flatnonzero(state.queue_rank >= 0)
    served = served[np.argsort(state.queue_rank[served])]
    answered = []
    for i in served:
        tid = int(state.task_ids[i])
        task = fake.tasks[tid]
        if task["annotations"]:
            continue
        pair_id = task["data"]["pair_id"]
        fake.annotate(tid, control.result(int(truth[pair_id])))
        answered.append(pair_id)
        if len(answered) == n:
            break
    return answered


@pytest.mark.parametrize("n_pool", POOL_SIZES)
def test_a_large_pool_stays_in_the_backend_and_label_studio_holds_the_batches(tmp_path, n_pool):
    from ml_backend.cli import export_project, fetch_pool, setup_project

    started = time.perf_counter()
    pairs = make_synthetic_pairs(n_pool, seed=17)
    truth = dict(zip((str(i) for i in pairs.ids), (int(v) for v in pairs.gold_label)))
    control = parse_label_config(PAIRWISE)
    fake = InMemoryLabelStudio()
    app = backend_app(tmp_path, fake)
    http = http_for(app)

    outcome = setup_project(fake, pairs, backend_url="http://backend", backend_check=False, pool_threshold=n_pool // 5,
                            backend_http=http)
    pid = outcome["project_id"]
    assert outcome["imported"] == 0 and outcome["pool"] == {"added": n_pool, "already_there": 0, "pairs": n_pool}
    assert fake.task_ids(pid) == []  # nothing but the batches goes to Label Studio
    # Label Studio calls /setup when the backend is connected; it starts the first training at once.
    r = app.test_client().post("/setup", json={"project": pid, "schema": PAIRWISE})
    assert r.status_code == 200
    backend = app.extensions["rlthf"]
    assert backend.worker.run_due() == [pid]
    state = backend.registry.get(pid).state
    served = np.flatnonzero(state.queue_rank >= 0)
    assert served.shape[0] == BATCH and (state.drawn_by[served] == CONTROL_DRAW).sum() == BATCH // 10
    # Label Studio holds exactly the first batch (queue + control draws), each with the backend's prediction.
    first = set(held_pair_ids(fake, pid))
    assert first == {str(p) for p in state.pair_ids[served]} and len(fake.task_ids(pid)) == BATCH
    assert {p["task"] for p in fake.predictions if p["model_version"] == "rlthf-1"} == set(fake.task_ids(pid))
    assert http.get(f"/pool/{pid}").json() == {"project": pid, "pairs": n_pool, "iteration": 1,
                                               "model_version": "rlthf-1", "in_label_studio": BATCH}
    # Label Studio's webhook for the tasks the backend imported starts no new training: nothing changed but the ids.
    r = app.test_client().post("/webhook", json={"action": "TASKS_CREATED", "project": {"id": pid}})
    assert r.get_json()["status"] == "queued" and backend.worker.run_due() == [pid]
    assert backend.worker.last_results[pid]["status"] == "unchanged"

    # Setup again (a rerun, a restart): the pool adds nothing and Label Studio gets no duplicate.
    again = setup_project(fake, pairs, backend_url="http://backend", backend_check=False, pool_threshold=n_pool // 5,
                          backend_http=http)
    assert again["project_id"] == pid and again["pool"]["added"] == 0 and again["pool"]["already_there"] == n_pool
    assert len(fake.task_ids(pid)) == BATCH

    # Two webhook retrains, each after answers: each imports its batch's new pairs, never one already there.
    human: dict[str, int] = {}
    batches = [first]
    for k in range(2):
        for pair_id in answer_batch(fake, pid, state, control, truth, n=BATCH // 2):
            human[pair_id] = truth[pair_id]
        before = set(held_pair_ids(fake, pid))
        if k == 1:  # a restarted backend (a new process on the same model directory) trains the last batch
            app = backend_app(tmp_path, fake)
        state, result = retrain(app, fake, pid)
        served = np.flatnonzero(state.queue_rank >= 0)
        asked = {str(p) for p in state.pair_ids[served]}
        held = held_pair_ids(fake, pid)
        assert len(held) == len(set(held))  # no pair twice
        assert set(held) == before | asked and result["imported"] == len(asked - before) > 0
        batches.append(asked)
    assert set(held_pair_ids(fake, pid)) == set().union(*batches)
    assert len(fake.task_ids(pid)) < 3 * BATCH
    # The backend never touched a human annotation.
    for tid in fake.task_ids(pid):
        for ann in fake.tasks[tid]["annotations"]:
            pair_id = fake.tasks[tid]["data"]["pair_id"]
            assert ann["result"] == control.result(human[pair_id])

    # Export: every pool pair once, every human answer in it.
    pool = fetch_pool(fake, pid, http=http_for(app))
    summary = export_project(fake, pid, tmp_path / "export", pool=pool)
    rows = [json.loads(line) for line in (tmp_path / "export" / "preferences.jsonl").read_text().splitlines()]
    assert summary["rows"] == len(rows) == n_pool
    assert sorted(r["id"] for r in rows) == sorted(truth)
    by_id = {r["id"]: r for r in rows}
    for pair_id, label in human.items():
        assert by_id[pair_id]["label_source"] == "human"
    assert summary["label_sources"]["human"] == len(human) == BATCH
    human_file = [json.loads(line) for line in (tmp_path / "export" / "human_labels.jsonl").read_text().splitlines()]
    assert {r["id"]: r["label"] for r in human_file} == {p: ("a" if v > 0 else "b") for p, v in human.items()}
    # The chosen response of a human answer is the one the human picked.
    i = {str(p): k for k, p in enumerate(pairs.ids)}
    for pair_id, label in human.items():
        k = i[pair_id]
        want = pairs.response_a[k] if label > 0 else pairs.response_b[k]
        assert by_id[pair_id]["chosen"] == want
    print(f"\n{n_pool} pairs: setup, 3 trainings and export in {time.perf_counter() - started:.1f} s; "
          f"{len(fake.task_ids(pid))} tasks in Label Studio, {len(human)} human answers exported")


def test_below_the_threshold_setup_imports_every_pair(tmp_path):
    from ml_backend.cli import setup_project

    pairs = make_synthetic_pairs(50, seed=1)
    fake = InMemoryLabelStudio()
    outcome = setup_project(fake, pairs, backend_url="http://backend", backend_check=False, pool_threshold=50)
    assert outcome["pool"] is None and outcome["imported"] == 50 == len(fake.task_ids(outcome["project_id"]))


def test_the_pool_route_names_a_bad_pair_and_stores_nothing(tmp_path):
    app = backend_app(tmp_path, InMemoryLabelStudio())
    client = app.test_client()
    good = {"prompt": "p", "response_a": "a", "response_b": "b", "pair_id": "x1"}
    r = client.post("/pool/7", json={"pairs": [good, {"prompt": "p", "response_a": "a"}]})
    assert r.status_code == 400 and "pairs[1]: data.response_b is missing" in r.get_json()["error"]
    r = client.post("/pool/7", json={"pairs": [good, {**good, "pair_id": None}]})
    assert r.status_code == 400 and "pairs[1]: data.pair_id is missing" in r.get_json()["error"]
    assert client.get("/pool/7").status_code == 404
    assert client.post("/pool/7", json={"pairs": [good]}).get_json()["added"] == 1
    assert client.post("/pool/7", json={"pairs": [good]}).get_json() == {"project": 7, "added": 0, "already_there": 1,
                                                                        "pairs": 1}


def test_export_asks_the_connected_backend_for_the_pool_and_says_when_it_cannot(tmp_path, capsys):
    from ml_backend.cli import SetupError, fetch_pool

    fake = InMemoryLabelStudio()
    pid = fake.add_project(PAIRWISE, [])
    assert fetch_pool(fake, pid) is None  # no backend connected: Label Studio's tasks are the project
    fake.connect_ml_backend(pid, "http://backend")
    no_pool = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(404, json={"error": "x"})),
                           base_url="http://backend")
    assert fetch_pool(fake, pid, http=no_pool) is None and capsys.readouterr().err == ""
    login = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(401, json={"error": "login"})),
                         base_url="http://backend")
    assert fetch_pool(fake, pid, http=login) is None
    assert "backend http://backend answered HTTP 401" in capsys.readouterr().err
    with pytest.raises(SetupError, match="the backend at http://given answered HTTP 401"):
        fetch_pool(fake, pid, backend_url="http://given", http=login)


def test_an_import_that_fails_after_label_studio_took_it_is_not_repeated(tmp_path):
    """Label Studio stores an import and the answer is lost (a timeout): the training fails, its state is not saved,
    and the retry imports only what Label Studio lacks. (The retry's batch may differ: the pairs now in Label Studio
    sit elsewhere in the training's rows, so the control draws fall elsewhere. The pairs of the lost import it does
    not ask again stay in Label Studio, unanswered, ordered by their score.)"""
    from ml_backend.cli import setup_project
    from ml_backend.label_studio_client import LabelStudioUnavailable

    pairs = make_synthetic_pairs(3000, seed=5)
    fake = InMemoryLabelStudio()
    app = backend_app(tmp_path, fake, queue_budget=50)
    pid = setup_project(fake, pairs, backend_url="http://backend", backend_check=False, pool_threshold=1000,
                        backend_http=http_for(app))["project_id"]
    app.test_client().post("/setup", json={"project": pid, "schema": PAIRWISE})
    real_import = fake.import_tasks

    def import_then_time_out(project, tasks):
        real_import(project, tasks)
        raise LabelStudioUnavailable("Label Studio import tasks failed: ReadTimeout")

    fake.import_tasks = import_then_time_out
    registry = app.extensions["rlthf"].registry
    with pytest.raises(LabelStudioUnavailable):
        registry.train(pid)
    lost = set(held_pair_ids(fake, pid))
    assert not registry.get(pid).state.trained and len(lost) == 50
    fake.import_tasks = real_import
    result = registry.train(pid)
    state = registry.get(pid).state
    held = held_pair_ids(fake, pid)
    served = {str(p) for p in state.pair_ids[state.queue_rank >= 0]}
    assert result["status"] == "trained" and len(served) == 50
    assert len(held) == len(set(held)) == 50 + result["imported"]  # nothing imported twice
    assert set(held) == served | lost and result["imported"] == len(served - lost)
    assert (state.task_ids[state.queue_rank >= 0] > 0).all()  # every served pair under its Label Studio id
