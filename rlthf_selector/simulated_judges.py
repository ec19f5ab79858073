"""Simulated AI judges: AI labels made from gold labels, for data that comes without a real judge.

They are simulations, not judges: each draws errors from a stated model of mistakes, so a benchmark on
them measures how well the selector finds *that kind* of mistake. Their :meth:`SimulatedJudge.describe`
strings start with ``"simulated:"`` so reports never pass them off as real AI labels.

- :func:`uniform_noise_judge`: every gold label flipped independently with a fixed probability
  (mistakes unrelated to the content; the easy case).
- :func:`length_bias_judge`: prefers the clearly longer response, otherwise mostly right (a systematic
  bias that a reward model trained on the judge's labels learns too; the hard case).

Labels follow :mod:`rlthf_selector.pairs`: int8, +1 = A preferred, -1 = B preferred.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.validation import check_label_vector, check_probability

__all__ = [
    "KNOWN_JUDGE_SPECS",
    "SimulatedJudge",
    "length_bias_judge",
    "parse_judge_spec",
    "response_lengths",
    "uniform_noise_judge",
]


def uniform_noise_judge(gold: Any, *, error_rate: float = 0.25, seed: int = 0) -> np.ndarray:
    """Flip each gold label independently with probability ``error_rate``.

    Parameters
    ----------
    gold : array-like of int, shape (n,)
        Gold labels, +1 or -1 (no unknowns).
    error_rate : float in [0, 1]
    seed : int
        Seed of ``np.random.default_rng``.

    Returns
    -------
    ndarray of int8, shape (n,)
    """
    error_rate = check_probability(error_rate, "error_rate")
    gold = np.asarray(gold)
    if gold.ndim != 1:
        raise ValueError(f"gold must have shape (n,), got {gold.shape}")
    gold = check_label_vector(gold, gold.shape[0], "gold", allow_unknown=False)
    flips = np.random.default_rng(seed).random(gold.shape[0]) < error_rate
    return np.where(flips, -gold, gold).astype(np.int8)


def response_lengths(pairs: PreferencePairs) -> np.ndarray:
    """Character lengths of response A and B, shape (n, 2)."""
    len_a = np.fromiter((len(t) for t in pairs.response_a), dtype=np.int64, count=len(pairs))
    len_b = np.fromiter((len(t) for t in pairs.response_b), dtype=np.int64, count=len(pairs))
    return np.stack([len_a, len_b], axis=1)


def length_bias_judge(
    pairs_or_lengths: PreferencePairs | Any,
    gold: Any,
    *,
    ratio: float = 1.3,
    p_longer: float = 0.8,
    p_correct: float = 0.85,
    seed: int = 0,
) -> np.ndarray:
    """A judge that likes long answers.

    Where one response is more than ``ratio`` times as long (in characters) as the other, it picks the
    longer one with probability ``p_longer``, whatever the gold label. Elsewhere it gives the gold label
    with probability ``p_correct`` and the other label otherwise.

    Parameters
    ----------
    pairs_or_lengths : PreferencePairs or array-like of shape (n, 2)
        The pairs, or the character lengths of response A and B.
    gold : array-like of int, shape (n,)
        Gold labels, +1 or -1.
    ratio : float >= 1
    p_longer, p_correct : float in [0, 1]
    seed : int
        Seed of ``np.random.default_rng``.

    Returns
    -------
    ndarray of int8, shape (n,)
    """
    if not float(ratio) >= 1.0:
        raise ValueError(f"ratio must be >= 1, got {ratio}")
    p_longer = check_probability(p_longer, "p_longer")
    p_correct = check_probability(p_correct, "p_correct")
    if isinstance(pairs_or_lengths, PreferencePairs):
        lengths = response_lengths(pairs_or_lengths)
    else:
        lengths = np.asarray(pairs_or_lengths)
        if lengths.ndim != 2 or lengths.shape[1] != 2:
            raise ValueError(f"lengths must have shape (n, 2), got {lengths.shape}")
        if (lengths < 0).any():
            raise ValueError("lengths must be non-negative")
    n = lengths.shape[0]
    gold = check_label_vector(gold, n, "gold", allow_unknown=False)
    len_a, len_b = lengths[:, 0].astype(float), lengths[:, 1].astype(float)
    a_much_longer = len_a > ratio * len_b
    b_much_longer = len_b > ratio * len_a
    biased = a_much_longer | b_much_longer
    longer = np.where(a_much_longer, 1, -1)
    u = np.random.default_rng(seed).random(n)
    biased_pick = np.where(u < p_longer, longer, -longer)
    fair_pick = np.where(u < p_correct, gold, -gold)
    return np.where(biased, biased_pick, fair_pick).astype(np.int8)


@dataclass(frozen=True)
class SimulatedJudge:
    """A simulated judge bound to its parameters: ``judge(pairs, seed=0)`` gives int8 labels, shape (n,).

    Attributes
    ----------
    kind : str
        ``"uniform"`` or ``"length-bias"``.
    params : dict
        Keyword arguments of the underlying function.
    """

    kind: str
    params: Mapping[str, float] = field(default_factory=dict)

    def __call__(self, pairs: PreferencePairs, *, seed: int = 0) -> np.ndarray:
        gold = pairs.gold_label
        missing = int((gold == 0).sum())
        if missing:
            raise ValueError(f"a simulated judge needs gold labels; {missing} of {len(pairs)} pairs have none")
        if self.kind == "uniform":
            return uniform_noise_judge(gold, seed=seed, **self.params)
        return length_bias_judge(pairs, gold, seed=seed, **self.params)

    def describe(self) -> str:
        """E.g. ``"simulated: uniform 25% flips"``."""
        p = dict(self.params)
        if self.kind == "uniform":
            return f"simulated: uniform {_pct(p['error_rate'])} flips"
        return (
            f"simulated: length-biased (picks the longer response w.p. {p['p_longer']:g} when one is more than "
            f"{p['ratio']:g}x as long, else right w.p. {p['p_correct']:g})"
        )

    @property
    def description(self) -> str:
        return self.describe()


def _pct(x: float) -> str:
    return f"{100 * x:g}%"


_DEFAULTS: dict[str, dict[str, float]] = {
    "uniform": {"error_rate": 0.25},
    "length-bias": {"ratio": 1.3, "p_longer": 0.8, "p_correct": 0.85},
}
_FIRST_POSITIONAL = {"uniform": "error_rate"}
KNOWN_JUDGE_SPECS = (
    "uniform",
    "uniform:0.25",
    "uniform:error_rate=0.25",
    "length-bias",
    "length-bias:ratio=1.3,p_longer=0.8,p_correct=0.85",
)


def parse_judge_spec(spec: str) -> tuple[SimulatedJudge, str]:
    """Parse ``"uniform:0.25"``, ``"length-bias"`` or ``"length-bias:ratio=1.3,p_longer=0.8,p_correct=0.85"``.

    Parameters left out keep their defaults (uniform: ``error_rate=0.25``; length-bias: ``ratio=1.3,
    p_longer=0.8, p_correct=0.85``).

    Returns
    -------
    judge : SimulatedJudge
        Callable as ``judge(pairs, seed=0)`` -> int8 labels, shape (n,), drawn from ``pairs.gold_label``.
    description : str
        ``judge.describe()``, e.g. ``"simulated: uniform 25% flips"``.

    Raises
    ------
    ValueError
        For an unknown judge (listing the known specs), an unknown parameter, or a value out of range.
    """
    if not isinstance(spec, str):
        raise ValueError(f"judge spec must be a string like {KNOWN_JUDGE_SPECS[1]!r}, got {spec!r}")
    name, _, arg_text = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in _DEFAULTS:
        raise ValueError(f"unknown simulated judge {spec!r}; known: {', '.join(repr(s) for s in KNOWN_JUDGE_SPECS)}")
    params = dict(_DEFAULTS[name])
    for k, part in enumerate(p.strip() for p in arg_text.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        if not eq:
            if k > 0 or name not in _FIRST_POSITIONAL:
                raise ValueError(f"judge spec {spec!r}: write parameters as key=value ({', '.join(params)})")
            key, value = _FIRST_POSITIONAL[name], part
        key = key.strip()
        if key not in params:
            raise ValueError(f"judge spec {spec!r}: unknown parameter {key!r}; {name} takes {', '.join(params)}")
        try:
            params[key] = float(value)
        except ValueError:
            raise ValueError(f"judge spec {spec!r}: {key} must be a number, got {value.strip()!r}") from None
    # Validate now, not at the first call.
    if name == "uniform":
        check_probability(params["error_rate"], "error_rate")
    else:
        length_bias_judge(np.zeros((0, 2)), np.zeros(0, dtype=np.int8), **params)
    judge = SimulatedJudge(kind=name, params=params)
    return judge, judge.describe()

