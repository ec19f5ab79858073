"""A large project against a real Label Studio 1.23.2: the pool stays in the backend, Label Studio holds the batches.

The threshold is lowered through its setting (``RLTHF_POOL_THRESHOLD``) so that 2,000 generated pairs count as a
large project and the test stays near a minute: ``rlthf label-studio setup`` sends the pool to the backend and
returns once Label Studio holds the first batch; two rounds of answers through the API each lead (by webhook) to a
retrain that imports its batch's new pairs; ``rlthf export`` returns every pool pair once, every human answer among
them. Timings are printed (``-s``).
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from ml_backend.ls_server import wait_until
from conftest import setup_through_cli  # noqa: E402

pytestmark = [pytest.mark.label_studio, pytest.mark.slow]

N_PAIRS = 2000
BATCH = 40
USER, PASSWORD = "rlthf-backend", "e2e-pool-pass"


def test_a_large_project_keeps_its_pool_in_the_backend(tmp_path, label_studio, monkeypatch, capsys):
    from conftest import serve_backend
    from label_config import parse_label_config
    from rlthf_selector.cli import main as rlthf_main
    from rlthf_selector.io import write_jsonl
    from rlthf_selector.synthetic import make_synthetic_pairs

    from ml_backend.label_studio_client import LabelStudioClient

    monkeypatch.setenv("BASIC_AUTH_PASS", PASSWORD)
    monkeypatch.setenv("RLTHF_POOL_THRESHOLD", str(N_PAIRS // 4))
    pairs = make_synthetic_pairs(N_PAIRS, seed=23)
    truth = dict(zip(pairs.ids.tolist(), pairs.gold_label.tolist()))
    pairs_file = write_jsonl(pairs.replace(gold_label=None), tmp_path / "pairs.jsonl")
    client = LabelStudioClient(label_studio["url"], label_studio["token"], retries=1)
    timings: dict[str, float] = {}
    title = f"rlthf-pool-{uuid.uuid4().hex[:8]}"
    pid = None
    with serve_backend(tmp_path / "models", label_studio, user=USER, password=PASSWORD, debounce_s=1.5,
                       max_wait_s=10.0, queue_budget=BATCH) as backend:
        worker = backend["backend"].worker
        try:
            started = time.perf_counter()
            outcome = setup_through_cli(label_studio, pairs_file, backend["url"], title=title, capsys=capsys, user=USER)
            pid = outcome["project_id"]
            timings["setup_with_first_batch_s"] = round(time.perf_counter() - started, 2)
            assert outcome["imported"] == 0 and outcome["pool"]["pairs"] == N_PAIRS
            assert outcome["first_batch"]["in_label_studio"] == BATCH
            tasks = client.list_tasks(pid)
            state = backend["backend"].registry.get(pid).state
            served = {str(p) for p, r in zip(state.pair_ids, state.queue_rank) if r >= 0}
            assert len(tasks) == BATCH and {t["data"]["pair_id"] for t in tasks} == served

            control = parse_label_config(client.get_project(pid)["label_config"])
            batches = [served]
            human: dict[str, int] = {}
            for round_ in (2, 3):
                wait_until(lambda: client.get_project(pid).get("model_version") == f"rlthf-{round_ - 1}"
                           and worker.wait_idle(0.1), timeout=60, what=f"write-back of rlthf-{round_ - 1}")
                open_tasks = [t for t in client.list_tasks(pid) if not t["annotations"]]
                for t in sorted(open_tasks, key=lambda t: t["data"].get("rlthf_priority", 1e9))[: BATCH // 2]:
                    pair_id = t["data"]["pair_id"]
                    client.create_annotation(t["id"], control.result(int(truth[pair_id])))
                    human[pair_id] = int(truth[pair_id])
                asked = time.perf_counter()
                wait_until(lambda: client.get_project(pid).get("model_version") == f"rlthf-{round_}"
                           and worker.wait_idle(0.1), timeout=90, what=f"retrain to rlthf-{round_}")
                timings[f"answers_to_batch_{round_}_s"] = round(time.perf_counter() - asked, 2)
                state = backend["backend"].registry.get(pid).state
                batches.append({str(p) for p, r in zip(state.pair_ids, state.queue_rank) if r >= 0})
                held = [t["data"]["pair_id"] for t in client.list_tasks(pid)]
                assert len(held) == len(set(held))  # no pair twice
                assert set(held) == set().union(*batches)  # exactly the batches asked
            tasks = client.list_tasks(pid)
            for t in tasks:  # every human answer as given
                for ann in t["annotations"]:
                    assert ann["result"][0]["value"] == control.result(human[t["data"]["pair_id"]])[0]["value"]
            timings["tasks_in_label_studio"] = len(tasks)

            out = tmp_path / "export"
            started = time.perf_counter()
            assert rlthf_main(["export", "--url", label_studio["url"], "--api-key", label_studio["token"],
                               "--project", str(pid), "--out", str(out), "--basic-auth-user", USER]) == 0
            timings["export_s"] = round(time.perf_counter() - started, 2)
            summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
            rows = [json.loads(line) for line in (out / "preferences.jsonl").read_text().splitlines()]
            assert summary["rows"] == len(rows) == N_PAIRS and sorted(r["id"] for r in rows) == sorted(truth)
            assert summary["label_sources"]["human"] == len(human) == BATCH
            by_id = {r["id"]: r for r in rows}
            assert all(by_id[p]["label_source"] == "human" for p in human)
        finally:
            print("\nlabel studio pool e2e timings:", json.dumps(timings))
            if pid is not None:
                client.delete_project(pid)
