"""The Label Studio client's retries and error messages (against a scripted local HTTP server), and the
export's label merge (human > backend prediction > AI prelabel)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

pytest.importorskip("label_studio_sdk")

from label_config import load_label_config, parse_label_config  # noqa: E402
from ml_backend.cli import collect_labels  # noqa: E402
from ml_backend.label_studio_client import LabelStudioClient, LabelStudioError, LabelStudioUnavailable  # noqa: E402

SECRET = "very-secret-token-123"


@pytest.fixture
def scripted_server():
    """A server answering each request with the next (status, body) of ``script`` (then 200 {})."""
    script: list[tuple[int, object]] = []
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            seen.append({"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"),
                         "body": self.rfile.read(length).decode() if length else ""})
            status, body = script.pop(0) if script else (200, {})
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script, seen
    finally:
        server.shutdown()


def test_5xx_is_retried_with_backoff_then_succeeds(scripted_server):
    url, script, seen = scripted_server
    script += [(503, {"detail": "busy"}), (502, "bad gateway"), (200, {"id": 7, "label_config": "<View/>"})]
    waits: list[float] = []
    client = LabelStudioClient(url, SECRET, retries=3, backoff_s=0.25, sleep=waits.append)
    assert client.get_project(7)["id"] == 7
    assert waits == [0.25, 0.5]
    assert len(seen) == 3 and all(s["auth"] == f"Token {SECRET}" for s in seen)
    assert client.reachable is True


def test_persistent_outage_raises_unavailable_without_the_key(scripted_server):
    url, script, seen = scripted_server
    script += [(503, {"detail": "down"})] * 3
    client = LabelStudioClient(url, SECRET, retries=2, backoff_s=0.0, sleep=lambda s: None)
    with pytest.raises(LabelStudioUnavailable) as info:
        client.get_project(1)
    assert "HTTP 503" in str(info.value) and SECRET not in str(info.value)
    assert client.reachable is False and SECRET not in repr(client)


def test_connection_refused_is_unavailable():
    client = LabelStudioClient("http://127.0.0.1:9", SECRET, retries=1, backoff_s=0.0, sleep=lambda s: None)
    with pytest.raises(LabelStudioUnavailable, match="ConnectError"):
        client.list_tasks(1)


def test_4xx_is_not_retried_and_names_the_answer(scripted_server):
    url, script, seen = scripted_server
    script += [(400, {"detail": "Validation error", "validation_errors": {"url": ["bad"]}})]
    client = LabelStudioClient(url, SECRET, retries=3, sleep=lambda s: None)
    with pytest.raises(LabelStudioError) as info:
        client.connect_ml_backend(1, "http://backend")  # first call lists backends: 400
    assert info.value.status_code == 400 and "Validation error" in str(info.value)
    assert len(seen) == 1


def test_task_data_update_sends_the_whole_dict(scripted_server):
    url, script, seen = scripted_server
    client = LabelStudioClient(url, SECRET)
    client.update_task_data(5, {"prompt": "p", "response_a": "a", "response_b": "b", "rlthf_priority": 0})
    assert seen[0]["method"] == "PATCH" and seen[0]["path"] == "/api/tasks/5"
    assert json.loads(seen[0]["body"]) == {"data": {"prompt": "p", "response_a": "a", "response_b": "b", "rlthf_priority": 0}}


def test_list_tasks_reads_every_page(scripted_server):
    url, script, seen = scripted_server
    page = lambda ids: {"tasks": [{"id": i, "data": {}} for i in ids], "total": 5}  # noqa: E731
    script += [(200, page([1, 2])), (200, page([3, 4])), (200, page([5]))]
    client = LabelStudioClient(url, SECRET)
    assert [t["id"] for t in client.list_tasks(3, page_size=2)] == [1, 2, 3, 4, 5]
    assert len(seen) == 3 and "fields=all" in seen[0]["path"]


# ---------------------------------------------------------------------- export merge
def _task(tid, ai, *, annotations=(), prediction=None, version="rlthf-4"):
    control = parse_label_config(load_label_config("pairwise"))
    data = {"prompt": f"p{tid}", "response_a": f"a{tid}", "response_b": f"b{tid}", "pair_id": f"pair-{tid}"}
    if ai:
        data["ai_label"] = "a" if ai > 0 else "b"
    preds = [{"result": control.result(prediction), "model_version": version}] if prediction else []
    preds.append({"result": control.result(1), "model_version": "rlthf-1"})  # an older version: ignored
    anns = [{"id": 10 * tid + k, "result": control.result(lab), "was_cancelled": cancelled, "updated_at": f"t{k}"}
            for k, (lab, cancelled) in enumerate(annotations)]
    return {"id": tid, "data": data, "annotations": anns, "predictions": preds}


def test_export_merge_prefers_humans_then_the_backend_then_the_ai():
    tasks = [
        _task(1, 1, annotations=[(-1, False)], prediction=1),   # human wins
        _task(2, 1, annotations=[(-1, True)], prediction=1),    # skipped annotation: backend's label (= AI)
        _task(3, 1, prediction=-1),                             # backend contradicts the AI: flipped
        _task(4, 0, prediction=-1),                             # no AI label: reward model
        _task(5, -1),                                           # no current prediction: AI prelabel
        _task(6, 0),                                            # nothing: left out, counted
        {"id": 7, "data": {"prompt": "p"}, "annotations": [], "predictions": []},  # bad data: left out, counted
    ]
    got = collect_labels(tasks, label_config=load_label_config("pairwise"), model_version="rlthf-4")
    assert list(got["pairs"].ids) == ["pair-1", "pair-2", "pair-3", "pair-4", "pair-5"]
    assert got["labels"].tolist() == [-1, 1, -1, -1, -1]
    assert got["label_source"].tolist() == [3, 1, 2, 4, 1]  # human, ai, flipped, rm, ai
    assert sum(got["skipped"].values()) == 2
    assert np.array_equal(got["pairs"].human_label, np.array([-1, 0, 0, 0, 0], dtype=np.int8))
