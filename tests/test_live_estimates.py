"""Known answers and coverage for rlthf_selector.estimates.live_estimates (the backend's /metrics estimates)."""

import numpy as np
import pytest

from rlthf_selector.estimates import CONTROL_DRAW, NOT_DRAWN, QUEUE_DRAW, live_estimates


class Pool:
    """A pool of ``n`` pairs with every draw record empty; tests fill in the answers they need."""

    def __init__(self, n: int, ai: int = 1):
        self.ai_label = np.full(n, ai, dtype=np.int8)
        self.human_label = np.zeros(n, dtype=np.int8)
        self.drawn_by = np.zeros(n, dtype=np.int8)
        self.draw_round = np.full(n, -1, dtype=np.int64)
        self.label_round = np.full(n, -1, dtype=np.int64)
        self.frame = np.zeros(n, dtype=np.int64)
        self.mistake_score = np.full(n, np.nan)

    def answer(self, index, human, *, drawn_by=NOT_DRAWN, draw_round=1, label_round=None, score=0.0):
        index = np.atleast_1d(index)
        unlabeled = int((self.human_label == 0).sum())
        self.human_label[index] = human
        self.label_round[index] = draw_round if label_round is None else label_round
        if drawn_by != NOT_DRAWN:
            self.drawn_by[index] = drawn_by
            self.draw_round[index] = draw_round
            self.frame[index] = unlabeled
            self.mistake_score[index] = score

    def estimates(self, **kw):
        return live_estimates(ai_label=self.ai_label, human_label=self.human_label, drawn_by=self.drawn_by,
                              draw_round=self.draw_round, label_round=self.label_round, frame=self.frame,
                              mistake_score=self.mistake_score, **kw)


def test_no_answers_gives_empty_estimates():
    est = Pool(50).estimates()
    assert set(est) == {"ai_accuracy", "control_overturn", "queue_precision", "queue_minus_control", "mistake_auc",
                        "pool_accuracy"}
    assert all(e.value is None for e in est.values())
    assert est["ai_accuracy"].n == 0


def test_control_answers_that_all_agree_give_ai_accuracy_near_one_with_an_interval():
    pool = Pool(1000)
    pool.answer(np.arange(60), 1, drawn_by=CONTROL_DRAW)  # 60 uniform draws, the AI right on each
    est = pool.estimates(confidence=0.9)
    acc = est["ai_accuracy"]
    assert acc.value == pytest.approx(1.0) and acc.upper == pytest.approx(1.0)
    # Clopper-Pearson: 0.05 ** (1 / 60) = 0.951 is the 95% lower bound of a proportion with 60 of 60.
    assert acc.lower == pytest.approx(0.05 ** (1 / 60), abs=1e-9)
    assert acc.n == 60
    assert est["control_overturn"].value == 0.0
    assert est["pool_accuracy"].value == pytest.approx(1.0)


def test_pairs_labelled_before_a_draw_are_counted_exactly():
    # 10 pairs: 4 labelled in round 0 (2 agree with the AI, 2 overturn it), then one control draw in round 1 from
    # the 6 unlabeled, where the AI is right. Each answer estimates 2 + 6 * 1 = 8 right AI labels.
    pool = Pool(10)
    pool.answer([0, 1], 1, label_round=0)
    pool.answer([2, 3], -1, label_round=0)
    pool.answer(4, 1, drawn_by=CONTROL_DRAW, draw_round=1)
    est = pool.estimates()
    assert est["ai_accuracy"].value == pytest.approx(0.8)
    assert pool.frame[4] == 6
    # The exported pool: 5 human labels right, the 5 unlabeled AI labels right by the draw: 6 - 1 labelled since.
    assert est["pool_accuracy"].value == pytest.approx(1.0)
    # Labels outside any draw count in neither group.
    assert est["control_overturn"].n == 1 and est["queue_precision"].n == 0


def test_a_queue_that_overturns_more_than_the_control_shows_a_positive_difference():
    pool = Pool(2000)
    pool.answer(np.arange(0, 30), -1, drawn_by=QUEUE_DRAW)   # 30 of 50 queued pairs overturned
    pool.answer(np.arange(30, 50), 1, drawn_by=QUEUE_DRAW)
    pool.answer(np.arange(100, 105), -1, drawn_by=CONTROL_DRAW)  # 5 of 50 control pairs overturned
    pool.answer(np.arange(105, 150), 1, drawn_by=CONTROL_DRAW)
    est = pool.estimates()
    assert est["queue_precision"].value == pytest.approx(0.6)
    assert est["control_overturn"].value == pytest.approx(0.1)
    diff = est["queue_minus_control"]
    assert diff.value == pytest.approx(0.5) and diff.lower > 0 and diff.n == 100
    # The AI's accuracy rests on the control only: the queue's overturns do not drag it down.
    assert est["ai_accuracy"].n == 50


def test_rm_auc_from_the_mistake_score_at_draw_time_on_control_answers_only():
    pool = Pool(500)
    # 20 control mistakes with high scores, 30 right ones with low scores: a perfect ranking.
    pool.answer(np.arange(20), -1, drawn_by=CONTROL_DRAW, score=2.0)
    pool.answer(np.arange(20, 50), 1, drawn_by=CONTROL_DRAW, score=-1.0)
    # Queue answers with the opposite ranking must not count.
    pool.answer(np.arange(50, 80), -1, drawn_by=QUEUE_DRAW, score=-5.0)
    auc = pool.estimates()["mistake_auc"]
    assert auc.value == pytest.approx(1.0) and auc.lower > 0.5 and auc.n == 50 and auc.method == "hanley-mcneil"


def test_flipped_pairs_are_counted_as_unverified_in_the_pool_accuracy():
    pool = Pool(100)
    pool.answer(np.arange(40), 1, label_round=0)
    pool.answer(np.arange(40, 60), 1, drawn_by=CONTROL_DRAW, draw_round=1)  # 20 of 20 control draws: AI right
    plain = pool.estimates()["pool_accuracy"]
    flipped = pool.estimates(n_flipped=10)["pool_accuracy"]
    # The control says the 40 unlabeled AI labels are right; flipping 10 of them makes those wrong at that rate.
    assert plain.value == pytest.approx(1.0)
    assert flipped.value == pytest.approx(0.9)
    # Lower limit: every flip wrong (10 pairs fewer right); upper limit: every flip right.
    assert flipped.lower == pytest.approx(plain.lower - 0.1)
    assert flipped.upper == pytest.approx(1.0)
    assert "10 flips unverified" in flipped.method


def test_every_pair_labelled_gives_a_pool_accuracy_of_one():
    pool = Pool(5)
    pool.answer(np.arange(5), -1, label_round=0)
    est = pool.estimates()
    assert est["pool_accuracy"].value == 1.0 and est["ai_accuracy"].value is None


@pytest.mark.parametrize("change, message", [
    (lambda p: p.ai_label.__setitem__(3, 0), r"ai_label\[3\] = 0"),
    (lambda p: setattr(p, "frame", p.frame[:-1]), r"frame must have shape \(20,\)"),
    (lambda p: p.drawn_by.__setitem__(1, 7), "drawn_by must be 0"),
    (lambda p: p.label_round.__setitem__(0, 0), "answer came before its draw"),
    (lambda p: p.frame.__setitem__(0, 0), "frame < 1"),
    (lambda p: p.mistake_score.__setitem__(0, np.nan), "no finite mistake_score"),
])
def test_bad_inputs_are_named(change, message):
    pool = Pool(20)
    pool.answer(0, 1, drawn_by=CONTROL_DRAW, draw_round=2)
    change(pool)
    with pytest.raises(ValueError, match=message):
        pool.estimates()


def test_bad_options_are_named():
    pool = Pool(20)
    with pytest.raises(ValueError, match="n_flipped"):
        pool.estimates(n_flipped=21)
    with pytest.raises(ValueError, match="confidence"):
        pool.estimates(confidence=1.5)
    with pytest.raises(ValueError, match="interval method"):
        pool.estimates(method="normal")


def simulate_rounds(rng: np.random.Generator, *, n=2000, accuracy=0.75, rounds=4, queue=40, control=8) -> tuple[Pool, float, float]:
    """One run of a labelling project: each round a targeted queue (three times as likely to hold an AI mistake)
    and a uniform control sample, all answered within the round. Returns the pool, the true AI accuracy and the
    true accuracy of the exported pool."""
    pool = Pool(n)
    gold = np.where(rng.random(n) < accuracy, 1, -1).astype(np.int8)
    score = (gold != 1) + rng.normal(0.0, 1.0, n)
    for r in range(1, rounds + 1):
        unlabeled = np.flatnonzero(pool.human_label == 0)
        frame = unlabeled.size
        picked = rng.choice(unlabeled, size=control, replace=False)
        rest = np.setdiff1d(unlabeled, picked)
        weight = np.where(gold[rest] != 1, 3.0, 1.0)
        queued = rng.choice(rest, size=queue, replace=False, p=weight / weight.sum())
        for idx, group in ((picked, CONTROL_DRAW), (queued, QUEUE_DRAW)):
            pool.human_label[idx] = gold[idx]
            pool.drawn_by[idx] = group
            pool.draw_round[idx] = r
            pool.label_round[idx] = r
            pool.frame[idx] = frame
            pool.mistake_score[idx] = score[idx]
    labelled = pool.human_label != 0
    pool_truth = float((labelled | (gold == 1)).mean())
    return pool, float((gold == 1).mean()), pool_truth


def test_the_90_percent_intervals_cover_the_truth_in_at_least_85_percent_of_runs():
    rng = np.random.default_rng(20250)
    covered_ai = covered_pool = 0
    runs = 200
    for _ in range(runs):
        pool, ai_truth, pool_truth = simulate_rounds(rng)
        est = pool.estimates(confidence=0.9)
        covered_ai += bool(est["ai_accuracy"].contains(ai_truth))
        covered_pool += bool(est["pool_accuracy"].contains(pool_truth))
        assert est["queue_minus_control"].value is not None
    assert covered_ai / runs >= 0.85, covered_ai
    assert covered_pool / runs >= 0.85, covered_pool
