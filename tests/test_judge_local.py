"""The local judge: a Hugging Face causal LM directory scored by log p("A") vs log p("B") in both orders.

The model is a randomly initialised one-layer GPT-2 with a word-level tokenizer, both built here from a
config and saved to a temporary directory (nothing is downloaded). Its verdicts are noise, so the known-answer
checks use it for the scoring arithmetic and the loading path, and an injected content-aware fake model for
the mapping of both orders back to the pair's A and B.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from rlthf_selector.judge.cache import JudgeCache  # noqa: E402
from rlthf_selector.judge.cli import main as prelabel_main  # noqa: E402
from rlthf_selector.judge.local_judge import LocalJudge, letter_token_ids  # noqa: E402
from rlthf_selector.judge.runner import judge_pairs  # noqa: E402

WORDS = ["[UNK]", "[PAD]", "A", "B", "Which", "response", "is", "better?", "Answer:", "good", "bad", "question"]


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-gpt2-judge")
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(directory)
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(WORDS),
        n_layer=1,
        n_embd=32,
        n_head=2,
        n_positions=512,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=1,
    )
    GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


def test_scores_next_token_letters_of_a_real_causal_lm(tiny_lm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    judge = LocalJudge(tiny_lm_dir)
    assert judge.name == tiny_lm_dir.name
    assert judge.letter_ids == {"A": (2,), "B": (3,)}
    text = judge.render("question 1", "good answer", "bad answer")
    assert text.endswith("Answer:") and "good answer" in text
    # Independent recomputation of p(A) / (p(A) + p(B)) at the last position.
    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=ids).logits[0, -1], dim=-1)
    want = float(probs[2] / (probs[2] + probs[3]))
    verdict = judge.judge_order("question 1", "good answer", "bad answer")
    assert verdict.p_first == pytest.approx(want, rel=1e-5)
    assert verdict.verdict == ("A" if want > 0.5 else "B")
    assert verdict.reason is None and verdict.cacheable


def test_both_orders_and_cache_with_a_real_causal_lm(tiny_lm_dir, tmp_path):
    judge = LocalJudge(tiny_lm_dir)
    prompts = [f"question {k}" for k in range(4)]
    a = ["good answer", "bad answer", "good", "A B A"]
    b = ["bad answer", "good answer", "bad bad", "B A B"]
    with JudgeCache(tmp_path / "c.jsonl") as cache:
        labels, stats = judge_pairs(judge, prompts, a, b, cache=cache)
    assert stats.answers_requested == 8 and stats.answers_from_cache == 0
    # Recompute both orders by hand: the label is the one with the larger mean p(A better).
    for i in range(4):
        p_ab = judge.judge_order(prompts[i], a[i], b[i]).p_first
        p_ba = judge.judge_order(prompts[i], b[i], a[i]).p_first
        consistent = (p_ab > 0.5) == (p_ba < 0.5)
        assert bool(labels.consistent[i]) == consistent
        mean_a = (p_ab + (1 - p_ba)) / 2
        if consistent:
            assert labels.label[i] == (1 if p_ab > 0.5 else -1)
        else:
            assert labels.label[i] == (1 if mean_a > 0.5 else -1)
        p_label = mean_a if labels.label[i] == 1 else 1 - mean_a
        assert labels.confidence[i] == pytest.approx(p_label if consistent else p_label / 2)
    with JudgeCache(tmp_path / "c.jsonl") as cache:
        again, stats = judge_pairs(LocalJudge(tiny_lm_dir), prompts, a, b, cache=cache)
    assert stats.answers_requested == 0 and stats.answers_from_cache == 8
    np.testing.assert_array_equal(again.label, labels.label)


def test_chat_template_is_used_when_the_tokenizer_has_one(tiny_lm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    tok.chat_template = "{% for m in messages %}<{{ m.role }}> {{ m.content }} {% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
    judge = LocalJudge(tiny_lm_dir, tokenizer=tok)
    text = judge.render("q", "x", "y")
    assert text.startswith("<system> ") and text.endswith("<assistant>")
    assert judge.judge_order("q", "x", "y").verdict in ("A", "B")


def test_too_long_prompt_is_left_unlabeled(tiny_lm_dir):
    judge = LocalJudge(tiny_lm_dir, max_length=10)
    verdict = judge.judge_order("question", "good " * 20, "bad")
    assert verdict.verdict is None and verdict.reason.startswith("too_long:")


# --------------------------------------------------------------------- injected content-aware fake model


class CharTokenizer:
    """One token per character; 'A' and 'B' are their own tokens."""

    chat_template = None
    unk_token_id = None

    def encode(self, text, add_special_tokens=False):
        return [ord(c) % 256 for c in text]

    def __call__(self, text, return_tensors="pt", add_special_tokens=False):
        ids = torch.tensor([self.encode(text)])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class PrefersGood:
    """Logits at the last position favour the letter of the response containing 'good' (p = 0.8), or always
    'A' when ``position_biased``."""

    def __init__(self, position_biased=False):
        self.position_biased = position_biased

    def __call__(self, input_ids, attention_mask=None):
        text = "".join(chr(int(i)) for i in input_ids[0])
        user = text[text.index("[Response A]") :]
        good_first = user.index("good") < user.index("bad")
        letter = "A" if good_first or self.position_biased else "B"
        logits = torch.zeros(1, input_ids.shape[1], 256)
        logits[0, -1, ord(letter)] = math.log(4.0)  # p(letter) / p(other) = 4 -> 0.8 among the two

        class Out:
            pass

        out = Out()
        out.logits = logits
        return out


def test_both_orders_map_back_to_the_pair_with_a_fake_model():
    judge = LocalJudge("fake-judge", model=PrefersGood(), tokenizer=CharTokenizer(), name="fake")
    prompts = ["q1", "q2", "q3"]
    a = ["a good answer", "a bad answer", "good"]
    b = ["a bad answer", "a good answer", "bad"]
    labels, _ = judge_pairs(judge, prompts, a, b)
    assert labels.label.tolist() == [1, -1, 1]
    assert labels.consistent.tolist() == [1, 1, 1]
    np.testing.assert_allclose(labels.confidence, 0.8, rtol=1e-6)
    biased = LocalJudge("fake-judge", model=PrefersGood(position_biased=True), tokenizer=CharTokenizer(), name="biased")
    labels, _ = judge_pairs(biased, prompts, a, b)
    assert labels.consistent.tolist() == [0, 0, 0]
    np.testing.assert_allclose(labels.confidence, 0.25, rtol=1e-6)


def test_tokenizer_without_single_letter_tokens_is_refused():
    class Splits:
        unk_token_id = None

        def encode(self, text, add_special_tokens=False):
            return [1, 2] if text.strip() in ("A", "B") else [3]

    with pytest.raises(ValueError, match="no single token for 'A'"):
        letter_token_ids(Splits(), "A")


def test_prelabel_cli_with_a_local_model_directory(tiny_lm_dir, tmp_path, capsys):
    records = [
        {"id": f"p{k}", "prompt": f"question {k}", "response_a": "good", "response_b": "bad answer"} for k in range(3)
    ]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out.jsonl"
    assert (
        prelabel_main(["--pairs", str(pairs), "--out", str(out), "--local-model", str(tiny_lm_dir), "--no-progress"])
        == 0
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(r["judge_names"] == tiny_lm_dir.name for r in rows)
    assert all(r["ai_label"] in ("a", "b") and 0 < r["ai_confidence"] <= 1 for r in rows)
    assert "labeled 3" in capsys.readouterr().out
    assert prelabel_main(["--pairs", str(pairs), "--out", str(out), "--local-model", str(tmp_path / "missing")]) == 2
