"""Load and fault script: the backend (``rlthf serve --production``, a subprocess) beside a real Label Studio,
all on 127.0.0.1.

1. load:  ``--clients`` concurrent ``/predict`` clients (10 tasks each) for ``--duration`` seconds;
2. storm: annotations created in Label Studio (which delivers its own webhooks), then ``--storm`` annotation
   webhooks in ``--storm-seconds`` (duplicates, updates, deletions mixed in); retrains run; the final state
   must equal Label Studio's human labels;
3. kill:  ``kill -9`` of the backend in the middle of a training, annotations made while it is down, a
   restart: the previous version serves at once, and after the catch-up no human label is lost.

Every request loop is bounded in count and time. Figures go to stdout as JSON and, with ``--report``, to
``benchmarks/RELIABILITY.md``. Needs ``.venv-ls`` (``make .venv-ls/.installed``) or ``--ls-url/--ls-token``.

    .venv/bin/python benchmarks/load_backend.py --report            # full run (about 3-4 minutes)
    .venv/bin/python benchmarks/load_backend.py --quick             # bounded version used by the tests
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q * (len(ordered) - 1)))))] if ordered else float("nan")


def _ms(values: list[float]) -> dict[str, float]:
    v = [x * 1000 for x in values]
    return {"n": len(v), "p50_ms": round(_pct(v, 0.5), 2), "p99_ms": round(_pct(v, 0.99), 2), "max_ms": round(max(v), 2) if v else None}


class BackendProcess:
    """``rlthf serve --production`` in a subprocess on 127.0.0.1."""

    def __init__(self, *, port: int, env: dict[str, str], log_path: Path):
        self.port, self.env, self.log_path = port, env, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> float:
        from ml_backend.ls_server import wait_healthy

        started = time.perf_counter()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlthf_selector.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port), "--production"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=str(REPO),
        )
        log.close()
        wait_healthy(self.url, timeout=timeout, process=self.proc, log_path=self.log_path)
        return time.perf_counter() - started

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill9()


def run(
    *, ls_url: str, ls_token: str, pairs: int = 500, clients: int = 32, duration: float = 60.0, storm: int = 1000,
    storm_seconds: float = 10.0, storm_annotations: int = 60, down_annotations: int = 10, seed: int = 0,
) -> dict:
    """Run the three phases; returns the figures (the caller judges them)."""
    import requests

    from label_config import load_label_config, parse_label_config
    from rlthf_selector.synthetic import make_synthetic_pairs

    from ml_backend.cli import setup_project
    from ml_backend.label_studio_client import LabelStudioClient
    from ml_backend.ls_server import free_port, wait_until

    rng = random.Random(seed)
    client = LabelStudioClient(ls_url, ls_token, retries=2)
    control = parse_label_config(load_label_config("pairwise"))
    work = Path(tempfile.mkdtemp(prefix="rlthf-load-"))
    user, password = "load", uuid.uuid4().hex
    env = dict(os.environ, LABEL_STUDIO_URL=ls_url, LABEL_STUDIO_API_KEY=ls_token, MODEL_DIR=str(work / "models"),
               BASIC_AUTH_USER=user, BASIC_AUTH_PASS=password, RLTHF_DEBOUNCE_S="1", RLTHF_MAX_WAIT_S="5", HF_HUB_OFFLINE="1",
               LOG_LEVEL="WARNING")
    backend = BackendProcess(port=free_port(), env=env, log_path=work / "backend.log")
    auth = (user, password)
    out: dict = {"pairs": pairs, "machine_cores": os.cpu_count()}
    status_counts: dict[str, int] = {}
    lock = threading.Lock()

    def count(code: object) -> None:
        with lock:
            status_counts[str(code)] = status_counts.get(str(code), 0) + 1

    def metrics() -> dict:
        return requests.get(f"{backend.url}/metrics", auth=auth, timeout=10).json()

    def idle() -> bool:
        w = metrics()["worker"]
        return not w["pending"] and w["running"] is None

    pid = None
    try:
        out["backend_start_s"] = round(backend.start(), 2)
        data = make_synthetic_pairs(pairs, seed=seed)
        os.environ["BASIC_AUTH_PASS"] = password
        setup = setup_project(client, data.replace(gold_label=None), backend_url=backend.url, title=f"rlthf-load-{uuid.uuid4().hex[:8]}",
                              basic_auth_user=user, basic_auth_pass=password)
        pid = setup["project_id"]
        wait_until(lambda: client.get_project(pid).get("model_version") == "rlthf-1", timeout=180, what="first training",
                   interval=0.2)
        tasks = client.list_tasks(pid)
        task_data = {t["id"]: t["data"] for t in tasks}
        task_ids = sorted(task_data)

        # ---- 1. predict load
        latencies: list[float] = []
        stop_at = time.monotonic() + duration

        def predict_client(k: int) -> None:
            s = requests.Session()
            r_local = random.Random(k)
            while time.monotonic() < stop_at:
                chunk = r_local.sample(task_ids, 10)
                body = {"project": f"{pid}.0", "tasks": [{"id": t, "data": task_data[t]} for t in chunk]}
                t0 = time.perf_counter()
                try:
                    r = s.post(f"{backend.url}/predict", json=body, auth=auth, timeout=30)
                    code = r.status_code
                except requests.RequestException as exc:
                    code = type(exc).__name__
                with lock:
                    latencies.append(time.perf_counter() - t0)
                count(code)

        threads = [threading.Thread(target=predict_client, args=(k,)) for k in range(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(duration + 60)
        ok = status_counts.get("200", 0)
        out["load"] = {"clients": clients, "duration_s": duration, "requests": len(latencies), "ok": ok,
                       "errors": len(latencies) - ok, "status": dict(status_counts), "rps": round(len(latencies) / duration, 1), **_ms(latencies)}

        # ---- 2. storm
        status_counts.clear()
        before = metrics()["worker"]["trainings"]
        phase_start = time.monotonic()
        annotated = rng.sample(task_ids, storm_annotations)
        anns: list[dict] = []
        for tid in annotated:  # through Label Studio: it delivers one real webhook each
            choice = rng.choice((1, -1))
            a = client.create_annotation(tid, control.result(choice))
            anns.append({"task": tid, "id": a["id"], "result": a["result"], "updated_at": a.get("updated_at")})
        # Label Studio changes some of its mind: an update and a deletion, as a real team would.
        changed = anns[0]
        flipped = -control.label_of(changed["result"])
        upd = client.update_annotation(changed["id"], control.result(flipped))
        changed.update(result=upd["result"], updated_at=upd.get("updated_at"))
        deleted = anns.pop()
        client.delete_annotation(deleted["id"])
        storm_lat: list[float] = []
        interval = storm_seconds / max(storm, 1)
        t_start = time.monotonic()

        def storm_sender(part: list[int]) -> None:
            s = requests.Session()
            for i in part:
                due = t_start + i * interval
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                kind = i % 10
                if kind == 9:
                    body = {"action": "ANNOTATIONS_DELETED", "project": {"id": pid}, "annotations": [{"id": deleted["id"]}]}
                else:
                    a = anns[i % len(anns)]
                    action = "ANNOTATION_UPDATED" if kind in (7, 8) else "ANNOTATION_CREATED"
                    body = {"action": action, "project": {"id": pid}, "task": {"id": a["task"]},
                            "annotation": {"id": a["id"], "result": a["result"], "updated_at": a["updated_at"] if kind < 8 else f"{i}"}}
                t0 = time.perf_counter()
                try:
                    code = s.post(f"{backend.url}/webhook", json=body, auth=auth, timeout=30).status_code
                except requests.RequestException as exc:
                    code = type(exc).__name__
                with lock:
                    storm_lat.append(time.perf_counter() - t0)
                count(code)

        parts = [list(range(k, storm, 8)) for k in range(8)]
        senders = [threading.Thread(target=storm_sender, args=(p,)) for p in parts]
        for th in senders:
            th.start()
        for th in senders:
            th.join(storm_seconds + 120)
        storm_wall = time.monotonic() - t_start
        wait_until(idle, timeout=300, what="the storm's retrains", interval=0.2)
        after = metrics()
        truth = _human_labels(client, pid, control)
        backend_labels = _backend_labels(requests, backend.url, auth, pid, task_data)
        lost = sorted(t for t, lab in truth.items() if backend_labels.get(t) != ("human", lab))
        phantom = sorted(t for t, (src, _) in backend_labels.items() if src == "human" and t not in truth)
        out["storm"] = {
            "webhooks": storm, "sent_in_s": round(storm_wall, 2), "status": dict(status_counts),
            "ack": _ms(storm_lat), "trainings": after["worker"]["trainings"] - before,
            "phase_s": round(time.monotonic() - phase_start, 2),
            "human_labels_in_label_studio": len(truth), "lost_or_wrong": len(lost), "phantom_human_labels": len(phantom),
            "final_model_version": after["projects"][str(pid)]["model_version"],
        }

        # ---- 3. kill -9 mid-training, annotations while down, restart
        annotations_before = {t["id"]: [a["result"] for a in t["annotations"]] for t in client.list_tasks(pid) if t["annotations"]}
        version_before = metrics()["projects"][str(pid)]["model_version"]
        requests.post(f"{backend.url}/webhook", json={"action": "START_TRAINING", "project": {"id": pid}}, auth=auth, timeout=10)
        wait_until(lambda: metrics()["worker"]["running"] == pid, timeout=30, what="a training to start", interval=0.02)
        backend.kill9()
        remaining = [t for t in task_ids if t not in truth]
        for tid in rng.sample(remaining, down_annotations):
            client.create_annotation(tid, control.result(rng.choice((1, -1))))  # its webhook fails: backend down
        restart_s = backend.start()
        r = requests.post(f"{backend.url}/predict", auth=auth, timeout=30,
                          json={"project": pid, "tasks": [{"id": t, "data": task_data[t]} for t in task_ids[:10]]})
        serving_after_restart = r.json().get("model_version") if r.status_code == 200 else f"HTTP {r.status_code}"
        wait_until(idle, timeout=300, what="the catch-up retrain", interval=0.2)
        truth = _human_labels(client, pid, control)
        backend_labels = _backend_labels(requests, backend.url, auth, pid, task_data)
        lost = sorted(t for t, lab in truth.items() if backend_labels.get(t) != ("human", lab))
        annotations_after = {t["id"]: [a["result"] for a in t["annotations"]] for t in client.list_tasks(pid) if t["annotations"]}
        touched = sorted(t for t, res in annotations_before.items() if annotations_after.get(t) != res)
        out["kill"] = {
            "version_before_kill": version_before, "serving_right_after_restart": serving_after_restart,
            "restart_s": round(restart_s, 2), "annotations_while_down": down_annotations,
            "human_labels_in_label_studio": len(truth), "lost_or_wrong": len(lost), "annotations_touched_by_backend": len(touched),
            "final_model_version": metrics()["projects"][str(pid)]["model_version"],
        }
        out["server_errors_5xx"] = sum(
            v for phase in (out["load"]["status"], out["storm"]["status"]) for k, v in phase.items() if k.startswith("5")
        )
        return out
    finally:
        backend.stop()
        if pid is not None:
            try:
                client.delete_project(pid)
            except Exception:
                pass


def _human_labels(client, pid: int, control) -> dict[int, int]:
    from rlthf_selector.label_studio_tasks import human_label_of

    out = {}
    for t in client.list_tasks(pid):
        label = human_label_of(t, control, [])
        if label:
            out[t["id"]] = label
    return out


def _backend_labels(requests, url: str, auth, pid: int, task_data: dict) -> dict[int, tuple[str, int]]:
    from label_config import load_label_config, parse_label_config

    control = parse_label_config(load_label_config("pairwise"))
    ids = sorted(task_data)
    out = {}
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        r = requests.post(f"{url}/predict", auth=auth, timeout=30,
                          json={"project": pid, "tasks": [{"id": t, "data": task_data[t]} for t in chunk]})
        r.raise_for_status()
        for t, res in zip(chunk, r.json()["results"]):
            out[t] = (res["rlthf"]["label_source"], control.label_of(res["result"]))
    return out


def write_report(figures: dict, path: Path) -> None:
    load, storm, kill = figures["load"], figures["storm"], figures["kill"]
    lines = [
        "# Backend reliability figures",
        "",
        "Written by `benchmarks/load_backend.py --report`: the backend (`rlthf serve --production`, waitress, a",
        "subprocess) beside a real Label Studio 1.23.2, everything on 127.0.0.1, on the development machine",
        f"({figures['machine_cores']} cores, shared with other work). Project of {figures['pairs']} generated pairs; basic auth on.",
        "",
        "| phase | figure | value |",
        "| --- | --- | --- |",
        f"| load | {load['clients']} concurrent /predict clients (10 tasks each), {load['duration_s']:.0f} s | {load['requests']} requests, {load['rps']} req/s |",
        f"| load | latency p50 / p99 / max | {load['p50_ms']} / {load['p99_ms']} / {load['max_ms']} ms |",
        f"| load | errors (non-200 or transport) | {load['errors']} |",
        f"| storm | annotation webhooks sent (creates, duplicates, updates, deletions) | {storm['webhooks']} in {storm['sent_in_s']} s |",
        f"| storm | answers by status | {storm['status']} |",
        f"| storm | ack latency p50 / p99 / max | {storm['ack']['p50_ms']} / {storm['ack']['p99_ms']} / {storm['ack']['max_ms']} ms |",
        f"| storm | retrains caused | {storm['trainings']} |",
        f"| storm | human labels in Label Studio / lost or wrong in the backend / phantom | {storm['human_labels_in_label_studio']} / {storm['lost_or_wrong']} / {storm['phantom_human_labels']} |",
        f"| kill -9 | version before the kill / served right after restart | {kill['version_before_kill']} / {kill['serving_right_after_restart']} |",
        f"| kill -9 | restart to /health | {kill['restart_s']} s |",
        f"| kill -9 | annotations made while down / human labels lost after catch-up | {kill['annotations_while_down']} / {kill['lost_or_wrong']} |",
        f"| kill -9 | human annotations changed by the backend | {kill['annotations_touched_by_backend']} |",
        f"| all | 5xx answers | {figures['server_errors_5xx']} |",
        "",
        "Raw figures:",
        "",
        "```json",
        json.dumps(figures, indent=1),
        "```",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--ls-url", default=os.environ.get("RLTHF_LS_URL", ""), help="a running Label Studio (default: start one)")
    parser.add_argument("--ls-token", default=os.environ.get("RLTHF_LS_TOKEN", ""))
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--storm", type=int, default=1000)
    parser.add_argument("--storm-seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="bounded version: 8 clients for 5 s, 200 webhooks in 3 s")
    parser.add_argument("--report", action="store_true", help="write benchmarks/RELIABILITY.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.clients, args.duration, args.storm, args.storm_seconds = 200, 8, 5.0, 200, 3.0

    from ml_backend import ls_server

    server = None
    url, token = args.ls_url, args.ls_token or ls_server.DEFAULT_TOKEN
    if not url:
        server = ls_server.start_label_studio()
        url = server.url
    try:
        figures = run(ls_url=url, ls_token=token, pairs=args.pairs, clients=args.clients, duration=args.duration,
                      storm=args.storm, storm_seconds=args.storm_seconds,
                      storm_annotations=20 if args.quick else 60, down_annotations=5 if args.quick else 10)
    finally:
        if server is not None:
            server.stop()
    print(json.dumps(figures, indent=1))
    if args.report:
        write_report(figures, REPO / "benchmarks" / "RELIABILITY.md")
    bad = figures["server_errors_5xx"] or figures["storm"]["lost_or_wrong"] or figures["kill"]["lost_or_wrong"] \
        or figures["storm"]["phantom_human_labels"] or figures["kill"]["annotations_touched_by_backend"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
