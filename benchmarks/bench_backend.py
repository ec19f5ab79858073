"""Latency of the ML backend over HTTP on 127.0.0.1: webhook acknowledgement while a training runs
(target < 100 ms) and ``/predict`` for 10 tasks from the in-memory model (target p95 < 50 ms).

The backend runs under waitress (as ``rlthf serve --production``) in this process, against an in-memory
Label Studio holding ``--pairs`` generated pairs; the training is the real selection step (hashing
features, Bradley-Terry reward model, cross-fitted gaps). Prints one JSON object.

    .venv/bin/python benchmarks/bench_backend.py [--pairs 3000] [--webhooks 200] [--predicts 300]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q * (len(ordered) - 1)))))
    return ordered[k]


def _summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 2), "p95_ms": round(_percentile(ms, 0.95), 2),
            "max_ms": round(max(ms), 2)}


def machine() -> dict[str, object]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3000, help="tasks in the project (a bigger one trains longer)")
    parser.add_argument("--webhooks", type=int, default=200, help="webhooks sent while trainings run")
    parser.add_argument("--predicts", type=int, default=300, help="/predict requests of 10 tasks")
    args = parser.parse_args(argv)

    import requests
    from waitress.server import create_server

    from label_config import load_label_config, parse_label_config
    from rlthf_selector.config import BackendConfig
    from rlthf_selector.synthetic import make_synthetic_pairs

    from ml_backend.app import create_app
    from ml_backend.ls_server import free_port
    from ml_backend.memory_client import InMemoryLabelStudio

    config_xml = load_label_config("pairwise")
    control = parse_label_config(config_xml)
    pairs = make_synthetic_pairs(args.pairs, seed=0)
    ls = InMemoryLabelStudio()
    pid = ls.add_project(config_xml, [
        {"prompt": str(pairs.prompt[i]), "response_a": str(pairs.response_a[i]), "response_b": str(pairs.response_b[i]),
         "ai_label": "a" if pairs.ai_label[i] > 0 else "b", "pair_id": str(pairs.ids[i])} for i in range(len(pairs))])
    task_ids = ls.task_ids(pid)

    with tempfile.TemporaryDirectory() as model_dir:
        app = create_app(BackendConfig(model_dir=model_dir, debounce_s=0.0, max_wait_s=0.0), client_factory=lambda e: ls)
        backend = app.extensions["rlthf"]
        port = free_port()
        server = create_server(app, host="127.0.0.1", port=port, threads=8)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        session = requests.Session()
        try:
            started = time.perf_counter()
            session.post(f"{url}/setup", json={"project": pid, "schema": config_xml}).raise_for_status()
            assert backend.worker.wait_idle(600)
            first_training_s = time.perf_counter() - started

            # Webhooks while trainings run: each annotation makes the next training necessary.
            ack, during_training = [], 0
            for k in range(args.webhooks):
                if backend.worker.status()["running"] is None:
                    session.post(f"{url}/webhook", json={"action": "START_TRAINING", "project": {"id": pid}})
                    deadline = time.monotonic() + 10
                    while backend.worker.status()["running"] is None and time.monotonic() < deadline:
                        time.sleep(0.002)
                tid = task_ids[k % len(task_ids)]
                ann = ls.annotate(tid, control.result(1))
                running = backend.worker.status()["running"] is not None
                t0 = time.perf_counter()
                r = session.post(f"{url}/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": pid},
                                                         "task": {"id": tid}, "annotation": dict(ann, task=tid)})
                elapsed = time.perf_counter() - t0
                r.raise_for_status()
                if running:
                    ack.append(elapsed)
                    during_training += 1
                time.sleep(0.01)
            assert backend.worker.wait_idle(600)

            state = backend.registry.get(pid).state
            predict = []
            for k in range(args.predicts):
                chunk = [task_ids[(k * 10 + j) % len(task_ids)] for j in range(10)]
                body = {"project": f"{pid}.0", "tasks": [{"id": t, "data": ls.tasks[t]["data"]} for t in chunk]}
                t0 = time.perf_counter()
                r = session.post(f"{url}/predict", json=body)
                predict.append(time.perf_counter() - t0)
                r.raise_for_status()
                assert len(r.json()["results"]) == 10
        finally:
            server.close()
            backend.worker.stop()

    out = {
        "benchmark": "bench_backend",
        "pairs": args.pairs,
        "first_training_s": round(first_training_s, 2),
        "training_s_last": round(state.training_seconds, 2),
        "trainings": backend.worker.trainings,
        "webhook_ack_during_training": {**_summary(ack), "target_ms": 100},
        "predict_10_tasks": {**_summary(predict), "target_p95_ms": 50},
        "server": "waitress, 8 threads, 127.0.0.1",
        "machine": machine(),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
