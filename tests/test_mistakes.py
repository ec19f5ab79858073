"""The signals and the mistake model: their design matrix, the Bayesian logistic fit, its prior and what it says."""

import numpy as np
import pytest
from scipy.stats import norm

from rlthf_selector.config import SelectionConfig
from rlthf_selector.mistakes import (
    PRIOR_SD_GRID,
    design_matrix,
    estimate_mistakes,
    fit_logistic_map,
    fit_mistake_model,
)
from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.signals import (
    SIGNALS,
    Signal,
    SignalContext,
    compute_signals,
    other_verdicts_against,
    register_signal,
)


def make_pairs(n=6, *, extra=None, human=None):
    return PreferencePairs(
        ids=np.array([f"p{i}" for i in range(n)], dtype=object),
        prompt=np.array([f"q{i}" for i in range(n)], dtype=object),  # a pair per prompt, as in HH-RLHF
        response_a=np.array(["a" * (10 * (i + 1)) for i in range(n)], dtype=object),
        response_b=np.array(["b" * 30] * n, dtype=object),
        ai_label=np.array([1, -1] * (n // 2), np.int8),
        human_label=np.zeros(n, np.int8) if human is None else np.asarray(human, np.int8),
        extra=extra or {},
    )


def test_signals_are_oriented_so_that_larger_means_more_suspect():
    pairs = make_pairs()
    gap = np.array([2.0, -1.0, 0.5, 0.0, -3.0, 1.0])
    signals = {s.name: s for s in compute_signals(SignalContext(pairs, gap))}
    # Without judge evidence only the reward model's and the length signals exist.
    assert list(signals) == ["rm_contradicts", "rm_agrees_weakly", "ai_chose_shorter"]
    np.testing.assert_allclose(signals["rm_contradicts"].values, -gap)
    # Zero wherever the reward model contradicts the AI: only its agreement's strength is a column of its own.
    np.testing.assert_allclose(signals["rm_agrees_weakly"].values, [-2.0, 0.0, -0.5, 0.0, 0.0, -1.0])
    # A has 10, 20, ... 60 characters, B 30; the AI chooses A, B, A, B, A, B. It chose the shorter response on
    # pairs 0, 3 and 5, the longer on 1 and 4, and pair 2's are of equal length.
    shorter = signals["ai_chose_shorter"].values
    np.testing.assert_array_equal(np.sign(shorter), [1, -1, 0, 1, -1, 1])
    assert shorter[0] == pytest.approx(np.log(31 / 11))
    assert all(s.description for s in signals.values())


def test_other_verdicts_on_a_prompt_that_rank_the_rejected_response_higher_mark_the_ai_label():
    # Prompt q compares x, y and z; the AI says x > y, y > z and z > x (a cycle), and x > w, where w appears once.
    # Prompt r has a single pair.
    pairs = PreferencePairs(
        ids=["xy", "yz", "zx", "xw", "r"], prompt=["q", "q", "q", "q", "r"],
        response_a=["x", "y", "z", "x", "u"], response_b=["y", "z", "x", "w", "v"], ai_label=[1, 1, 1, 1, -1],
    )
    # xy: the other pairs give y +1 (over z), x +1 - 1 (over w, under z): rejected y 1 - chosen x 0 = 1.
    # yz: z +1 (over x), y -1 (under x): 2. zx: x +2 (over y and w), z -1 (under y): 3.
    # xw: w is compared nowhere else, x is: w 0 - x (+1 - 1) = 0. r: nothing else on its prompt.
    np.testing.assert_array_equal(other_verdicts_against(pairs), [1, 2, 3, 0, np.nan])
    # A human answer replaces the AI's verdict for the siblings: the human's z > y leaves y (-1) below x (0), so xy
    # turns to -1, and z one win short of x (1 against 2), so zx turns to 1. yz's own answer does not count for it.
    answered = pairs.replace(human_label=np.array([0, -1, 0, 0, 0], np.int8))
    np.testing.assert_array_equal(other_verdicts_against(answered), [-1, 2, 1, 0, np.nan])
    # A pair of two identical responses ranks nothing: it gets no value and moves no other pair's.
    same = PreferencePairs(ids=["xy", "yz", "zx", "xw", "r", "yy"], prompt=["q", "q", "q", "q", "r", "q"],
                           response_a=["x", "y", "z", "x", "u", "y"], response_b=["y", "z", "x", "w", "v", "y"],
                           ai_label=[1, 1, 1, 1, -1, 1])
    np.testing.assert_array_equal(other_verdicts_against(same), [1, 2, 3, 0, np.nan, np.nan])
    # Pairs without an AI label get no value; a pool of one pair per prompt has no such signal at all.
    unlabelled = pairs.replace(ai_label=np.array([0, 1, 1, 1, -1], np.int8))
    assert np.isnan(other_verdicts_against(unlabelled)[0])
    names = [s.name for s in compute_signals(SignalContext(pairs, np.zeros(5)))]
    assert "other_verdicts_disagree" in names
    assert "other_verdicts_disagree" not in [s.name for s in compute_signals(SignalContext(make_pairs(), np.zeros(6)))]


def test_judge_evidence_signals_appear_with_their_evidence_and_missing_values_get_a_column():
    second = np.array([1, 1, -1, 0, 1, 0], np.int8)  # pairs 3 and 5: no verdict
    pairs = make_pairs(extra={"second_judge_label": second})
    signals = compute_signals(SignalContext(pairs, np.zeros(6)))
    judge = next(s for s in signals if s.name == "second_judge_disagrees")
    # AI labels alternate +1/-1: the second judge disagrees on pairs 1 and 2, agrees on 0 and 4.
    np.testing.assert_allclose(judge.values[[0, 1, 2, 4]], [0, 1, 1, 0])
    np.testing.assert_allclose(judge.values[[3, 5]], 0.5)  # no verdict: half a doubt (rlthf_selector.evidence)
    design = design_matrix(signals, scope=np.ones(6, bool))
    # Constant signals over the scope carry nothing and are left out (the gap is all zeros here).
    assert "rm_contradicts" not in design.names and "second_judge_disagrees" in design.names
    col = design.matrix[:, design.names.index("second_judge_disagrees")]
    assert abs(col.mean()) < 1e-12 and abs(col.std() - 1.0) < 1e-12


def test_design_matrix_adds_a_missingness_column_for_a_signal_missing_on_some_pairs():
    values = np.array([1.0, np.nan, 3.0, np.nan, 5.0, 6.0])
    design = design_matrix([Signal("s", "a signal", 0.5, values)], scope=np.ones(6, bool))
    assert design.names == ["s", "s:missing"]
    np.testing.assert_array_equal(design.matrix[:, 1], np.isnan(values).astype(float))
    assert (design.matrix[np.isnan(values), 0] == 0).all()  # missing values sit at the mean
    np.testing.assert_allclose(design.prior_weight, [0.5, 0.0])


def test_register_signal_refuses_a_second_signal_of_the_same_name_and_compute_names_unknown_ones():
    with pytest.raises(ValueError, match="registered already"):
        register_signal("rm_contradicts", "again")(lambda ctx: None)
    with pytest.raises(ValueError, match="unknown signals"):
        compute_signals(SignalContext(make_pairs(), np.zeros(6)), names=["nope"])
    assert "rm_contradicts" in SIGNALS


def test_fit_logistic_map_recovers_known_coefficients_from_many_answers():
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(20000), rng.normal(size=(20000, 2))])
    true = np.array([-1.0, 1.5, -0.7])
    y = rng.random(20000) < 1.0 / (1.0 + np.exp(-x @ true))
    coef, cov, _ = fit_logistic_map(x, y, prior_mean=np.zeros(3), prior_precision=np.full(3, 1e-6))
    np.testing.assert_allclose(coef, true, atol=0.06)
    assert (np.sqrt(np.diag(cov)) < 0.05).all()
    # With no data to speak of, a strong prior is what comes back.
    coef, _, _ = fit_logistic_map(x[:2], y[:2], prior_mean=np.array([0.3, 0.2, 0.1]), prior_precision=np.full(3, 1e6))
    np.testing.assert_allclose(coef, [0.3, 0.2, 0.1], atol=1e-3)
    with pytest.raises(ValueError, match="precisions must be > 0"):
        fit_logistic_map(x, y, prior_mean=np.zeros(3), prior_precision=np.zeros(3))


def _one_signal_answers(slope, n, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=n)
    wrong = rng.random(n) < 1.0 / (1.0 + np.exp(-(-1.0 + slope * v)))
    return design_matrix([Signal("s", "the signal", 0.8, v)], scope=np.ones(n, bool)), wrong


def test_without_answers_the_model_is_its_prior_and_says_so():
    design, _ = _one_signal_answers(1.0, 50)
    model = fit_mistake_model(design, answered=np.zeros(50, bool), wrong=np.zeros(50, bool))
    assert model.n_answers == 0 and model.coef[1] == 0.8
    assert model.explain().startswith("No human answers yet: the queue follows the prior (the signal)")
    prob, lower = model.predict(design.matrix)
    assert (lower == 0).all()  # no answer: the prior alone flips nothing
    assert (np.diff(prob[np.argsort(design.matrix[:, 0])]) > 0).all()  # the prior's direction: larger = more suspect


def test_answers_that_contradict_the_prior_turn_its_weight_round_and_the_model_says_so():
    design, wrong = _one_signal_answers(-1.2, 400)
    model = fit_mistake_model(design, answered=np.ones(400, bool), wrong=wrong)
    weight = model.weights()[0]
    assert weight["prior"] == 0.8 and weight["upper"] < 0 and weight["weight"] < -0.7
    assert model.prior_sd >= 0.9  # the evidence widened the prior so the answers could win
    assert "Signs of a right AI label: the signal (odds /" in model.explain()


def test_answers_that_agree_with_the_prior_keep_it_tight():
    design, wrong = _one_signal_answers(0.8, 300, seed=1)
    model = fit_mistake_model(design, answered=np.ones(300, bool), wrong=wrong)
    assert model.prior_sd <= 0.3 and PRIOR_SD_GRID[0] <= model.prior_sd
    assert "Signs of the AI's mistakes on this data: the signal (odds x" in model.explain()


def test_the_bound_ahead_adds_the_answers_to_come_to_the_prior():
    design, _ = _one_signal_answers(1.0, 400)
    prior = fit_mistake_model(design, answered=np.zeros(400, bool), wrong=np.zeros(400, bool))
    prob, _ = prior.predict(design.matrix)
    # Known answer: k answers add k times the pool's mean Fisher information to the prior's precision.
    x = np.column_stack([np.ones(400), design.matrix])
    information = 30 * (x * (prob * (1 - prob))[:, None]).T @ x / 400
    cov = np.linalg.inv(np.linalg.inv(prior.covariance) + information)
    z = norm.ppf(prior.confidence)
    expected = 1.0 / (1.0 + np.exp(-(x @ prior.coef - z * np.sqrt(np.einsum("ij,jk,ik->i", x, cov, x)))))
    _, ahead = prior.predict(design.matrix, more_answers=30)
    np.testing.assert_allclose(ahead, expected)
    # Thirty answers to come cannot make the prior sure of most pairs it leans on (a covariance shrunk by 1 / (1 + k)
    # did: the queue then skipped the likeliest mistakes as "flipped by then"); endless answers meet the estimate.
    assert (ahead > 0.5).sum() < (prob > 0.5).sum() / 2
    np.testing.assert_allclose(prior.predict(design.matrix, more_answers=10**12)[1], prob, atol=1e-4)


def test_the_lower_bound_follows_the_flip_confidence():
    design, wrong = _one_signal_answers(2.0, 200)
    answered = np.ones(200, bool)
    loose = fit_mistake_model(design, answered=answered, wrong=wrong, config=SelectionConfig(flip_confidence=0.5))
    strict = fit_mistake_model(design, answered=answered, wrong=wrong, config=SelectionConfig(flip_confidence=0.99))
    p_loose, low_loose = loose.predict(design.matrix)
    p_strict, low_strict = strict.predict(design.matrix)
    # A 50% bound is the smaller of the mixture's estimate and the tightest prior width's: never above the mixture's.
    x = np.column_stack([np.ones(200), design.matrix])
    smaller = np.minimum(x @ loose.coef, x @ loose.tight_coef)
    np.testing.assert_allclose(low_loose, 1.0 / (1.0 + np.exp(-smaller)))
    assert (x @ loose.tight_coef < x @ loose.coef).any()  # the tight width binds somewhere: a strong signal it shrinks
    assert (low_loose <= p_loose + 1e-12).all()
    assert (low_strict < p_strict).all()
    # The bound expected after more answers is tighter: never below today's where P(wrong) is above one half.
    _, ahead = strict.predict(design.matrix, more_answers=400)
    assert (ahead[p_strict > 0.5] >= low_strict[p_strict > 0.5]).all() and (ahead > low_strict).any()
    with pytest.raises(ValueError, match="more_answers must be >= 0"):
        strict.predict(design.matrix, more_answers=-1)
    never = fit_mistake_model(design, answered=answered, wrong=wrong, config=SelectionConfig(flip_confidence=1.0))
    assert (never.predict(design.matrix)[1] == 0).all()  # 1 = never flip
    with pytest.raises(ValueError, match="flip_confidence must be in"):
        fit_mistake_model(design, answered=answered, wrong=wrong, config=SelectionConfig(flip_confidence=0.3))


def test_estimate_mistakes_fits_on_every_human_answer_and_leaves_pairs_without_an_ai_label_unscored():
    n = 40
    rng = np.random.default_rng(3)
    pairs = make_pairs(n, human=np.where(np.arange(n) < 20, rng.choice([-1, 1], n), 0))
    pairs.ai_label[-1] = 0
    signals = compute_signals(SignalContext(pairs, rng.normal(size=n)))
    est = estimate_mistakes(signals, pairs)
    assert est.model.n_answers == 20
    assert est.model.n_mistakes == int((pairs.human_label[:20] != pairs.ai_label[:20]).sum())
    assert np.isnan(est.prob[-1]) and np.isfinite(est.prob[:-1]).all()
    assert (est.lower[:-1] <= est.prob[:-1]).all()
    out = est.model.to_dict()
    assert out["answers"] == 20 and {w["signal"] for w in out["weights"]} >= {"rm_contradicts", "ai_chose_shorter"}


def test_reasons_name_the_signals_that_raise_a_pairs_odds_of_a_mistake_most():
    signals = [Signal("a", "signal a (with a gloss)", 1.0, np.array([2.0, -1.0, -1.0, 0.0])),
               Signal("b", "signal b", 0.5, np.array([2.0, -1.0, -1.0, 0.0]))]
    design = design_matrix(signals, scope=np.ones(4, bool))
    model = fit_mistake_model(design, answered=np.zeros(4, bool), wrong=np.zeros(4, bool))
    reasons = model.reasons(design.matrix)
    assert reasons[0] == "signal a; signal b"  # both raise it, a the more (its prior weight is larger)
    assert reasons[1] == reasons[2] == reasons[3] == ""  # lowered or left as it is: nothing to say
    assert model.reasons(design.matrix, most=1)[0] == "signal a"
