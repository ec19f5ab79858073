"""A preference set the project generates itself, for the demo and tests (no download).

Responses are bags of words. A hidden true reward scores each response by the words it contains,
and gold prefers the higher-reward response. The simulated AI judge is biased, and its mistakes are
systematic rather than uniform: it is unreliable on some topics, errs far more often when the two
responses are close in quality, and then tends to prefer the longer one. A reward model that learns
the word weights from the judge's (mostly right) labels can spot where the judge went wrong.
"""

from __future__ import annotations

import numpy as np

from rlthf_selector.pairs import PreferencePairs

_GOOD = ("accurate", "clear", "specific", "cited", "concise", "correct", "polite", "safe", "helpful", "relevant",
         "tested", "complete", "honest", "structured", "precise")
_BAD = ("vague", "wrong", "rude", "unsafe", "rambling", "outdated", "evasive", "incorrect", "offtopic",
        "misleading", "sloppy", "biased", "confusing", "unverified", "harmful")
_FILLER = ("the", "answer", "is", "that", "we", "can", "then", "also", "it", "this", "so", "and", "of", "to",
           "steps", "here", "some", "more", "detail", "note", "first", "next", "finally", "because")
#: Topics and how often the judge errs on a close call within each (systematic, not uniform).
_TOPICS = {"cooking": 0.10, "travel": 0.10, "history": 0.15, "gardening": 0.10, "math": 0.55, "code": 0.50,
           "law": 0.45, "health": 0.20}


def make_synthetic_pairs(n: int = 2000, *, seed: int = 0) -> PreferencePairs:
    """Generate ``n`` pairs with gold labels and a biased AI judge's labels.

    Returns
    -------
    PreferencePairs
        ``gold_label`` and ``ai_label`` filled, ``human_label`` empty; ``extra["true_reward_gap"]``
        (shape (n,)) holds r*(A) - r*(B) for inspection.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    weights = {**{w: rng.uniform(0.6, 1.4) for w in _GOOD}, **{w: -rng.uniform(0.6, 1.4) for w in _BAD}}
    quality_words = np.array(list(weights))
    topics = np.array(list(_TOPICS))

    def response() -> tuple[str, float]:
        k = rng.integers(1, 5)
        quality = rng.choice(quality_words, size=k, replace=False)
        filler = rng.choice(_FILLER, size=rng.integers(4, 40))
        words = np.concatenate([quality, filler])
        rng.shuffle(words)
        return " ".join(words), float(sum(weights[w] for w in quality))

    ids, prompts, resp_a, resp_b, gold, ai, true_gap = [], [], [], [], [], [], []
    while len(ids) < n:
        topic = topics[rng.integers(len(topics))]
        text_a, r_a = response()
        text_b, r_b = response()
        if abs(r_a - r_b) < 1e-6 or text_a == text_b:
            continue
        g = 1 if r_a > r_b else -1
        # The judge's error rate rises on hard topics and on close calls.
        closeness = np.exp(-abs(r_a - r_b) / 2.5)
        p_error = _TOPICS[topic] * closeness + 0.03
        if rng.random() < p_error:
            label = -g
        else:
            label = g
        # On close calls the judge is swayed by length.
        if closeness > 0.6 and abs(len(text_a) - len(text_b)) > 60 and rng.random() < 0.3:
            label = 1 if len(text_a) > len(text_b) else -1
        ids.append(f"syn-{len(ids):06d}")
        prompts.append(f"A question about {topic}: please help with {topic} {rng.choice(_FILLER)}.")
        resp_a.append(text_a)
        resp_b.append(text_b)
        gold.append(g)
        ai.append(label)
        true_gap.append(r_a - r_b)
    return PreferencePairs(
        ids=ids, prompt=prompts, response_a=resp_a, response_b=resp_b, ai_label=ai, gold_label=gold,
        extra={"true_reward_gap": np.asarray(true_gap)},
    )
