"""judge_doubt: each kind of judge evidence gives a known doubt; the loop ranks doubtful pairs first."""

import warnings

import numpy as np
import pytest

from rlthf_selector.evidence import COMPONENTS, doubt_components, judge_doubt
from rlthf_selector.pairs import PreferencePairs


def make_pairs(ai, **extra):
    n = len(ai)
    return PreferencePairs(ids=[f"p{i}" for i in range(n)], prompt=["q"] * n, response_a=[f"a{i}" for i in range(n)],
                           response_b=[f"b{i}" for i in range(n)], ai_label=ai, extra=extra)


def test_no_evidence_gives_none():
    assert judge_doubt(make_pairs([1, -1, 1])) is None
    assert judge_doubt(make_pairs([1, -1], unrelated=np.array([0.3, 0.4]))) is None


def test_second_judge_disagree_tie_agree():
    pairs = make_pairs([1, 1, -1, -1], second_judge_label=np.array([-1, 0, -1, 1], np.int8))
    np.testing.assert_allclose(judge_doubt(pairs), [1.0, 0.5, 0.0, 1.0])


def test_swap_inconsistency_bool_and_float_with_missing():
    pairs = make_pairs([1, 1, -1], ai_consistent=np.array([True, False, True]))
    np.testing.assert_allclose(judge_doubt(pairs), [0.0, 1.0, 0.0])
    # Loaders store a bool column absent on some rows as 1/0/NaN: a missing value is no evidence.
    pairs = make_pairs([1, 1, -1], ai_consistent=np.array([1.0, 0.0, np.nan]))
    comps = doubt_components(pairs)
    np.testing.assert_allclose(comps["swap"], [0.0, 1.0, np.nan])
    # The pair without evidence gets the mean doubt of the others (0.5): neutral in a rank fusion.
    np.testing.assert_allclose(judge_doubt(pairs), [0.0, 1.0, 0.5])


def test_confidence_and_disagreement():
    pairs = make_pairs([1, -1, 1], ai_confidence=np.array([0.9, 0.5, 1.0]), ai_disagreement=np.array([0.0, 0.5, 0.25]))
    comps = doubt_components(pairs)
    np.testing.assert_allclose(comps["confidence"], [0.1, 0.5, 0.0])
    np.testing.assert_allclose(comps["disagreement"], [0.0, 1.0, 0.5])
    np.testing.assert_allclose(judge_doubt(pairs), [0.05, 0.75, 0.25])


def test_explicit_doubt_replaces_confidence_where_present():
    # prelabel writes judge_doubt = 1 - ai_confidence: the same evidence must count once.
    pairs = make_pairs([1, 1, 1], judge_doubt=np.array([0.2, np.nan, 0.6]), ai_confidence=np.array([0.8, 0.3, 0.4]))
    comps = doubt_components(pairs)
    np.testing.assert_allclose(comps["explicit"], [0.2, np.nan, 0.6])
    np.testing.assert_allclose(comps["confidence"], [np.nan, 0.7, np.nan])
    np.testing.assert_allclose(judge_doubt(pairs), [0.2, 0.7, 0.6])


def test_all_components_averaged_and_weighted():
    pairs = make_pairs(
        [1, -1],
        second_judge_label=np.array([-1, -1], np.int8),  # disagrees, agrees
        ai_consistent=np.array([False, True]),
        judge_doubt=np.array([0.4, 0.0]),
        ai_disagreement=np.array([0.5, 0.0]),
    )
    assert list(doubt_components(pairs)) == ["second", "swap", "explicit", "disagreement"]
    np.testing.assert_allclose(judge_doubt(pairs), [(1 + 1 + 0.4 + 1) / 4, 0.0])
    np.testing.assert_allclose(judge_doubt(pairs, weights={"second": 3.0, "swap": 0.0}), [(3 + 0.4 + 1) / 5, 0.0])


def test_pairs_without_ai_label_are_neutral():
    pairs = make_pairs([1, 0, -1], second_judge_label=np.array([-1, 1, -1], np.int8))
    np.testing.assert_allclose(judge_doubt(pairs), [1.0, 0.5, 0.0])


def test_doubt_is_in_unit_interval_and_subsets_stay_aligned():
    rng = np.random.default_rng(0)
    n = 200
    pairs = make_pairs(rng.choice([-1, 1], n), second_judge_label=rng.choice([-1, 0, 1], n).astype(np.int8),
                       ai_confidence=rng.uniform(0, 1, n), ai_consistent=rng.random(n) < 0.8,
                       ai_disagreement=rng.choice([0.0, 0.25, 0.5], n))
    doubt = judge_doubt(pairs)
    assert doubt.shape == (n,) and (doubt >= 0).all() and (doubt <= 1).all()
    idx = rng.permutation(n)[:50]
    np.testing.assert_allclose(judge_doubt(pairs.subset(idx)), doubt[idx])


@pytest.mark.parametrize("extra, message", [
    ({"ai_confidence": np.array([0.5, 1.5])}, r"ai_confidence.*\[1\].*\[0, 1\]"),
    ({"judge_doubt": np.array([-0.1, 0.5])}, r"judge_doubt.*\[0\]"),
    ({"ai_disagreement": np.array([0.0, 2.0])}, r"ai_disagreement.*\[1\]"),
    ({"second_judge_label": np.array([1, 5])}, r"second_judge_label.*\[1\].*expected"),
    ({"ai_confidence": np.array(["high", "low"], dtype=object)}, r"ai_confidence.*numbers"),
    ({"ai_confidence": np.zeros((2, 3))}, r"ai_confidence.*shape"),
])
def test_bad_evidence_is_named(extra, message):
    with pytest.raises(ValueError, match=message):
        judge_doubt(make_pairs([1, -1], **extra))


def test_bad_weights():
    pairs = make_pairs([1, -1], ai_consistent=np.array([True, False]))
    with pytest.raises(ValueError, match="unknown judge-evidence"):
        judge_doubt(pairs, weights={"secnd": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        judge_doubt(pairs, weights={"swap": -1.0})
    assert set(COMPONENTS) == {"second", "swap", "explicit", "confidence", "disagreement"}


class _FixedGapModel:
    """A reward model whose gap is fixed per pair id (fit does nothing): isolates the selection."""

    def __init__(self, gap_by_id):
        self.gap_by_id = gap_by_id

    def fit(self, pairs, labels, *, sample_weight=None):
        return self

    def reward_gap(self, pairs):
        return np.array([self.gap_by_id[i] for i in pairs.ids])

    def clone(self):
        return self


def _reversed_s_gaps(n):
    """Oriented gaps with a steep head, a flat middle and a steep tail, sorted descending by position."""
    x = np.linspace(-1, 1, n)
    return -np.sinh(4 * x) / 4 + 0.5


def test_simulate_reports_the_evidence_aucs():
    """The benchmark traces a gain to its cause: judge evidence alone beside the RM's own AUC."""
    from rlthf_selector.config import BradleyTerryConfig, CurveConfig, FeaturizerConfig, LoopConfig, SelectionConfig
    from rlthf_selector.simulate import Simulation, SimulationData, markdown_table, summarise
    from rlthf_selector.synthetic import make_synthetic_pairs

    pairs = make_synthetic_pairs(300, seed=3)

    def run(p):
        sim = Simulation(SimulationData(p, "synthetic", "simulated: test"), featurizer_config=FeaturizerConfig(n_features=64),
                         rm_config=BradleyTerryConfig(), loop_config=LoopConfig(out_of_fold=3), curve_config=CurveConfig(),
                         selection_config=SelectionConfig())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = sim.run(["ai-only"], [0.05], [0], log=lambda s: None)
        return out, markdown_table(out, summarise(out))

    # A second judge that always knows gold: its disagreement marks exactly the AI's mistakes.
    out, table = run(pairs.replace(extra={"second_judge_label": pairs.gold_label.copy()}))
    signal = out["signal"][0]
    assert signal["judge_doubt_auc"] == pytest.approx(1.0) and signal["rm_mistake_auc"] < 1.0
    assert "Judge evidence alone: 1.000" in table
    out, table = run(pairs)
    assert out["signal"][0]["judge_doubt_auc"] is None
    assert "Judge evidence alone" not in table


def test_evidence_records_round_trip_every_field_and_leave_out_what_is_absent():
    from rlthf_selector.evidence import EVIDENCE_FIELDS, evidence_from_records, evidence_record

    nan = np.nan
    pairs = make_pairs([1, -1, 1],
                       second_judge_label=np.array([-1, 0, 1], np.int8),
                       ai_consistent=np.array([1.0, nan, 0.0]),
                       judge_doubt=np.array([0.2, nan, 0.9]),
                       ai_confidence=np.array([0.8, 0.5, nan]),
                       ai_disagreement=np.array([nan, 0.25, 0.0]),
                       unrelated=np.array([1.0, 2.0, 3.0]))
    records = [evidence_record(pairs, i) for i in range(3)]
    assert records[1] == {"ai_confidence": 0.5, "ai_disagreement": 0.25}  # a tie and NaNs are left out
    assert records[0]["second_judge_label"] == "b" and records[0]["ai_consistent"] is True
    extra, problems = evidence_from_records([dict(r, rlthf_priority=3, prompt="q") for r in records])
    assert problems == [] and set(extra) == set(EVIDENCE_FIELDS)
    for key in EVIDENCE_FIELDS:
        np.testing.assert_array_equal(extra[key], pairs.extra[key])
    np.testing.assert_allclose(judge_doubt(pairs.replace(extra=extra)), judge_doubt(pairs))


def test_evidence_from_records_leaves_out_bad_values_and_names_them():
    from rlthf_selector.evidence import evidence_from_records

    records = [{"ai_confidence": "high"}, {"judge_doubt": 1.5}, {"ai_consistent": "maybe"},
               {"second_judge_label": "c"}, {"ai_confidence": 0.7, "judge_doubt": 0.1}, {}]
    extra, problems = evidence_from_records(records)
    assert [i for i, _ in problems] == [0, 1, 2, 3]
    assert "ai_confidence left out: 'high' is not a number" in problems[0][1]
    assert "judge_doubt left out: 1.5 is outside [0, 1]" in problems[1][1]
    assert "ai_consistent left out" in problems[2][1] and "second_judge_label left out" in problems[3][1]
    np.testing.assert_array_equal(extra["ai_confidence"], [np.nan, np.nan, np.nan, np.nan, 0.7, np.nan])
    assert extra["second_judge_label"].tolist() == [0, 0, 0, 0, 0, 0]
    assert evidence_from_records([{"prompt": "q"}] * 3) == ({}, [])  # no evidence, no columns
