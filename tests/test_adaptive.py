"""Self-checking selection (rlthf_selector.adaptive) on constructed data with known mistakes.

The constructed pools give each pair a reward gap in the AI label's orientation and a known chance that the AI is
wrong, so what each signal's rings hold is known in advance.
"""

from dataclasses import replace

import numpy as np
import pytest

from rlthf_selector.adaptive import (
    CONTROL,
    AdaptiveSelector,
    batch_sizes,
    rank_pool,
    run_adaptive,
    signal_scores,
    thompson_allocation,
)
from rlthf_selector.config import AdaptiveConfig
from rlthf_selector.estimates import Estimate, chance_warning
from rlthf_selector.evidence import judge_doubt
from rlthf_selector.loop import Annotator, GoldAnnotator
from rlthf_selector.pairs import LabelSource, PreferencePairs
from rlthf_selector.simulate import adaptive_estimates_with_truth

STATIC_ARMS = "control,rm-lowest-gap,rm-highest-gap,margin"


def make_pool(n: int, wrong_rate, *, seed: int = 0, extra=None):
    """``n`` pairs whose AI label is wrong with probability ``wrong_rate(oriented_gap)``.

    Returns the pairs (gold known, human empty) and the base reward gap r(A) - r(B).
    """
    rng = np.random.default_rng(seed)
    oriented = rng.normal(size=n)
    gold = rng.choice([-1, 1], size=n).astype(np.int8)
    wrong = rng.random(n) < wrong_rate(oriented)
    ai = np.where(wrong, -gold, gold).astype(np.int8)
    pairs = PreferencePairs(ids=[f"p{i}" for i in range(n)], prompt=["q"] * n, response_a=["a"] * n,
                            response_b=["b"] * n, ai_label=ai, gold_label=gold, extra=extra or {})
    return pairs, oriented * ai  # gap in A-B orientation: oriented gap * ai label


def inverted(g):
    """The RM's lowest gaps are where the AI is right; the smallest |gap| is where it is wrong most."""
    return np.where(g < -1.0, 0.02, np.where(np.abs(g) < 0.3, 0.6, 0.3))


def rich_low_tail(g):
    """RLTHF's assumption holds: the lowest gaps are mostly AI mistakes."""
    return np.where(g < -1.6, 0.95, 0.1)


def works(g):
    """A ranking that works everywhere: the lower the gap, the likelier the mistake."""
    return np.where(g < -1.0, 0.9, np.where(g < 0.0, 0.3, 0.02))


def flat(g):
    return np.full(g.shape, 0.3)


def config(**kw):
    return replace(AdaptiveConfig(), **{"arms": STATIC_ARMS, **kw})


class RecordingAnnotator(Annotator):
    """Answers with gold, skips the pairs in ``skip``, and records every position asked."""

    def __init__(self, skip=()):
        self.asked: list[int] = []
        self.skip = set(skip)

    def annotate(self, pairs, index):
        self.asked += [int(i) for i in index]
        return np.array([0 if int(i) in self.skip else pairs.gold_label[i] for i in index], dtype=np.int8)


# ----------------------------------------------------------------------------------------------
# Pieces
# ----------------------------------------------------------------------------------------------
def test_signal_scores_orientation():
    ai = np.array([1, -1, 1], np.int8)
    gap = np.array([2.0, 1.0, -0.5])  # oriented: 2, -1, -0.5
    s = signal_scores(ai, base_gap=gap, amplified_gap=-gap, doubt=np.array([0.1, 0.9, 0.5]))
    np.testing.assert_allclose(s["rm-lowest-gap"], [-2.0, 1.0, 0.5])
    np.testing.assert_allclose(s["rm-highest-gap"], [2.0, -1.0, -0.5])
    np.testing.assert_allclose(s["margin"], [-2.0, -1.0, -0.5])
    np.testing.assert_allclose(s["rm-amplified-lowest-gap"], [2.0, -1.0, -0.5])
    np.testing.assert_allclose(s["judge-doubt"], [0.1, 0.9, 0.5])
    # RLTHF's own queue: gap rank and doubt rank averaged; pair 1 (lowest gap, most doubt) first, pair 0 last.
    assert np.argsort(-s["rlthf-queue"]).tolist() == [1, 2, 0]
    assert "rlthf-queue" not in signal_scores(ai, base_gap=gap)


def test_rlthf_queue_arm_needs_judge_evidence():
    plain, base_gap = make_pool(400, lambda g: 0.5 / (1 + np.exp(3 * g)))
    with_doubt = plain.replace(extra={"second_judge_label": np.where(np.arange(400) % 3 == 0, -plain.ai_label,
                                                                          plain.ai_label).astype(np.int8)})
    config = AdaptiveConfig(arms="control,rlthf-queue,rm-lowest-gap", first_arm="rlthf-queue", seed=0)
    assert "rlthf-queue" in AdaptiveSelector(with_doubt, base_gap=base_gap, config=config).arms
    selector = AdaptiveSelector(plain, base_gap=base_gap, config=config)
    assert selector.arms == ["control", "rm-lowest-gap"]
    # Without evidence the queue RLTHF would ask is the gap alone: the first batch goes there.
    plan = selector.plan_batch(20)
    assert set(plan.mechanism) <= {"control", "rm-lowest-gap"} and "rm-lowest-gap" in plan.mechanism


def test_rank_pool_orders_descending_and_breaks_ties_at_random():
    r = rank_pool(np.array([0.1, 3.0, 2.0, 2.0]), rng=np.random.default_rng(0))
    assert sorted(r.tolist()) == [0, 1, 2, 3] and r[1] == 0 and r[0] == 3 and {r[2], r[3]} == {1, 2}
    firsts = {int(np.argmin(rank_pool(np.zeros(4), rng=np.random.default_rng(s)))) for s in range(40)}
    assert firsts == {0, 1, 2, 3}


def test_judge_doubt_from_evidence():
    pairs, _ = make_pool(4, flat, extra={
        "second_judge_label": np.array([1, -1, 0, 1], np.int8),
        "ai_confidence": np.array([0.9, np.nan, 0.5, 1.0]),
    })
    pairs = pairs.replace(ai_label=np.array([1, 1, 1, -1], np.int8))
    # second judge: agree 0, disagree 1, no verdict 0.5, disagree 1; 1 - confidence: 0.1, nan, 0.5, 0.
    np.testing.assert_allclose(judge_doubt(pairs), [0.05, 1.0, 0.5, 0.5])
    assert judge_doubt(make_pool(3, flat)[0]) is None


def test_thompson_allocation_follows_the_evidence_and_capacity():
    rng = np.random.default_rng(0)
    counts = thompson_allocation(np.array([0, 90, 10.0]), np.array([100, 10, 90.0]), 50, rng=rng)
    assert counts.tolist() == [0, 50, 0]
    capped = thompson_allocation(np.array([0, 90, 10.0]), np.array([100, 10, 90.0]), 50, rng=rng,
                                 capacity=np.array([50, 20, 50]))
    assert capped[1] == 20 and capped.sum() == 50
    # Without evidence, slots spread over every arm.
    spread = thompson_allocation(np.zeros(4), np.zeros(4), 400, rng=rng)
    assert (spread > 50).all()


def test_batch_sizes():
    assert batch_sizes(41, 5) == [9, 8, 8, 8, 8] or sum(batch_sizes(41, 5)) == 41
    assert sum(batch_sizes(41, 5)) == 41 and len(batch_sizes(41, 5)) == 5
    grown = batch_sizes(100, 4, growth=2.0)
    assert sum(grown) == 100 and grown == sorted(grown) and grown[0] < grown[-1]
    assert batch_sizes(3, 5) == [1, 1, 1] and batch_sizes(0, 5) == []


def test_bad_input_is_named():
    pairs, gap = make_pool(50, flat)
    with pytest.raises(ValueError, match="AI label on every pair"):
        AdaptiveSelector(pairs.replace(ai_label=np.zeros(50, np.int8)), base_gap=gap, config=config())
    with pytest.raises(ValueError, match="unknown arms"):
        AdaptiveSelector(pairs, base_gap=gap, config=config(arms="control,oracle"))
    with pytest.raises(ValueError, match="reward_model"):
        AdaptiveSelector(pairs, base_gap=gap, config=config(arms="control,rm-amplified-lowest-gap"))
    with pytest.raises(ValueError, match="control_share"):
        AdaptiveSelector(pairs, base_gap=gap, config=config(control_share=1.5))
    with pytest.raises(ValueError, match="base_gap"):
        AdaptiveSelector(pairs, base_gap=gap[:10], config=config())


# ----------------------------------------------------------------------------------------------
# The bandit moves the budget away from an inverted signal
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bandit_shifts_budget_away_from_an_inverted_ranking(seed):
    pairs, gap = make_pool(3000, inverted, seed=seed)
    selector = AdaptiveSelector(pairs, base_gap=gap, config=config(arms="control,rm-lowest-gap,margin", seed=seed,
                                                                   control_share=0.1, flip=False))
    annotator = GoldAnnotator()
    records = []
    for size in batch_sizes(360, 6):
        plan = selector.plan_batch(size)
        records.append(selector.record_answers(plan, annotator.annotate(pairs, plan.index)))
    late = records[3:]
    draws = {a: sum(r.arm_draws[a] for r in late) for a in ("control", "rm-lowest-gap", "margin")}
    total = sum(draws.values())
    assert (draws["control"] + draws["margin"]) / total > 0.8, draws
    assert draws["rm-lowest-gap"] / total < 0.1, draws
    # The live estimates do not show the ranking beating chance, and the report says so in words.
    result = selector.result()
    assert result.estimates["rm_auc"].lower < 0.5
    assert any("The reward model's ranking is" in w for w in result.warnings)


def test_bandit_keeps_a_working_ranking():
    pairs, gap = make_pool(2000, works, seed=4)
    selector = AdaptiveSelector(pairs, base_gap=gap, config=config(seed=4, flip=False, control_share=0.3))
    for size in batch_sizes(300, 5):
        plan = selector.plan_batch(size)
        selector.record_answers(plan, GoldAnnotator().annotate(pairs, plan.index))
    late = selector.records[2:]
    lowest = sum(r.arm_draws["rm-lowest-gap"] for r in late)
    assert lowest / sum(sum(r.arm_draws.values()) for r in late) > 0.5
    result = selector.result()
    assert result.estimates["rm_auc"].lower > 0.5
    assert not any("The reward model's ranking is" in w for w in result.warnings)


# ----------------------------------------------------------------------------------------------
# Control draws, human labels
# ----------------------------------------------------------------------------------------------
def test_control_draws_are_uniform_over_unlabeled_pairs():
    n = 40
    pairs, gap = make_pool(n, flat)
    human = np.zeros(n, np.int8)
    human[:20] = pairs.gold_label[:20]  # half the pool already has human labels
    pairs = pairs.replace(human_label=human)
    counts = np.zeros(n)
    for seed in range(600):
        selector = AdaptiveSelector(pairs, base_gap=gap, config=config(arms="control,margin", control_share=1.0,
                                                                       seed=seed))
        plan = selector.plan_batch(4)
        assert plan.mechanism == [CONTROL] * 4
        counts[plan.index] += 1
    assert counts[:20].sum() == 0  # labelled pairs are never drawn
    expected = 600 * 4 / 20
    chi2 = ((counts[20:] - expected) ** 2 / expected).sum()
    assert chi2 < 50  # 19 degrees of freedom: P(chi2 > 50) < 1e-4 under uniform draws
    # Draws concentrated on a few pairs would fail the same check.
    skewed = counts[20:].copy()
    skewed[:5] += 100
    assert ((skewed - skewed.mean()) ** 2 / skewed.mean()).sum() > 50


def test_control_share_in_mixed_batches():
    pairs, gap = make_pool(1000, flat)
    selector = AdaptiveSelector(pairs, base_gap=gap, config=config(control_share=0.25))
    for size in batch_sizes(200, 5):
        plan = selector.plan_batch(size)
        assert plan.control_slots in (size // 4, size // 4 + 1)
        assert len(set(plan.index.tolist())) == plan.index.size
        selector.record_answers(plan, GoldAnnotator().annotate(pairs, plan.index))
    assert abs(sum(p.control_slots for p in selector.plans) - 50) <= 3


def test_human_labels_never_overwritten_or_asked_twice():
    n = 500
    pairs, gap = make_pool(n, rich_low_tail, seed=5)
    human = np.zeros(n, np.int8)
    prelabelled = np.arange(0, n, 7)
    human[prelabelled] = -pairs.gold_label[prelabelled]  # deliberately different from gold: must be kept
    pairs = pairs.replace(human_label=human)
    annotator = RecordingAnnotator(skip=range(1, n, 11))
    result = run_adaptive(pairs, None, annotator, budget=150, base_gap=gap, config=config(seed=5))
    asked = annotator.asked
    assert len(asked) == len(set(asked)) == 150
    assert not set(asked) & set(prelabelled.tolist())
    np.testing.assert_array_equal(result.human_label[prelabelled], human[prelabelled])
    answered = [i for i in asked if i not in annotator.skip]
    np.testing.assert_array_equal(result.human_label[answered], pairs.gold_label[answered])
    skipped = [i for i in asked if i in annotator.skip]
    assert skipped and (result.human_label[skipped] == 0).all()
    # Human labels win in the export and are never flipped.
    has_human = result.human_label != 0
    assert (result.label_source[has_human] == LabelSource.HUMAN).all()
    assert not (result.flip.flip_mask & has_human).any()
    selector = AdaptiveSelector(pairs, base_gap=gap, config=config())
    plan = selector.plan_batch(10)
    selector.record_answers(plan, pairs.gold_label[plan.index])
    with pytest.raises(RuntimeError, match="once"):
        selector.record_answers(plan, pairs.gold_label[plan.index])


# ----------------------------------------------------------------------------------------------
# Flips only with evidence
# ----------------------------------------------------------------------------------------------
def test_no_flip_without_evidence():
    pairs, gap = make_pool(2000, flat, seed=6)  # no ring holds mostly mistakes
    for seed in range(3):
        result = run_adaptive(pairs, None, GoldAnnotator(), budget=200, base_gap=gap, config=config(seed=seed))
        assert not result.flip.flip_mask.any()
        assert all(c["lower"] <= 0.5 for c in result.flip.candidates)
    # A ring rich in mistakes is flipped once measured, but never on fewer answers than flip_min_evidence.
    rich, rich_gap = make_pool(2000, rich_low_tail, seed=7)
    few = run_adaptive(rich, None, GoldAnnotator(), budget=30, base_gap=rich_gap,
                       config=config(seed=0, flip_min_evidence=1000))
    assert not few.flip.flip_mask.any() and "human answers" in few.flip.reason
    off = run_adaptive(rich, None, GoldAnnotator(), budget=200, base_gap=rich_gap, config=config(seed=0, flip=False))
    assert not off.flip.flip_mask.any()


def test_flips_follow_the_evidence():
    pairs, gap = make_pool(2000, rich_low_tail, seed=8)
    result = run_adaptive(pairs, None, GoldAnnotator(), budget=200, base_gap=gap, config=config(seed=1))
    flipped = result.flip.flip_mask
    assert flipped.sum() >= 10
    wrong = pairs.ai_label != pairs.gold_label
    assert wrong[flipped].mean() > 0.8
    for c in result.flip.candidates:
        if c["flipped"]:
            assert c["lower"] > 0.5 and c["answers"] >= 10
    assert (result.label_source[flipped] == LabelSource.FLIPPED).all()
    np.testing.assert_array_equal(result.labels[flipped], -pairs.ai_label[flipped])
    est = result.estimates["flip_precision"]
    assert est.lower is not None and est.lower > 0.5


def _with_second_judge(pairs, disagree):
    second = np.where(disagree, -pairs.ai_label, pairs.ai_label).astype(np.int8)
    return pairs.replace(extra={"second_judge_label": second})


def test_rlthf_flips_arm_tests_rlthfs_evidence_flips_with_its_first_answers():
    arms = "control,rlthf-flips,rlthf-queue,rm-highest-gap"
    pairs, gap = make_pool(2000, works, seed=11)
    wrong = pairs.ai_label != pairs.gold_label
    # A second judge that catches most mistakes: RLTHF's flip candidates are mostly AI mistakes.
    rng = np.random.default_rng(0)
    good = _with_second_judge(pairs, wrong & (rng.random(2000) < 0.8) | (rng.random(2000) < 0.05))
    selector = AdaptiveSelector(good, base_gap=gap, config=config(seed=0, arms=arms, first_arm="rlthf-flips"))
    candidates = (gap * good.ai_label < 0) & (judge_doubt(good) >= 1.0)
    lo, hi = selector.ring_of("rlthf-flips")
    assert (lo, hi) == (0, int(candidates.sum()))  # its first ring is exactly the candidates
    plan = selector.plan_batch(40)
    targeted = plan.index[np.asarray(plan.mechanism) == "rlthf-flips"]
    assert targeted.size >= 30 and candidates[targeted].all()
    result = run_adaptive(good, None, GoldAnnotator(), budget=120, base_gap=gap,
                          config=config(seed=0, arms=arms, first_arm="rlthf-flips"))
    flipped = result.flip.flip_mask
    assert flipped.sum() >= 20 and wrong[flipped].mean() > 0.7
    # An inverted reward model and a second judge that disagrees at random: the candidates are mostly right
    # labels; their answers say so, and they are not flipped.
    bad, bad_gap = make_pool(2000, inverted, seed=12)
    noise = _with_second_judge(bad, np.random.default_rng(1).random(2000) < 0.3)
    candidates = (bad_gap * noise.ai_label < 0) & (judge_doubt(noise) >= 1.0)
    assert (noise.ai_label != noise.gold_label)[candidates].mean() < 0.4
    result = run_adaptive(noise, None, GoldAnnotator(), budget=120, base_gap=bad_gap,
                          config=config(seed=0, arms=arms, first_arm="rlthf-flips"))
    assert not any(c["flipped"] for c in result.flip.candidates if c["arm"] == "rlthf-flips")
    assert result.draws["mechanism"].tolist().count("rlthf-flips") >= 10  # it was asked, and answered no


def test_a_ring_is_drawn_only_by_its_arm_while_it_holds_it():
    # Overlapping rings: another arm taking the likeliest mistakes out of a ring would leave its remaining pairs
    # poorer than the uniform answers that decide whether to flip them.
    pairs, gap = make_pool(1000, works, seed=13)
    selector = AdaptiveSelector(pairs, base_gap=gap, config=config(seed=0, arms="control,rm-lowest-gap,margin"))
    for size in (60, 60, 60):
        plan = selector.plan_batch(size)
        mechanism = np.asarray(plan.mechanism)
        for arm in ("rm-lowest-gap", "margin"):
            drawn = plan.index[mechanism == arm]
            assert selector.held_by(arm)[drawn].all()  # every draw of an arm is from pairs it holds
        selector.record_answers(plan, pairs.gold_label[plan.index])
    held = [selector.held_by(a) for a in ("rm-lowest-gap", "margin")]
    assert held[0].any() and held[1].any() and not (held[0] & held[1]).any()
    # Flip targets are the holder's pairs only.
    for c in selector.flip_decision().candidates:
        assert c["flippable"] <= int(selector.held_by(c["arm"]).sum())


# ----------------------------------------------------------------------------------------------
# Estimates
# ----------------------------------------------------------------------------------------------
def test_estimates_cover_the_truth():
    pairs, gap = make_pool(1500, inverted, seed=9)
    covered = {"ai_accuracy": [], "pool_accuracy": []}
    for seed in range(12):
        result = run_adaptive(pairs, None, GoldAnnotator(), budget=150, base_gap=gap,
                              config=config(seed=seed, control_share=0.2))
        table = adaptive_estimates_with_truth(result, pairs)
        for name in covered:
            covered[name].append(table[name]["covered"])
        assert table["queue_precision"]["value"] == pytest.approx(table["queue_precision"]["truth"])
        assert table["pool_accuracy"]["truth"] == pytest.approx(float((result.labels == pairs.gold_label).mean()))
    assert np.mean(covered["ai_accuracy"]) >= 0.8
    assert np.mean(covered["pool_accuracy"]) >= 0.75


def test_chance_warning_words():
    assert chance_warning(Estimate(0.7, 0.6, 0.8, 40, 0.9, "x")) is None
    assert "Too few random human answers" in chance_warning(Estimate(0.9, 0.0, 1.0, 6, 0.9, "x"))
    unsure = chance_warning(Estimate(0.6, 0.45, 0.75, 20, 0.9, "x"))
    assert "no better than chance" in unsure and "20" in unsure
    assert "below chance" in chance_warning(Estimate(0.3, 0.2, 0.4, 50, 0.9, "x"))
    assert chance_warning(Estimate.empty(confidence=0.9, method="x")) is None


def test_amplified_arms_with_a_feature_reward_model():
    from rlthf_selector.config import BradleyTerryConfig, FeaturizerConfig
    from rlthf_selector.features import make_featurizer
    from rlthf_selector.reward_model import FeatureRewardModel
    from rlthf_selector.synthetic import make_synthetic_pairs

    pairs = make_synthetic_pairs(300, seed=0)
    model = FeatureRewardModel(make_featurizer(FeaturizerConfig(n_features=16, progress=False)), BradleyTerryConfig())
    result = run_adaptive(pairs, model, GoldAnnotator(), budget=40,
                          config=replace(AdaptiveConfig(), seed=0, base_folds=2, flip_min_evidence=5))
    assert result.human_labels == 40
    assert set(result.draws["mechanism"].tolist()) <= {"control", "rm-lowest-gap", "rm-highest-gap", "margin",
                                                       "rm-amplified-lowest-gap", "rm-amplified-highest-gap"}
    assert len(result.batches) == 5 and all(b.asked == 8 for b in result.batches)


def test_simulate_reports_estimates_beside_the_truth(tmp_path):
    import json

    from rlthf_selector.config import BradleyTerryConfig, CurveConfig, FeaturizerConfig, LoopConfig, SelectionConfig
    from rlthf_selector.report import estimates_markdown
    from rlthf_selector.simulate import RESULT_FIELDS, Simulation, SimulationData, heldout_split, write_outputs
    from rlthf_selector.synthetic import make_synthetic_pairs

    data = SimulationData(make_synthetic_pairs(400, seed=1), "synthetic", "simulated: built-in biased judge")
    sim = Simulation(data, featurizer_config=FeaturizerConfig(n_features=16, progress=False),
                     rm_config=BradleyTerryConfig(), loop_config=LoopConfig(out_of_fold=2), curve_config=CurveConfig(),
                     selection_config=SelectionConfig(), adaptive_config=replace(AdaptiveConfig(), base_folds=2))
    output = sim.run(["ai-only", "rlthf", "rlthf-adaptive"], [0.1], [0], log=lambda _: None)
    assert all(set(r) == set(RESULT_FIELDS) for r in output["results"])
    plain, record = output["estimates"]
    assert (record["strategy"], record["budget"], record["seed"]) == ("rlthf-adaptive", 0.1, 0)
    # Plain RLTHF's batches carry control draws too: its estimates are reported beside the truth.
    assert plain["strategy"] == "rlthf" and plain["estimates"]["ai_accuracy"]["truth"] == pytest.approx(
        float((data.pairs.ai_label == data.pairs.gold_label)[heldout_split(400, fraction=0.2, seed=0)[0]].mean()))
    rlthf_row = next(r for r in output["results"] if r["strategy"] == "rlthf")
    assert plain["estimates"]["pool_accuracy"]["truth"] == pytest.approx(rlthf_row["label_accuracy"])
    for name in ("ai_accuracy", "queue_precision", "control_overturn", "rm_auc", "pool_accuracy"):
        est = record["estimates"][name]
        assert {"value", "lower", "upper", "n", "confidence", "truth", "covered"} <= set(est)
    adaptive = next(r for r in output["results"] if r["strategy"] == "rlthf-adaptive")
    assert record["estimates"]["pool_accuracy"]["truth"] == pytest.approx(adaptive["label_accuracy"])
    assert adaptive["human_labels"] == 32
    paths = write_outputs(output, json_path=tmp_path / "sim.json", out_dir=tmp_path, command="test")
    assert "estimates" in json.loads(paths["json"].read_text())
    md = paths["markdown"].read_text()
    assert "Live estimates [90% interval] beside the truth" in md
    assert "Truth inside the interval, `rlthf`:" in md and "Truth inside the interval, `rlthf-adaptive`:" in md
    assert estimates_markdown([]) == ""


def test_live_estimates_markdown_shows_values_truth_and_warnings():
    from rlthf_selector.report import live_estimates_markdown

    pairs, gap = make_pool(1500, inverted, seed=11)
    result = run_adaptive(pairs, None, GoldAnnotator(), budget=200, base_gap=gap,
                          config=config(seed=0, control_share=0.3))
    truth = {k: v["truth"] for k, v in adaptive_estimates_with_truth(result, pairs).items()}
    md = live_estimates_markdown(result.estimates, warnings=result.warnings, truth=truth)
    assert "| AI accuracy |" in md and "90% interval" in md and f"{truth['ai_accuracy']:.3f}" in md
    assert "**Warning:** The reward model's ranking is" in md
