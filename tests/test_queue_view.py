"""The queue explains itself: the task fields and Data Manager tabs the backend writes after each retrain.

Against :class:`ml_backend.memory_client.InMemoryLabelStudio` (fast); the real Label Studio's rendering of the same
tabs is checked by the browser test, ``tests/test_label_studio_browser.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("flask")

from label_config import load_label_config, parse_label_config  # noqa: E402
from rlthf_selector.config import BackendConfig  # noqa: E402
from rlthf_selector.estimates import CONTROL_DRAW  # noqa: E402
from rlthf_selector.pairs import LabelSource  # noqa: E402
from rlthf_selector.selection import Region  # noqa: E402
from rlthf_selector.synthetic import make_synthetic_pairs  # noqa: E402

from ml_backend.app import create_app  # noqa: E402
from ml_backend.state import ProjectState  # noqa: E402
from ml_backend.training import (  # noqa: E402
    RLTHF_FIELDS,
    VIEW_ALL,
    VIEW_FLIPPED,
    VIEW_TITLE,
    VIEW_TRUSTED,
    all_task_fields,
    merged_task_data,
    trusted_sample,
    view_definitions,
)

PAIRWISE = load_label_config("pairwise")
CONTROL = parse_label_config(PAIRWISE)


def _pair_data(n: int, seed: int = 5) -> list[dict]:
    p = make_synthetic_pairs(n, seed=seed)
    return [{"prompt": str(p.prompt[i]), "response_a": str(p.response_a[i]), "response_b": str(p.response_b[i]),
             "ai_label": "a" if p.ai_label[i] > 0 else "b", "pair_id": str(p.ids[i]), "judge_doubt": 0.1}
            for i in range(n)]


@pytest.fixture
def trained(tmp_path, fake_ls):
    """A 120-pair project connected to a backend whose worker the test drives, trained once."""
    pid = fake_ls.add_project(PAIRWISE, _pair_data(120))
    config = BackendConfig(model_dir=str(tmp_path / "models"), debounce_s=0.0, max_wait_s=0.0, control_share=0.3)
    app = create_app(config, client_factory=lambda entry: fake_ls, start_worker=False)
    client = app.test_client()
    assert client.post("/setup", json={"project": pid, "schema": PAIRWISE}).status_code == 200
    backend = app.extensions["rlthf"]
    assert backend.worker.run_due() == [pid]
    return client, backend, pid


def _queued(fake_ls, pid: int) -> dict[int, dict]:
    return {t: fake_ls.tasks[t]["data"] for t in fake_ls.task_ids(pid) if "rlthf_priority" in fake_ls.tasks[t]["data"]}


def test_queued_tasks_carry_a_numeric_priority_the_ai_choice_and_the_reason_in_words(trained, fake_ls):
    client, backend, pid = trained
    state = backend.registry.get(pid).state
    reasons = state.summary["queue_reasons"]
    queued = _queued(fake_ls, pid)
    assert len(queued) == len(reasons) > 3
    assert sorted(d["rlthf_priority"] for d in queued.values()) == list(range(len(queued)))
    for tid, data in queued.items():
        assert type(data["rlthf_priority"]) is int  # a number, which the Data Manager sorts and filters as one
        assert data["rlthf_reason"] == reasons[str(tid)] and data["rlthf_reason"].strip()
        assert data["rlthf_ai_choice"] == data["ai_label"].upper()
        assert data["prompt"] and data["response_b"] and data["judge_doubt"] == 0.1  # merged, not replaced
    controls = [tid for tid in queued if state.drawn_by[state.position(tid)] == CONTROL_DRAW]
    assert controls, "a 30% control share over the queue draws at least one control pair"
    for tid in queued:  # a control draw says so wherever a region is shown, and its reason agrees
        is_control = tid in controls
        assert (queued[tid]["rlthf_region"] == "random check") == is_control
        assert (queued[tid]["rlthf_reason"] == "random check") == is_control
    body = client.post("/predict", json={"project": pid, "tasks": [fake_ls.tasks[t] for t in queued]}).get_json()
    shown = {t: r["rlthf"]["region"] for t, r in zip(queued, body["results"])}
    assert {t for t, region in shown.items() if region == "random check"} == set(controls)


def test_an_answered_task_loses_its_queue_fields_and_keeps_its_data(trained, fake_ls):
    client, backend, pid = trained
    head = min(_queued(fake_ls, pid).items(), key=lambda kv: kv[1]["rlthf_priority"])[0]
    before = dict(fake_ls.tasks[head]["data"])
    fake_ls.annotate(head, CONTROL.result(1))
    client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": pid}})
    assert backend.worker.run_due() == [pid]
    after = fake_ls.tasks[head]["data"]
    assert not {"rlthf_priority", "rlthf_reason", "rlthf_ai_choice"} & set(after)
    assert {k: v for k, v in before.items() if k not in RLTHF_FIELDS} == {k: v for k, v in after.items()
                                                                            if k not in RLTHF_FIELDS}


def test_the_tabs_show_what_each_is_for_and_hide_the_empty_columns(trained, fake_ls):
    client, backend, pid = trained
    views = fake_ls.views[pid]
    assert list(views) == [VIEW_ALL, VIEW_TITLE, VIEW_FLIPPED, VIEW_TRUSTED]
    queue = views[VIEW_TITLE]
    hidden = set(queue["hiddenColumns"]["explore"])
    for column in ("tasks:data.prompt", "tasks:data.response_a", "tasks:data.response_b", "tasks:data.rlthf_ai_choice",
                   "tasks:data.rlthf_priority", "tasks:data.rlthf_reason", "tasks:data.rlthf_region"):
        assert column not in hidden
    # Empty for this workflow, or noise beside the queue: hidden, the task data's own extra fields included.
    for column in ("tasks:inner_id", "tasks:total_annotations", "tasks:annotations_results", "tasks:predictions_results",
                   "tasks:total_predictions", "tasks:file_upload", "tasks:data.pair_id", "tasks:data.judge_doubt",
                   "tasks:data.ai_label"):
        assert column in hidden
    # Beside an open task the AI's choice is hidden too: the labeling screen stays blind.
    assert "tasks:data.rlthf_ai_choice" in queue["hiddenColumns"]["labeling"]
    assert queue["columnsDisplayType"] == {"tasks:data.rlthf_priority": "Number"}
    assert queue["ordering"] == ["tasks:data.rlthf_priority"]
    assert "filters" not in views[VIEW_ALL]
    for title, mark in ((VIEW_FLIPPED, "flipped"), (VIEW_TRUSTED, "trusted sample")):
        (item,) = views[title]["filters"]["items"]
        assert item["filter"] == "filter:tasks:data.rlthf_audit" and item["value"] == mark
    sample = [t for t in fake_ls.task_ids(pid) if fake_ls.tasks[t]["data"].get("rlthf_audit") == "trusted sample"]
    state = backend.registry.get(pid).state
    assert 0 < len(sample) <= 25
    for tid in sample:
        pos = state.position(tid)
        assert state.region[pos] == Region.TRUSTED and state.label_source[pos] == LabelSource.AI
        assert fake_ls.tasks[tid]["data"]["rlthf_region"] == "trusted"


def _state(n: int = 60) -> ProjectState:
    """A hand-made trained state: pairs 0-4 queued (2 as a control draw), 10-12 flipped, 20 human-labelled."""
    ai = np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.int8)
    labels = ai.copy()
    source = np.full(n, int(LabelSource.AI), dtype=np.int8)
    region = np.full(n, int(Region.TRUSTED), dtype=np.int8)
    priority = np.full(n, np.inf)
    priority[:5] = np.arange(5)
    region[:5] = int(Region.HUMAN)
    labels[10:13] = -ai[10:13]
    source[10:13] = int(LabelSource.FLIPPED)
    region[10:13] = int(Region.FLIP)
    human = np.zeros(n, dtype=np.int8)
    human[20] = labels[20] = 1
    source[20] = int(LabelSource.HUMAN)
    queue_rank = np.where(np.isfinite(priority), priority, -1).astype(np.int64)
    state = ProjectState(project_id=3, iteration=2, model_version="rlthf-2", task_ids=np.arange(100, 100 + n),
                         ai_label=ai, human_label=human, labels=labels, label_source=source, region=region,
                         priority=priority, queue_rank=queue_rank, score=np.ones(n),
                         summary={"queue_reasons": {str(100 + i): f"reason {i}" for i in range(5)}})
    state.drawn_by[:5] = 1
    state.drawn_by[2] = CONTROL_DRAW
    return state


def test_flipped_pairs_and_a_fixed_trusted_sample_are_marked_for_audit():
    state = _state()
    fields = all_task_fields(state)
    for i in range(10, 13):  # flipped: what the AI said, what RLTHF exports instead
        assert fields[i] == {"rlthf_region": "flip", "rlthf_audit": "flipped", "rlthf_ai_choice": "AB"[i % 2],
                             "rlthf_label": "BA"[i % 2]}
    assert fields[2]["rlthf_region"] == "random check" and fields[0]["rlthf_region"] == "human"
    assert fields[0]["rlthf_reason"] == "reason 0" and fields[0]["rlthf_priority"] == 0
    assert fields[20] == {}  # human-labelled: nothing to show
    sample = trusted_sample(state, size=8)
    assert sample.shape == (8,) and len(set(sample.tolist())) == 8
    assert all(state.region[i] == Region.TRUSTED and state.label_source[i] == LabelSource.AI
               and i not in (0, 1, 2, 3, 4, 20) for i in sample)
    assert all(fields[i]["rlthf_audit"] == "trusted sample" for i in trusted_sample(state))
    # The sample follows the task ids, not the positions: dropping other tasks keeps the sampled ones sampled.
    kept = np.setdiff1d(np.arange(60), [13, 14, 15, 16])
    smaller = _state()
    for name, arr in state.arrays().items():
        if arr.shape == (60,):
            setattr(smaller, name, arr[kept])
    smaller = ProjectState(**{**smaller.scalars(), **{k: getattr(smaller, k) for k in state.arrays()}})
    before = {int(state.task_ids[i]) for i in trusted_sample(state, size=8)} - {113, 114, 115, 116}
    after = {int(smaller.task_ids[i]) for i in trusted_sample(smaller, size=8)}
    assert before <= after


def test_merging_replaces_only_the_backends_fields():
    current = {"prompt": "p", "response_a": "a", "response_b": "b", "rlthf_priority": 3, "rlthf_reason": "old",
               "rlthf_audit": "flipped", "custom": [1, 2]}
    merged = merged_task_data(current, {"rlthf_priority": 0, "rlthf_reason": "new"})
    assert merged == {"prompt": "p", "response_a": "a", "response_b": "b", "custom": [1, 2], "rlthf_priority": 0,
                      "rlthf_reason": "new"}
    assert merged_task_data(merged, {"rlthf_priority": 0, "rlthf_reason": "new"}) is None  # no change, no PATCH


def test_every_column_a_tab_shows_or_hides_is_a_label_studio_column():
    views = view_definitions(["prompt", "response_a", "response_b", "pair_id", "prompt_messages"])
    for title, view in views.items():
        explore = view["hiddenColumns"]["explore"]
        assert len(explore) == len(set(explore)), title
        assert all(c.startswith("tasks:") for c in explore)
        assert "tasks:data.prompt" not in explore and "tasks:data.prompt_messages" in explore
