"""Bradley-Terry heads, feature reward models and cross-fitted gaps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rlthf_selector.config import BradleyTerryConfig, FeaturizerConfig
from rlthf_selector.features import Featurizer, HashingFeaturizer
from rlthf_selector.out_of_fold import fold_assignment, out_of_fold_gap_features, out_of_fold_reward_gap
from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.reward_model import BradleyTerryHead, FeatureRewardModel, RewardModel, load_state, save_state

MLP = BradleyTerryConfig(hidden=16, l2=1e-3, epochs=15, batch_size=256, threads=1)


def _linear_problem(n: int = 2000, d: int = 10, seed: int = 0, noise: float = 1.0):
    rng = np.random.default_rng(seed)
    w_true = rng.standard_normal(d)
    scales = rng.uniform(0.2, 5.0, d)
    x = rng.standard_normal((n, 2, d)) * scales + rng.uniform(-3, 3, d)
    gap = (x[:, 0] - x[:, 1]) @ w_true
    gap *= 3.0 / gap.std()
    labels = np.where(rng.random(n) < 1 / (1 + np.exp(-gap / noise)), 1, -1)
    return x.astype(np.float32), labels, w_true, gap


# -- the head -------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [BradleyTerryConfig(), MLP], ids=["linear", "mlp"])
def test_gap_is_exactly_antisymmetric(config):
    x, y, _, _ = _linear_problem(n=400)
    head = BradleyTerryHead(config).fit(x, y)
    gap = head.reward_gap(x)
    np.testing.assert_array_equal(head.reward_gap(x[:, ::-1]), -gap)
    np.testing.assert_allclose(gap, head.reward(x[:, 0]) - head.reward(x[:, 1]))
    assert np.abs(gap).max() > 0


def test_linear_head_recovers_the_true_direction():
    x, y, w_true, _ = _linear_problem(n=5000)
    head = BradleyTerryHead(BradleyTerryConfig(l2=1e-3)).fit(x, y)
    w = head.params_["w"] / head.scale_  # back to the raw feature space
    cosine = w @ w_true / np.linalg.norm(w) / np.linalg.norm(w_true)
    assert cosine > 0.9
    assert head.history_["converged"]


def test_stronger_l2_shrinks_the_gaps():
    x, y, _, _ = _linear_problem(n=500)
    weak = BradleyTerryHead(BradleyTerryConfig(l2=1e-4)).fit(x, y).reward_gap(x)
    strong = BradleyTerryHead(BradleyTerryConfig(l2=10.0)).fit(x, y).reward_gap(x)
    assert np.abs(strong).mean() < 0.5 * np.abs(weak).mean()


def test_duplicating_a_pair_equals_weight_two():
    x, y, _, _ = _linear_problem(n=300, noise=3.0)
    w = np.ones(300)
    w[:40] = 2.0
    dup = np.concatenate([np.arange(300), np.arange(40)])
    cfg = BradleyTerryConfig(l2=0.01)
    weighted = BradleyTerryHead(cfg).fit(x, y, sample_weight=w)
    duplicated = BradleyTerryHead(cfg).fit(x[dup], y[dup])
    np.testing.assert_allclose(weighted.reward_gap(x), duplicated.reward_gap(x), rtol=1e-4, atol=1e-5)


def test_sample_weights_matter():
    x, y, _, _ = _linear_problem(n=300, noise=3.0)
    flipped = y.copy()
    flipped[:100] *= -1
    w = np.ones(300)
    w[:100] = 20.0
    cfg = BradleyTerryConfig(l2=0.01)
    plain = BradleyTerryHead(cfg).fit(x, flipped).reward_gap(x)
    heavy = BradleyTerryHead(cfg).fit(x, flipped, sample_weight=w).reward_gap(x)
    # upweighted pairs are fitted better
    assert np.mean(np.sign(heavy[:100]) == flipped[:100]) > np.mean(np.sign(plain[:100]) == flipped[:100]) + 0.1
    zero = np.ones(300)
    zero[:100] = 0.0
    np.testing.assert_allclose(
        BradleyTerryHead(cfg).fit(x, flipped, sample_weight=zero).reward_gap(x),
        BradleyTerryHead(cfg).fit(x[100:], flipped[100:]).reward_gap(x),
        atol=2e-3,  # L-BFGS stopping tolerance
    )


def test_mlp_learns_what_a_linear_reward_cannot():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 2, 4)).astype(np.float32)
    true_gap = np.abs(x[:, 0, 0]) - np.abs(x[:, 1, 0])  # reward = |x0|: symmetric, so no linear fit
    y = np.where(true_gap > 0, 1, -1)
    test = slice(2500, None)
    linear = BradleyTerryHead(BradleyTerryConfig(l2=1e-3)).fit(x[:2500], y[:2500])
    mlp = BradleyTerryHead(BradleyTerryConfig(hidden=16, l2=1e-4, epochs=40, lr=0.02, threads=1)).fit(x[:2500], y[:2500])
    acc_linear = np.mean(np.sign(linear.reward_gap(x[test])) == y[test])
    acc_mlp = np.mean(np.sign(mlp.reward_gap(x[test])) == y[test])
    assert acc_linear < 0.65 and acc_mlp > 0.85


def test_mlp_early_stopping_keeps_the_best_epoch():
    x, y, _, _ = _linear_problem(n=600, noise=5.0)
    head = BradleyTerryHead(BradleyTerryConfig(hidden=32, l2=0.0, epochs=60, lr=0.05, patience=3, threads=1)).fit(x, y)
    hist = head.history_
    assert hist["n_validation"] == 60
    assert hist["n_iter"] < 60  # stopped early on noisy labels
    assert hist["best_epoch"] == int(np.argmin(hist["val_loss"]))
    assert hist["n_iter"] - 1 - hist["best_epoch"] == 3


def test_seeds_are_reproducible():
    x, y, _, _ = _linear_problem(n=400)
    a = BradleyTerryHead(MLP).fit(x, y).reward_gap(x)
    b = BradleyTerryHead(MLP).fit(x, y).reward_gap(x)
    c = BradleyTerryHead(BradleyTerryConfig(**{**MLP.__dict__, "seed": 1})).fit(x, y).reward_gap(x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_input_raises():
    x, y, _, _ = _linear_problem(n=50)
    head = BradleyTerryHead()
    with pytest.raises(RuntimeError, match="not fitted"):
        head.reward_gap(x)
    y0 = y.copy()
    y0[3] = 0
    with pytest.raises(ValueError, match=r"labels\[3\]"):
        head.fit(x, y0)
    with pytest.raises(ValueError, match=r"shape \(n, 2, d\)"):
        head.fit(x[:, 0], y)
    with pytest.raises(ValueError, match="sample_weight"):
        head.fit(x, y, sample_weight=-np.ones(50))
    with pytest.raises(ValueError, match="every sample weight is zero"):
        head.fit(x, y, sample_weight=np.zeros(50))
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        head.fit(bad, y)
    head.fit(x, y)
    with pytest.raises(ValueError, match="d = 3"):
        head.reward_gap(x[:, :, :3])


@pytest.mark.parametrize("config", [BradleyTerryConfig(), MLP], ids=["linear", "mlp"])
def test_state_dict_round_trip(config, tmp_path):
    x, y, _, _ = _linear_problem(n=300)
    head = BradleyTerryHead(config).fit(x, y)
    save_state(head.state_dict(), tmp_path / "rm.npz")
    restored = BradleyTerryHead().load_state_dict(load_state(tmp_path / "rm.npz"))
    np.testing.assert_array_equal(restored.reward_gap(x), head.reward_gap(x))
    assert restored.config == config
    with pytest.raises(ValueError, match="format"):
        BradleyTerryHead().load_state_dict({"format": "other"})
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        load_state(tmp_path / "junk.npz")


# -- text-level models ----------------------------------------------------------------------------
class CountingFeaturizer(Featurizer):
    """Features from a fixed table keyed by response text; counts the pairs it featurised."""

    name = "counting"

    def __init__(self) -> None:
        self.pairs_seen = 0

    @property
    def dim(self) -> int:
        return 3

    def transform(self, pairs: PreferencePairs) -> np.ndarray:
        self.pairs_seen += len(pairs)
        out = np.empty((len(pairs), 2, 3), dtype=np.float32)
        for i in range(len(pairs)):
            for side, text in enumerate((pairs.response_a[i], pairs.response_b[i])):
                out[i, side] = [len(text), text.count("good"), text.count("bad")]
        return out


def _text_pairs(n: int = 120, seed: int = 0) -> tuple[PreferencePairs, np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b, labels = [], [], []
    for i in range(n):
        good = "good " * int(rng.integers(1, 4)) + f"answer {i}"
        bad = "bad " * int(rng.integers(1, 4)) + f"answer {i}"
        if rng.random() < 0.5:
            a.append(good), b.append(bad), labels.append(1)
        else:
            a.append(bad), b.append(good), labels.append(-1)
    pairs = PreferencePairs(ids=[f"q{i}" for i in range(n)], prompt=["Q?"] * n, response_a=a, response_b=b)
    return pairs, np.asarray(labels)


def test_feature_reward_model_memoises_features_across_fits_and_clones():
    pairs, labels = _text_pairs()
    feat = CountingFeaturizer()
    model = FeatureRewardModel(feat, BradleyTerryConfig(l2=0.01))
    model.fit(pairs.subset(np.arange(60)), labels[:60])
    assert feat.pairs_seen == 60
    gaps = model.reward_gap(pairs)
    assert feat.pairs_seen == 120
    assert np.mean(np.sign(gaps) == labels) > 0.95
    out_of_fold_reward_gap(model, pairs, labels, n_folds=4)
    assert feat.pairs_seen == 120  # clones share the memo
    changed = pairs.replace(response_a=["good good changed"] + list(pairs.response_a[1:]))
    model.reward_gap(changed)
    assert feat.pairs_seen == 121  # same id, new text: featurised again
    np.testing.assert_array_equal(model.reward_gap(_swap(pairs)), -gaps)


def _swap(pairs: PreferencePairs) -> PreferencePairs:
    return pairs.replace(response_a=pairs.response_b, response_b=pairs.response_a)


def test_feature_reward_model_state_and_errors(tmp_path):
    pairs, labels = _text_pairs()
    model = FeatureRewardModel(CountingFeaturizer(), BradleyTerryConfig(l2=0.01)).fit(pairs, labels)
    save_state(model.state_dict(), tmp_path / "m.npz")
    fresh = FeatureRewardModel(CountingFeaturizer()).load_state_dict(load_state(tmp_path / "m.npz"))
    np.testing.assert_array_equal(fresh.reward_gap(pairs), model.reward_gap(pairs))
    other = FeatureRewardModel(HashingFeaturizer(FeaturizerConfig(n_features=8)))
    with pytest.raises(ValueError, match="featuriser"):
        other.load_state_dict(model.state_dict())
    with pytest.raises(RuntimeError, match="not fitted"):
        model.clone().reward_gap(pairs)
    zero = labels.copy()
    zero[5] = 0
    with pytest.raises(ValueError, match=r"labels\[5\]"):
        model.clone().fit(pairs, zero)
    assert "counting" in model.name


# -- cross-fitting ------------------------------------------------------------------------------------
class MemorisingModel(RewardModel):
    """Remembers the pairs it trained on; scoring one of them is an error. Records who scored what."""

    name = "memorising"
    log: list[tuple[set, set]] = []

    def __init__(self) -> None:
        self.trained: set[str] | None = None

    def fit(self, pairs, labels, *, sample_weight=None):
        assert (np.asarray(labels) != 0).all(), "trained on an unlabelled pair"
        self.trained = set(pairs.ids.tolist())
        self.log.append((self.trained, set()))
        return self

    def reward_gap(self, pairs):
        ids = set(pairs.ids.tolist())
        leaked = ids & self.trained
        if leaked:
            raise AssertionError(f"scored pairs it trained on: {sorted(leaked)[:5]}")
        self.log[-1][1].update(ids)
        return np.full(len(pairs), float(len(self.log)))  # which fold model scored

    def clone(self):
        return MemorisingModel()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state):
        return self


def test_out_of_fold_never_scores_a_pair_with_a_model_that_trained_on_it():
    pairs, labels = _text_pairs(n=53)
    labels = labels.copy()
    labels[[0, 7, 20]] = 0  # unlabelled: never trained on, scored by every fold model
    MemorisingModel.log = []
    gaps = out_of_fold_reward_gap(MemorisingModel(), pairs, labels, n_folds=5, seed=3)
    assert len(MemorisingModel.log) == 5
    labelled_ids = set(pairs.ids[labels != 0].tolist())
    for trained, scored in MemorisingModel.log:
        assert not trained & scored
        assert {"q0", "q7", "q20"} <= scored and not {"q0", "q7", "q20"} & trained
        assert trained | (scored & labelled_ids) == labelled_ids
    np.testing.assert_allclose(gaps[[0, 7, 20]], np.mean([1, 2, 3, 4, 5]))
    assert set(np.unique(gaps[labels != 0])) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_folds_are_balanced_and_seeded():
    labels = np.ones(103, dtype=int)
    labels[:3] = 0
    folds = fold_assignment(labels, 5, seed=0)
    assert (folds[:3] == -1).all()
    assert sorted(np.bincount(folds[3:]).tolist()) == [20, 20, 20, 20, 20]
    np.testing.assert_array_equal(folds, fold_assignment(labels, 5, seed=0))
    assert not np.array_equal(folds, fold_assignment(labels, 5, seed=1))
    with pytest.raises(ValueError, match="cannot be split"):
        fold_assignment(labels[:5], 5)


def test_text_and_array_out_of_fold_agree():
    pairs, labels = _text_pairs()
    w = np.where(np.arange(120) % 3 == 0, 4.0, 1.0)
    cfg = BradleyTerryConfig(l2=0.1)
    model = FeatureRewardModel(CountingFeaturizer(), cfg)
    text_level = out_of_fold_reward_gap(model, pairs, labels, sample_weight=w, n_folds=4, seed=2)
    array_level = out_of_fold_gap_features(cfg, model.features(pairs), labels, sample_weight=w, n_folds=4, seed=2)
    np.testing.assert_allclose(text_level, array_level, rtol=1e-10)
    # one fold or fewer: in-sample
    in_sample = out_of_fold_gap_features(cfg, model.features(pairs), labels, n_folds=1)
    np.testing.assert_allclose(in_sample, BradleyTerryHead(cfg).fit(model.features(pairs), labels).reward_gap(model.features(pairs)))


def test_out_of_fold_gaps_are_honest_on_noise():
    """On pure-noise labels, in-sample gaps agree with the labels; out-of-fold gaps do not."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 2, 40)).astype(np.float32)
    y = rng.choice([-1, 1], 400)
    cfg = BradleyTerryConfig(l2=1e-3)
    in_sample = BradleyTerryHead(cfg).fit(x, y).reward_gap(x)
    oof = out_of_fold_gap_features(cfg, x, y, n_folds=5)
    assert np.mean(np.sign(in_sample) == y) > 0.6
    assert abs(np.mean(np.sign(oof) == y) - 0.5) < 0.1
