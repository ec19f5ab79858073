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
from rlthf_selector.label_studio_tasks import task_labels  # noqa: E402
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
    got = task_labels(tasks, label_config=load_label_config("pairwise"), model_version="rlthf-4")
    assert list(got.pairs.ids) == ["pair-1", "pair-2", "pair-3", "pair-4", "pair-5"]
    assert got.labels.tolist() == [-1, 1, -1, -1, -1]
    assert got.label_source.tolist() == [3, 1, 2, 4, 1]  # human, ai, flipped, rm, ai
    assert sum(got.skipped.values()) == 2
    assert np.array_equal(got.pairs.human_label, np.array([-1, 0, 0, 0, 0], dtype=np.int8))



def test_conversations_travel_through_task_data_to_a_conversational_export(trl_conversations):
    from rlthf_selector.label_studio_tasks import task_records
    from rlthf_selector.export import to_trl_records
    from rlthf_selector.pairs import has_conversation
    from rlthf_selector.io import load_trl

    records = trl_conversations(4)
    pairs = load_trl(records, seed=1, labels_as="ai")[0]
    control = parse_label_config(load_label_config("pairwise"))
    tasks = [dict(t, id=k + 1, annotations=[]) for k, t in enumerate(task_records(pairs, control=control, model_version="v"))]
    assert tasks[0]["data"]["prompt_messages"] == records[0]["prompt"]
    got = task_labels(tasks, label_config=load_label_config("pairwise"), model_version="v")
    assert int(has_conversation(got.pairs).sum()) == 4 and not got.warnings
    rows = to_trl_records(got.pairs, got.labels, got.label_source)
    assert [(r["prompt"], r["chosen"], r["rejected"]) for r in rows] == [
        (r["prompt"], r["chosen"], r["rejected"]) for r in records]
    # A malformed conversation is named and left out; the pair itself is exported, as text with the rest.
    tasks[2]["data"]["response_b_messages"] = [{"content": "no role"}]
    got = task_labels(tasks, label_config=load_label_config("pairwise"), model_version="v")
    assert len(got.pairs) == 4 and int(has_conversation(got.pairs).sum()) == 3
    assert any(w.startswith("1 malformed conversation fields left out (first: pair trl-2: data.response_b_messages[0] "
                            "must be a") for w in got.warnings)
    assert isinstance(to_trl_records(got.pairs, got.labels, got.label_source)[0]["prompt"], str)


def test_export_project_says_which_format_it_wrote(tmp_path, trl_conversations):
    from ml_backend.cli import export_project
    from rlthf_selector.label_studio_tasks import task_records
    from rlthf_selector.io import load_trl

    records = trl_conversations(3)
    pairs = load_trl(records, seed=1, labels_as="ai")[0]
    config = load_label_config("pairwise")
    tasks = [dict(t, id=k + 1, annotations=[])
             for k, t in enumerate(task_records(pairs, control=parse_label_config(config), model_version="v"))]

    class Client:  # the two calls export_project makes
        def get_project(self, project_id):
            return {"label_config": config, "model_version": "v"}

        def list_tasks(self, project_id):
            return tasks

    summary = export_project(Client(), 1, tmp_path / "all")
    assert summary["format"] == "conversational" and summary["rows"] == 3 and not summary["warnings"]
    first = json.loads((tmp_path / "all" / "preferences.jsonl").read_text().splitlines()[0])
    assert first["prompt"] == records[0]["prompt"]
    del tasks[1]["data"]["prompt_messages"]  # one task imported as plain text
    summary = export_project(Client(), 1, tmp_path / "mixed")
    assert summary["format"] == "text"
    assert any("2 of 3 pairs carry a conversation" in w for w in summary["warnings"])


def test_the_chat_config_needs_every_prompt_as_messages_before_any_project_is_made(trl_conversations):
    from ml_backend.cli import setup_project
    from rlthf_selector.label_studio_tasks import task_records
    from rlthf_selector.io import load_trl

    pairs = load_trl(trl_conversations(3), seed=1, labels_as="ai")[0]
    created = []

    class Client:  # fails the test if setup gets as far as creating a project
        def find_project(self, title):
            return None

        def create_project(self, *args, **kwargs):
            created.append(args)
            raise AssertionError("a project was created for pairs the config cannot show")

    plain = pairs.replace(extra={k: v.copy() for k, v in pairs.extra.items()})
    plain.extra["prompt_messages"][1] = None
    with pytest.raises(ValueError, match=r"pair 'trl-1' has no prompt messages; .* or use --label-config pairwise"):
        setup_project(Client(), plain, backend_url="http://127.0.0.1:9", config="chat")
    parts = pairs.replace(extra={k: v.copy() for k, v in pairs.extra.items()})
    parts.extra["prompt_messages"][2] = [{"role": "user", "content": [{"type": "text", "text": "Question 2?"}]}]
    with pytest.raises(ValueError, match=r"pair 'trl-2' has a message whose content is not text"):
        setup_project(Client(), parts, backend_url="http://127.0.0.1:9", config="chat")
    assert not created
    # A project reused with the chat config checks the same, through its control's data fields.
    chat = parse_label_config(load_label_config("chat"))
    with pytest.raises(ValueError, match="trl-1"):
        task_records(plain, control=chat, model_version="v")
    assert task_records(pairs, control=chat, model_version="v")[0]["data"]["prompt_messages"] == trl_conversations(3)[0]["prompt"]
