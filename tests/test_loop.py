"""The loop end to end on generated data: budgets, human precedence, shard, export, report."""

import json
import warnings

import numpy as np
import pytest

from rlthf_selector.config import BradleyTerryConfig, FeaturizerConfig, LoopConfig
from rlthf_selector.export import to_trl_records, write_trl
from rlthf_selector.features import make_featurizer
from rlthf_selector.loop import RLTHF, Annotator, GoldAnnotator, select_step, training_set
from rlthf_selector.pairs import LabelSource
from rlthf_selector.report import write_report
from rlthf_selector.reward_model import FeatureRewardModel
from rlthf_selector.selection import Region
from rlthf_selector.synthetic import make_synthetic_pairs


@pytest.fixture(scope="module")
def pairs():
    return make_synthetic_pairs(600, seed=3)


def model():
    return FeatureRewardModel(make_featurizer(FeaturizerConfig()), BradleyTerryConfig())


class RecordingAnnotator(GoldAnnotator):
    def __init__(self):
        self.asked = []

    def annotate(self, pairs, index):
        self.asked.append(pairs.ids[index].tolist())
        return super().annotate(pairs, index)


@pytest.fixture(autouse=True)
def quiet_curve_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def test_training_set_weights_humans_by_alpha_and_drops_untrusted_ai():
    ai = np.array([1, -1, 1, 1], np.int8)
    human = np.array([0, 1, 0, 0], np.int8)
    region = np.array([Region.TRUSTED, Region.HUMAN, Region.HELD, Region.FLIP], np.int8)
    labels, weights = training_set(ai, human, alpha=3.0, previous_region=region)
    np.testing.assert_array_equal(labels, [1, 1, 0, 0])
    np.testing.assert_array_equal(weights, [1.0, 3.0, 0.0, 0.0])
    labels, weights = training_set(ai, human, alpha=3.0)
    np.testing.assert_array_equal(labels, [1, 1, 1, 1])


def test_loop_spends_the_budget_and_never_asks_twice(pairs):
    annotator = RecordingAnnotator()
    config = LoopConfig(iterations=3, human_budget=0.06, out_of_fold=3)
    result = RLTHF(model(), loop_config=config).run(pairs, annotator)
    asked = [pid for batch in annotator.asked for pid in batch]
    assert len(asked) == len(set(asked)) == result.human_labels == 36
    assert all(len(batch) <= 12 for batch in annotator.asked)
    # Human answers are kept, with their source, in the final labels.
    human = result.pairs.human_label != 0
    assert np.all(result.labels[human] == pairs.gold_label[human])
    assert np.all(result.label_source[human] == LabelSource.HUMAN)
    assert len(result.records) == 4 and result.records[-1].human_asked == 0
    assert result.records[-1].pool_accuracy == pytest.approx(float((result.labels == pairs.gold_label).mean()))


def test_loop_never_overwrites_existing_human_labels(pairs):
    # A human answered some pairs before the loop started, against gold: that answer must stand.
    given = pairs.replace(human_label=np.where(np.arange(len(pairs)) < 30, -pairs.gold_label, 0))
    result = RLTHF(model(), loop_config=LoopConfig(iterations=2, human_budget=20, out_of_fold=0)).run(given, GoldAnnotator())
    np.testing.assert_array_equal(result.labels[:30], -pairs.gold_label[:30])
    assert result.human_labels == 50


def test_loop_on_a_shard_labels_the_whole_pool(pairs):
    annotator = RecordingAnnotator()
    config = LoopConfig(iterations=2, human_budget=0.04, shard_fraction=0.25, out_of_fold=0, seed=1)
    result = RLTHF(model(), loop_config=config).run(pairs, annotator)
    shard_ids = set(pairs.ids[result.shard])
    assert len(result.shard) == 150
    assert all(pid in shard_ids for batch in annotator.asked for pid in batch)
    assert result.labels.shape == (600,) and np.all(result.labels != 0)


def test_self_improvement_without_humans_asks_nobody(pairs):
    class Refuse(Annotator):
        def annotate(self, pairs, index):
            raise AssertionError("no human should be asked at budget 0")

    result = RLTHF(model(), loop_config=LoopConfig(iterations=2, human_budget=0.0, out_of_fold=0)).run(pairs, Refuse())
    assert result.human_labels == 0


def test_select_step_rejects_one_sided_labels(pairs):
    one_sided = pairs.replace(ai_label=np.ones(len(pairs), np.int8))
    with pytest.raises(ValueError, match="one preferred side"):
        select_step(one_sided, model(), iteration=0, budget=5)


def test_rlthf_beats_the_ai_judge_on_generated_data():
    data = make_synthetic_pairs(1500, seed=0)
    ai_acc = float((data.ai_label == data.gold_label).mean())
    result = RLTHF(model(), loop_config=LoopConfig(iterations=3, human_budget=0.06)).run(data, GoldAnnotator())
    final_acc = float((result.labels == data.gold_label).mean())
    # 90 human labels alone could lift accuracy by at most 90 * error / n; RLTHF must do better than
    # spending them at random, whose expected gain is budget * AI error.
    assert final_acc - ai_acc > 0.06 * (1 - ai_acc)


def test_export_and_report(tmp_path, pairs):
    result = RLTHF(model(), loop_config=LoopConfig(iterations=1, human_budget=10, out_of_fold=0)).run(pairs, GoldAnnotator())
    path = write_trl(result.pairs, result.labels, result.label_source, tmp_path / "trl.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == len(pairs)
    assert set(rows[0]) == {"id", "prompt", "chosen", "rejected", "label_source"}
    by_id = {r["id"]: r for r in rows}
    for i in np.flatnonzero(result.pairs.human_label != 0):
        row = by_id[pairs.ids[i]]
        assert row["label_source"] == "human"
        expected = pairs.response_a[i] if pairs.gold_label[i] > 0 else pairs.response_b[i]
        assert row["chosen"] == expected
    write_trl(result.pairs, result.labels, result.label_source, tmp_path / "trl.parquet")
    assert (tmp_path / "trl.parquet").stat().st_size > 0
    with pytest.raises(ValueError, match="unknown export format"):
        write_trl(result.pairs, result.labels, result.label_source, tmp_path / "trl.csv")
    report = write_report(result, tmp_path, ai_accuracy=0.8)
    assert "| final |" in report.read_text()
    # The default curve has no geometric flip region: the report says so rather than "gap -inf".
    assert "no reflection point (no geometric flips)" in report.read_text() and "-inf" not in report.read_text()
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_conversational_input_is_exported_as_conversations_with_the_final_label(tmp_path, trl_conversations):
    import pyarrow.parquet as pq

    from rlthf_selector.io import load_trl

    records = trl_conversations(12)
    pairs = load_trl(records, seed=5, labels_as="ai")[0]
    labels = pairs.ai_label.copy()
    labels[:4] = -labels[:4]  # flipped: chosen and rejected swap
    source = np.where(np.arange(len(pairs)) < 4, LabelSource.FLIPPED, LabelSource.AI).astype(np.int8)
    rows = to_trl_records(pairs, labels, source)
    for i, (row, record) in enumerate(zip(rows, records)):
        assert row["prompt"] == record["prompt"]
        right, wrong = record["chosen"], record["rejected"]
        assert (row["chosen"], row["rejected"]) == ((wrong, right) if i < 4 else (right, wrong))
        assert row["label_source"] == ("flipped" if i < 4 else "ai")
    # Both file formats keep the messages, and TRL's own loader reads them back as the same pairs.
    for name in ("trl.jsonl", "trl.parquet"):
        path = write_trl(pairs, labels, source, tmp_path / name)
        back, _ = load_trl(path, seed=5, labels_as="ai")
        assert [list(back.extra["prompt_messages"][i]) for i in range(len(back))] == [r["prompt"] for r in records]
    assert pq.read_table(tmp_path / "trl.parquet").column("chosen").to_pylist()[0] == rows[0]["chosen"]
    # The texts when asked for, or when some pairs came as plain text (TRL takes one format per data set).
    assert to_trl_records(pairs, labels, source, conversational=False)[0]["prompt"] == pairs.prompt[0]
    plain = pairs.replace(extra={k: v.copy() for k, v in pairs.extra.items()})
    plain.extra["prompt_messages"][3] = None
    assert isinstance(to_trl_records(plain, labels, source)[0]["prompt"], str)
    with pytest.raises(ValueError, match=r"1 of 12 pairs came as plain text \(first: 'trl-3'\)"):
        to_trl_records(plain, labels, source, conversational=True)
    # Message contents given as text in one row and as parts in another fit JSON lines but no one parquet schema.
    parts = pairs.replace(extra={k: v.copy() for k, v in pairs.extra.items()})
    parts.extra["prompt_messages"][0] = [{"role": "user", "content": [{"type": "text", "text": "Question 0?"}]}]
    with pytest.raises(ValueError, match=r"mixed.parquet: the records do not fit one parquet schema .* write .jsonl"):
        write_trl(parts, labels, source, tmp_path / "mixed.parquet")
    assert not list(tmp_path.glob("mixed.parquet*"))  # nothing half-written
    assert write_trl(parts, labels, source, tmp_path / "mixed.jsonl").stat().st_size > 0


def test_export_refuses_unlabelled_pairs(pairs):
    labels = pairs.ai_label.copy()
    labels[0] = 0
    with pytest.raises(ValueError, match="1 pairs have no label"):
        to_trl_records(pairs, labels, np.ones(len(pairs), np.int8))
    assert len(to_trl_records(pairs, labels, np.ones(len(pairs), np.int8), skip_unlabelled=True)) == len(pairs) - 1


def test_control_draws_give_live_estimates_in_the_result_and_the_report(tmp_path, pairs):
    config = LoopConfig(iterations=3, human_budget=60, out_of_fold=3, control_share=0.2)
    annotator = RecordingAnnotator()
    result = RLTHF(model(), loop_config=config).run(pairs, annotator)
    controls = [r.control_asked for r in result.records[:-1]]
    assert controls == [4, 4, 4]  # 0.2 of each batch of 20
    assert result.human_labels == 60  # control slots come out of the budget, not on top of it
    ai_accuracy = result.estimates["ai_accuracy"]
    assert ai_accuracy.n == 12 and ai_accuracy.lower <= ai_accuracy.value <= ai_accuracy.upper
    truth = float((pairs.ai_label == pairs.gold_label).mean())
    assert ai_accuracy.lower - 0.05 <= truth <= ai_accuracy.upper + 0.05
    # The queue asks the reward model's likeliest mistakes: humans overturn the AI there more than on control draws.
    assert result.estimates["queue_precision"].value > result.estimates["control_overturn"].value
    assert result.records[0].estimates["ai_accuracy"]["n"] == 4
    report = write_report(result, tmp_path).read_text()
    assert "## Live estimates" in report and "| AI accuracy |" in report
    assert all(w in report for w in result.warnings)


def test_without_control_draws_the_report_says_nothing_is_checked(tmp_path, pairs):
    config = LoopConfig(iterations=1, human_budget=10, out_of_fold=0, control_share=0.0)
    result = RLTHF(model(), loop_config=config).run(pairs, GoldAnnotator())
    assert result.estimates == {} and result.records[0].control_asked == 0
    assert "No control draws were answered" in write_report(result, tmp_path).read_text()


def test_part_sizes_split_a_batch_into_parts_of_at_least_the_check_size():
    from rlthf_selector.loop import part_sizes

    assert part_sizes(30, 10) == [10, 10, 10]
    assert part_sizes(37, 10) == [13, 12, 12]
    assert part_sizes(9, 10) == [9] and part_sizes(0, 10) == [0]
    assert part_sizes(37, 0) == [37]  # 0 = once per iteration
    with pytest.raises(ValueError, match="answers_per_check must be >= 0"):
        part_sizes(10, -1)


def test_each_part_of_a_batch_is_a_round_asked_after_the_mistake_model_refits_on_every_answer_before_it(pairs):
    config = LoopConfig(iterations=2, human_budget=60, out_of_fold=3, control_share=0.2, answers_per_check=10)
    recorder = RecordingAnnotator()
    result = RLTHF(model(), loop_config=config).run(pairs, recorder)
    draws, human = result.draws, result.pairs.human_label
    # Two iterations of 30 pairs, each asked in three parts of 10: six rounds, in order.
    assert [len(a) for a in recorder.asked] == [10] * 6
    assert sorted(set(draws.label_round[human != 0].tolist())) == list(range(6))
    assert [r.human_asked for r in result.records[:-1]] == [30, 30]
    # Each iteration's record holds the model refitted on every answer so far.
    assert [r.mistake_model["answers"] for r in result.records] == [30, 60, 60]
    # A round's scores come from the model refitted on the rounds before it: they change from round to round.
    score_of_round = [draws.mistake_score[draws.label_round == k] for k in range(6)]
    assert all(np.isfinite(s).all() and ((0 <= s) & (s <= 1)).all() for s in score_of_round)


def test_step_replan_refits_on_new_answers_and_never_queues_them(pairs):
    step = select_step(pairs, model(), iteration=0, budget=20, loop_config=LoopConfig(out_of_fold=3))
    assert step.mistakes.model.n_answers == 0 and step.human_queue.shape[0] == 20
    asked = step.human_queue[:10]
    answered = pairs.replace(human_label=pairs.human_label.copy())
    answered.human_label[asked] = pairs.gold_label[asked]
    step.replan(answered, budget=20)
    assert step.mistakes.model.n_answers == 10
    assert step.mistakes.model.n_mistakes == int((pairs.ai_label[asked] != pairs.gold_label[asked]).sum())
    assert not np.isin(step.human_queue, asked).any() and step.human_queue.shape[0] == 20
    assert (step.label_source[asked] == LabelSource.HUMAN).all()
    # The reward model, its gaps and the curve stay the step's.
    assert step.curve.n == len(pairs)


def test_report_names_a_geometric_reflection_point_with_its_gap():
    from rlthf_selector.config import CurveConfig
    from rlthf_selector.curve import analyze_curve
    from rlthf_selector.report import _reflection_text

    gap = np.concatenate([np.linspace(3, 1, 200), np.linspace(1, -1, 600), np.linspace(-1, -3, 200)])
    mirrored = analyze_curve(gap, config=CurveConfig(reflection="gap"))
    assert mirrored.reflection_index < mirrored.n
    assert _reflection_text(mirrored) == (f"reflection {mirrored.reflection_index} "
                                          f"(gap {mirrored.reflection_gap:.3f})")
    assert _reflection_text(analyze_curve(gap, config=CurveConfig(reflection="none"))) == \
        "no reflection point (no geometric flips)"
