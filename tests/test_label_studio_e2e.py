"""End to end against a real Label Studio 1.23.2 (started by the test session from ``.venv-ls``).

A project of 200 generated pairs with AI prelabels is set up with ``rlthf label-studio setup``; the
backend (basic auth on) runs on 127.0.0.1 in a thread; annotations are submitted through the API as an
annotator would; the webhook triggers a background retrain; ``/next`` must serve the human queue in
priority order; ``rlthf export`` must write a TRL data set carrying the human choices.
Timings are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest

from ml_backend.ls_server import wait_until
from conftest import setup_through_cli  # noqa: E402

pytestmark = [pytest.mark.label_studio, pytest.mark.slow]

N_PAIRS = 200
USER, PASSWORD = "rlthf-backend", "e2e-basic-pass"


@pytest.fixture
def backend(tmp_path, label_studio, monkeypatch):
    """The ML backend on 127.0.0.1 in a thread, talking to the real Label Studio."""
    from conftest import serve_backend

    monkeypatch.setenv("BASIC_AUTH_PASS", PASSWORD)
    with serve_backend(tmp_path / "models", label_studio, user=USER, password=PASSWORD, debounce_s=5.0,
                       max_wait_s=20.0) as served:
        yield served


def test_label_studio_round_trip(tmp_path, label_studio, backend, capsys):
    from label_config import parse_label_config
    from rlthf_selector.cli import main as rlthf_main
    from rlthf_selector.io import write_jsonl
    from rlthf_selector.synthetic import make_synthetic_pairs

    from ml_backend.label_studio_client import LabelStudioClient

    timings: dict[str, float] = {"label_studio_start_s": round(label_studio["started_in_s"], 1)}
    client = LabelStudioClient(label_studio["url"], label_studio["token"], retries=1)
    pairs = make_synthetic_pairs(N_PAIRS, seed=11)
    # The judge's doubt travels in the task data; the backend reads it back at every retrain.
    doubt = np.round(np.random.default_rng(11).uniform(0.0, 0.9, N_PAIRS), 3)
    # And each pair's conversation, as load_trl keeps TRL's conversational rows: the export must give it back.
    conversations = {}
    for key, role, texts in (("prompt_messages", "user", pairs.prompt), ("response_a_messages", "assistant", pairs.response_a),
                             ("response_b_messages", "assistant", pairs.response_b)):
        conversations[key] = np.empty(N_PAIRS, dtype=object)
        for i, text in enumerate(texts):
            conversations[key][i] = [{"role": role, "content": text}]
    pairs_file = write_jsonl(pairs.replace(gold_label=None, extra={"judge_doubt": doubt, **conversations}),
                             tmp_path / "pairs.jsonl")
    title = f"rlthf-e2e-{uuid.uuid4().hex[:8]}"
    worker = backend["backend"].worker

    # -- setup through the CLI: create, import with prelabels, connect the backend
    started = time.perf_counter()
    outcome = setup_through_cli(label_studio, pairs_file, backend["url"], title=title, capsys=capsys, user=USER)
    pid = outcome["project_id"]
    timings["setup_s"] = round(time.perf_counter() - started, 2)
    try:
        assert outcome["created"] and outcome["imported"] == N_PAIRS
        tasks = client.list_tasks(pid)
        assert len(tasks) == N_PAIRS
        assert all(p["model_version"] == "rlthf-0" for t in tasks for p in t["predictions"])

        # -- Label Studio called /setup (with basic auth): the first training runs in the background
        wait_until(lambda: client.get_project(pid).get("model_version") == "rlthf-1" and worker.wait_idle(0.1),
              timeout=90, what="the first training's write-back (model version rlthf-1)")
        timings["first_training_s"] = round(time.perf_counter() - started - timings["setup_s"], 2)
        project = client.get_project(pid)
        assert project["sampling"] == "Uncertainty sampling"
        tasks = client.list_tasks(pid)
        assert all(any(p["model_version"] == "rlthf-1" for p in t["predictions"]) for t in tasks)
        by_id = {t["id"]: t for t in tasks}
        assert all(t["data"]["prompt"] and t["data"]["response_b"] for t in tasks)  # merged, not wiped
        assert all(t["data"]["response_a_messages"] == [{"role": "assistant", "content": t["data"]["response_a"]}]
                   for t in tasks)
        by_pair = dict(zip(pairs.ids.tolist(), doubt.tolist()))
        assert all(t["data"]["judge_doubt"] == by_pair[t["data"]["pair_id"]] for t in tasks)
        queue = sorted((t["data"]["rlthf_priority"], t["id"]) for t in tasks if "rlthf_priority" in t["data"])
        assert 3 < len(queue) <= 20 and [q[0] for q in queue] == list(range(len(queue)))  # cap: 10% of the pairs

        # the Data Manager view lists the queue in priority order
        views = [v for v in client.list_views(pid) if v["data"].get("title") == "RLTHF: needs human"]
        assert len(views) == 1
        in_view = [t["id"] for t in client.list_tasks(pid, view=views[0]["id"])]
        assert in_view == [q[1] for q in queue]

        # -- an annotator labels three pairs from the stream: it serves the queue head first, in order
        control = parse_label_config(project["label_config"])
        human_choice: dict[int, int] = {}
        served = []
        for _ in range(3):
            task = client.next_task(pid)
            served.append(task["id"])
            ai = 1 if task["data"]["ai_label"] == "a" else -1
            choice = -ai  # the human disagrees with the AI
            client.create_annotation(task["id"], control.result(choice))
            human_choice[task["id"]] = choice
        last_annotation = time.perf_counter()
        assert served == [q[1] for q in queue[:3]]

        # -- the webhooks trigger one background retrain (after 5 s of quiet); the model version advances
        wait_until(lambda: client.get_project(pid).get("model_version") == "rlthf-2", timeout=60, what="retrain to rlthf-2")
        timings["annotation_to_new_version_s"] = round(time.perf_counter() - last_annotation, 2)
        assert worker.wait_idle(60)
        state = backend["backend"].registry.get(pid).state
        assert state.model_version == "rlthf-2"
        assert not any("left out" in w for w in state.warnings)  # the doubt came back from Label Studio usable
        for tid, choice in human_choice.items():
            pos = state.position(tid)
            assert state.human_label[pos] == choice and state.labels[pos] == choice
        tasks = client.list_tasks(pid)
        for t in tasks:  # one prediction per task: the current one, or for a labelled task the one it was labelled under
            assert [p["model_version"] for p in t["predictions"]] == ["rlthf-1" if t["id"] in human_choice else "rlthf-2"]
        queue2 = sorted((t["data"]["rlthf_priority"], t["id"]) for t in tasks if "rlthf_priority" in t["data"])
        assert not set(human_choice) & {q[1] for q in queue2}  # a labelled pair is never asked again
        annotations_before = {t["id"]: t["annotations"] for t in tasks if t["annotations"]}

        # -- the stream now serves the new queue in its order; one more annotation agrees with the AI
        task = client.next_task(pid)
        assert task["id"] == queue2[0][1]
        ai = 1 if task["data"]["ai_label"] == "a" else -1
        client.create_annotation(task["id"], control.result(ai))
        human_choice[task["id"]] = ai
        wait_until(lambda: client.get_project(pid).get("model_version") == "rlthf-3", timeout=60, what="retrain to rlthf-3")
        assert worker.wait_idle(60)
        after = {t["id"]: t["annotations"] for t in client.list_tasks(pid) if t["annotations"]}
        for tid, anns in annotations_before.items():  # human annotations are never touched
            assert [a["result"] for a in after[tid]] == [a["result"] for a in anns]

        # -- export: TRL rows, the human rows carry the human's choice
        out = tmp_path / "export"
        assert rlthf_main(["export", "--url", label_studio["url"], "--api-key", label_studio["token"],
                           "--project", str(pid), "--out", str(out)]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["rows"] == N_PAIRS and summary["label_sources"]["human"] == len(human_choice)
        assert summary["format"] == "conversational"
        rows = {r["id"]: r for r in map(json.loads, (out / "preferences.jsonl").read_text().splitlines())}
        for tid, choice in human_choice.items():
            data = by_id[tid]["data"]
            row = rows[data["pair_id"]]
            assert row["label_source"] == "human"
            assert row["prompt"] == [{"role": "user", "content": data["prompt"]}]
            chosen, rejected = (data["response_a"], data["response_b"])[::1 if choice > 0 else -1]
            assert row["chosen"] == [{"role": "assistant", "content": chosen}]
            assert row["rejected"] == [{"role": "assistant", "content": rejected}]
        metrics = backend["backend"].registry.get(pid).counters
        timings.update(webhooks=metrics["webhooks"], trainings=metrics["trainings"],
                       training_seconds=round(backend["backend"].registry.get(pid).state.training_seconds, 2))
    finally:
        print("\nlabel studio e2e timings:", json.dumps(timings))
        client.delete_project(pid)
