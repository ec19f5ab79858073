"""Known answers for reading Label Studio tasks as pairs and settling their labels (rlthf_selector.label_studio_tasks)."""

from types import SimpleNamespace

import numpy as np
import pytest

from label_config import load_label_config, parse_label_config
from rlthf_selector.label_studio_tasks import (
    MAX_WARNINGS,
    build_task_table,
    human_label_of,
    order_shown,
    prediction_labels,
    saw_prelabel,
    task_labels,
    task_records,
    warn,
)
from rlthf_selector.pairs import LabelSource, PreferencePairs

PAIRWISE = load_label_config("pairwise")
CONTROL = parse_label_config(PAIRWISE)
A, B = CONTROL.result(1), CONTROL.result(-1)


def ann(aid, result, **kw):
    return {"id": aid, "result": result, **kw}


def task(tid, *, ai="a", annotations=(), predictions=(), **data):
    return {"id": tid, "data": {"prompt": f"p{tid}", "response_a": f"a{tid}", "response_b": f"b{tid}",
                                **({"ai_label": ai} if ai else {}), **data},
            "annotations": list(annotations), "predictions": list(predictions)}


@pytest.mark.parametrize("annotations, expected", [
    ([], 0),
    ([ann(1, A, was_cancelled=True)], 0),                                       # skipped
    ([ann(1, [])], 0),                                                          # empty
    ([ann(1, A), ann(2, B), ann(3, B)], -1),                                    # majority
    ([ann(1, A), ann(2, B), ann(3, B, was_cancelled=True)], -1),                # tie: the latest (higher id)
    ([ann(1, A, updated_at="2026-01-02"), ann(2, B, updated_at="2026-01-01")], 1),  # tie: the latest by time
    ([ann(1, B), ann(2, B), ann(3, A, ground_truth=True)], 1),                  # ground truth beats a majority
])
def test_human_label_of_several_annotators(annotations, expected):
    assert human_label_of(task(1, annotations=annotations), CONTROL, []) == expected


def test_human_label_of_names_an_annotation_without_a_preference():
    warnings = []
    bad = [dict(A[0], value={"selected": "middle"})]
    assert human_label_of(task(5, annotations=[ann(9, bad), ann(10, B)]), CONTROL, warnings) == -1
    assert len(warnings) == 1 and warnings[0].startswith("task 5: annotation 9 ignored")


def test_warnings_are_capped():
    warnings = []
    for i in range(MAX_WARNINGS + 5):
        warn(warnings, f"w{i}")
    assert len(warnings) == MAX_WARNINGS + 1 and warnings[-1] == "(more warnings left out)"


def test_build_task_table_sorts_by_task_id_and_counts_what_it_leaves_out():
    tasks = [task(3, ai="b", pair_id="x3", judge_doubt=0.25), task(1, ai=None, annotations=[ann(1, B)]),
             {"id": 2, "data": {"prompt": "only a prompt"}}]
    table = build_task_table(tasks, CONTROL)
    assert table.task_ids.tolist() == [1, 3] and table.pairs.ids.tolist() == ["1", "3"]
    assert table.pair_ids.tolist() == ["1", "x3"]
    assert table.pairs.ai_label.tolist() == [0, -1] and table.pairs.human_label.tolist() == [-1, 0]
    assert table.n_skipped_tasks == 1 and table.warnings[0].startswith("task 2 left out")
    assert np.isnan(table.pairs.extra["judge_doubt"][0]) and table.pairs.extra["judge_doubt"][1] == 0.25
    assert [len(a) for a in table.annotations] == [1, 0] and table.data[1]["pair_id"] == "x3"


def test_prediction_labels_read_the_latest_prediction_of_the_current_version():
    tasks = [
        task(1, predictions=[{"result": A, "model_version": "v2"}, {"result": B, "model_version": "v2"}]),
        task(2, predictions=[{"result": A, "model_version": "v1"}]),   # an older version: not read
        task(3, predictions=[{"result": [], "model_version": "v2"}]),  # a blind prediction: no label
        task(4),
    ]
    assert prediction_labels(build_task_table(tasks, CONTROL), CONTROL, model_version="v2").tolist() == [-1, 0, 0, 0]


def test_task_labels_precedence_human_over_flip_over_ai_over_the_reward_model():
    current = lambda label: [{"result": CONTROL.result(label), "model_version": "v"}]  # noqa: E731
    tasks = [
        task(1, ai="a", annotations=[ann(11, B)], predictions=current(1)),       # human, even against the backend
        task(2, ai="a", annotations=[ann(21, B)], predictions=current(-1)),      # human, agreeing with a flip
        task(3, ai="a", predictions=current(-1)),                                # flipped
        task(4, ai="a", predictions=current(1)),                                 # AI, confirmed
        task(5, ai=None, predictions=current(-1)),                               # the reward model's
        task(6, ai="b"),                                                         # AI prelabel only
        task(7, ai="a", annotations=[ann(71, B, was_cancelled=True)]),           # skipped: AI
        task(8, ai=None),                                                        # nothing: left out
    ]
    got = task_labels(tasks, label_config=PAIRWISE, model_version="v")
    assert got.pairs.ids.tolist() == ["1", "2", "3", "4", "5", "6", "7"]
    assert got.labels.tolist() == [-1, -1, -1, 1, -1, -1, 1]
    assert got.label_source.tolist() == [LabelSource.HUMAN, LabelSource.HUMAN, LabelSource.FLIPPED, LabelSource.AI,
                                         LabelSource.RM, LabelSource.AI, LabelSource.AI]
    assert dict(got.skipped) == {"no label (no annotation, prediction or AI label)": 1}
    assert [(r["task_id"], r["label"], r["annotation_ids"]) for r in got.human_labels] == [(1, "b", [11]), (2, "b", [21])]


def test_task_labels_record_blind_labels_and_the_order_shown():
    shown = {"id": 5, "result": A, "model_version": "v"}
    tasks = [task(1, annotations=[ann(11, B, parent_prediction=5)], predictions=[shown]),
             task(2, annotations=[ann(21, B)], predictions=[])]
    got = task_labels(tasks, label_config=PAIRWISE, model_version="v")
    assert [(r["task_id"], r["blind"], r["order_shown"]) for r in got.human_labels] == [(1, False, ["a", "b"]),
                                                                                         (2, True, ["a", "b"])]


def test_saw_prelabel_and_order_shown():
    labelled, blank = {"id": 1, "result": A}, {"id": 2, "result": []}
    assert not saw_prelabel({"result": B}, [])
    assert saw_prelabel({"result": B, "parent_prediction": 1}, [labelled, blank])
    assert not saw_prelabel({"result": B, "parent_prediction": 2}, [labelled, blank])
    assert saw_prelabel({"result": B, "parent_prediction": 3}, [])  # a deleted prediction: counted as seen
    assert saw_prelabel({"result": [dict(B[0], origin="prediction-changed")]}, [])
    assert order_shown(SimpleNamespace(data_fields=["prompt", "response_b", "response_a"])) == ["b", "a"]
    assert order_shown(SimpleNamespace(data_fields=["prompt"])) == ["a", "b"]


def test_pairs_travel_to_tasks_and_back():
    pairs = PreferencePairs(ids=["x", "y"], prompt=["p", "q"], response_a=["a1", "a2"], response_b=["b1", "b2"],
                            ai_label=[1, 0], extra={"judge_doubt": np.array([0.5, np.nan])})
    records = task_records(pairs, control=CONTROL, model_version="rlthf-0")
    assert records[0]["data"] == {"prompt": "p", "response_a": "a1", "response_b": "b1", "pair_id": "x",
                                  "judge_doubt": 0.5, "ai_label": "a"}
    assert records[0]["predictions"] == [{"result": A, "score": 0.5, "model_version": "rlthf-0"}]
    assert "predictions" not in records[1] and "ai_label" not in records[1]["data"]
    table = build_task_table([dict(r, id=10 + k) for k, r in enumerate(records)], CONTROL)
    assert table.pair_ids.tolist() == ["x", "y"] and table.pairs.ai_label.tolist() == [1, 0]
    assert table.pairs.response_b.tolist() == ["b1", "b2"] and table.pairs.extra["judge_doubt"][0] == 0.5
