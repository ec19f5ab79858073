"""The feature store: rows kept once, on disk or in memory, and the same step results either way."""

from __future__ import annotations

import numpy as np
import pytest

import rlthf_selector.feature_store as feature_store
import rlthf_selector.reward_model as reward_model
from rlthf_selector.config import FeaturizerConfig, LoopConfig
from rlthf_selector.feature_store import FeatureRows, FeatureStore
from rlthf_selector.features import HashingFeaturizer
from rlthf_selector.loop import select_step
from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.out_of_fold import out_of_fold_gap_features
from rlthf_selector.reward_model import BradleyTerryHead, FeatureRewardModel
from rlthf_selector.synthetic import make_synthetic_pairs


def _pairs(n: int) -> PreferencePairs:
    return PreferencePairs(ids=[f"p{i}" for i in range(n)], prompt=["q"] * n,
                           response_a=[f"a{i}" for i in range(n)], response_b=[f"b{i}" for i in range(n)])


@pytest.mark.parametrize("on_disk", [False, True])
def test_store_round_trip_and_reopen(tmp_path, on_disk):
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((50, 2, 7)).astype(np.float32)
    store = FeatureStore(tmp_path if on_disk else None, "feat-7")
    keys = store.keys(_pairs(50))
    positions = store.put(keys[:30], rows[:30])
    positions = np.concatenate([positions, store.put(keys[30:], rows[30:])])  # a second segment
    np.testing.assert_array_equal(store.locate(keys), positions)
    np.testing.assert_array_equal(store.read(positions[::-1]), rows[::-1])
    view = FeatureRows(store, positions).take(np.arange(10, 40))
    np.testing.assert_array_equal(np.concatenate([c for _, _, c in view.chunks(7)]), rows[10:40])
    if on_disk:
        reopened = FeatureStore(tmp_path, "feat-7")
        np.testing.assert_array_equal(reopened.read(reopened.locate(keys)), rows)
        assert FeatureStore(tmp_path, "other-7").locate(keys).max() == -1  # another featuriser's rows are not shared


def test_store_skips_a_segment_without_its_commit_marker(tmp_path):
    store = FeatureStore(tmp_path, "feat")
    keys = store.keys(_pairs(4))
    store.put(keys, np.ones((4, 2, 3), np.float32))
    for marker in store.path.glob("*.keys.npy"):
        marker.unlink()  # as if the process died between the rows file and the keys file
    assert FeatureStore(tmp_path, "feat").locate(keys).max() == -1


def test_store_rejects_bad_rows(tmp_path):
    store = FeatureStore(tmp_path, "feat", dtype="float16")
    keys = store.keys(_pairs(2))
    with pytest.raises(ValueError, match="shape"):
        store.put(keys, np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="65504"):
        store.put(keys, np.full((2, 2, 3), 1e6, np.float32))
    store.put(keys, np.ones((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="width 4"):
        store.put(keys, np.ones((2, 2, 4), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        FeatureStore(None, "feat", dtype="int8")


def test_float16_store_rounds_to_half_precision(tmp_path):
    rows = np.random.default_rng(1).standard_normal((5, 2, 4)).astype(np.float32)
    store = FeatureStore(tmp_path, "feat", dtype="float16")
    got = store.read(store.put(store.keys(_pairs(5)), rows))
    np.testing.assert_array_equal(got, rows.astype(np.float16).astype(np.float32))


def test_the_model_refuses_another_featurisers_store():
    with pytest.raises(ValueError, match="featuriser"):
        FeatureRewardModel(HashingFeaturizer(FeaturizerConfig(n_features=8)), store=FeatureStore(None, "other"))


def test_a_step_on_a_chunked_disk_store_equals_the_in_memory_step(tmp_path, monkeypatch):
    """Same labels, queue, flips and gaps (to 1e-6) whether features sit in memory whole or on disk read in chunks."""
    pairs = make_synthetic_pairs(1500, seed=3)
    featurizer = HashingFeaturizer(FeaturizerConfig(n_features=32))
    config = LoopConfig(out_of_fold=4)
    in_memory = select_step(pairs, FeatureRewardModel(featurizer), iteration=0, budget=40, loop_config=config)
    for module in (feature_store, reward_model):
        monkeypatch.setattr(module, "CHUNK_PAIRS", 256)  # many segments, many chunks per pass
    on_disk_model = FeatureRewardModel(featurizer, store=FeatureStore(tmp_path, featurizer.name))
    on_disk = select_step(pairs, on_disk_model, iteration=0, budget=40, loop_config=config)
    assert len(list(on_disk_model.store.path.glob("*.keys.npy"))) == 6  # featurised in chunks of 256
    np.testing.assert_allclose(on_disk.reward_gap, in_memory.reward_gap, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(on_disk.human_queue, in_memory.human_queue)
    np.testing.assert_array_equal(on_disk.flip_mask, in_memory.flip_mask)
    np.testing.assert_array_equal(on_disk.labels, in_memory.labels)
    # ... and both equal the array-level cross-fit on the featuriser's whole output
    x = featurizer.transform(pairs)
    train_label = pairs.ai_label
    arrays = out_of_fold_gap_features(None, x, train_label, n_folds=4, seed=config.seed)
    np.testing.assert_allclose(in_memory.reward_gap, arrays, rtol=0, atol=1e-6)
    head = BradleyTerryHead().fit(x, train_label)
    np.testing.assert_allclose(on_disk_model.head.reward_gap(x), head.reward_gap(x), rtol=0, atol=1e-6)


def test_the_featurizer_config_names_the_store(tmp_path):
    featurizer = HashingFeaturizer(FeaturizerConfig(n_features=8))
    assert feature_store.store_for(featurizer, FeaturizerConfig()).path is None  # default: in memory
    store = feature_store.store_for(featurizer, FeaturizerConfig(store_dir=str(tmp_path), store_dtype="float16"))
    model = FeatureRewardModel(featurizer, store=store)
    model.features(make_synthetic_pairs(20, seed=4))
    assert store.path.parent == tmp_path and store.dtype == np.float16 and len(store) == 20
