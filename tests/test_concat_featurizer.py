"""The 'hashing+minilm' featuriser: both feature blocks side by side, per side, with the same antisymmetry."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from rlthf_selector.config import BradleyTerryConfig, FeaturizerConfig
from rlthf_selector.features import ConcatFeaturizer, HashingFeaturizer, SentenceEncoderFeaturizer, make_featurizer
from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.reward_model import FeatureRewardModel


def _fake_encode(texts):
    out = np.empty((len(texts), 4), dtype=np.float32)
    for i, t in enumerate(texts):
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
        out[i] = np.random.default_rng(seed).standard_normal(4)
    return out


def _pairs():
    return PreferencePairs(
        ids=["p0", "p1", "p2"], prompt=["How do I boil an egg?", "Name a colour.", "Say hi"],
        response_a=["Boil it for nine minutes.", "Blue.", "Hi there!"],
        response_b=["I cannot help with that.", "Green, like grass.", "zzz"],
    )


def _concat():
    hashing = HashingFeaturizer(FeaturizerConfig(n_features=16))
    encoder = SentenceEncoderFeaturizer(FeaturizerConfig(kind="minilm", cache_dir="none", progress=False),
                                        encode_fn=_fake_encode, model_id="fake-4")
    return ConcatFeaturizer([hashing, encoder]), hashing, encoder


def test_concat_is_the_blocks_side_by_side():
    concat, hashing, encoder = _concat()
    pairs = _pairs()
    x = concat.transform(pairs)
    assert x.shape == (3, 2, hashing.dim + encoder.dim) == (3, 2, concat.dim)
    np.testing.assert_array_equal(x[:, :, : hashing.dim], hashing.transform(pairs))
    np.testing.assert_array_equal(x[:, :, hashing.dim :], encoder.transform(pairs))
    assert concat.name == f"{hashing.name}+{encoder.name}"


def test_concat_reward_gap_is_antisymmetric():
    concat, _, _ = _concat()
    pairs = _pairs()
    model = FeatureRewardModel(concat, BradleyTerryConfig(l2=1.0)).fit(pairs, np.array([1, -1, 1]))
    swapped = pairs.replace(response_a=pairs.response_b, response_b=pairs.response_a, ids=["s0", "s1", "s2"])
    np.testing.assert_allclose(model.reward_gap(swapped), -model.reward_gap(pairs), atol=1e-9)


def test_concat_needs_two_and_make_featurizer_names_the_kinds(tmp_path):
    with pytest.raises(ValueError, match="at least two"):
        ConcatFeaturizer([HashingFeaturizer()])
    with pytest.raises(ValueError, match="hashing\\+minilm"):
        make_featurizer(FeaturizerConfig(kind="minilm+hashing"))
    # The concatenated kind builds both parts (a missing encoder directory is named, as for 'minilm').
    with pytest.raises(FileNotFoundError, match="does not exist"):
        make_featurizer(FeaturizerConfig(kind="hashing+minilm", model_dir=str(tmp_path / "missing")))


def test_simulate_accepts_the_concatenated_kind():
    from rlthf_selector.cli import build_parser

    from rlthf_selector.config import selector_configs

    args = build_parser().parse_args(["simulate", "--dataset", "synthetic", "--features-kind", "hashing+minilm"])
    assert selector_configs(args)["featurizer_config"].kind == "hashing+minilm"
