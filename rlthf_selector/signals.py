"""The signals of the AI's mistakes: named per-pair values the mistake model (:mod:`rlthf_selector.mistakes`) reads.

A signal is one small unit in :data:`SIGNALS`: a name, the words the report quotes, a function from a
:class:`SignalContext` to per-pair values (NaN where unknown; larger = the AI label more suspect) and the prior's
weight. Adding a signal is adding one :func:`register_signal` entry.

The prior weights are set by reasoning, not fitted to any benchmark data set (README of ``benchmarks/``):
another verdict against the AI label counts most: the reward model's, as RLTHF assumes, a second judge's, or the
verdicts on the prompt's other pairs. The reward model's weak agreement, a judge that chose the shorter answer, an
inconsistent or unsure judge each add a little. Everything else starts at zero and moves only as far as the answers
justify.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from rlthf_selector.pairs import PreferencePairs, unique_index


@dataclass
class SignalContext:
    """What the signals read, for n pairs.

    Attributes
    ----------
    pairs : PreferencePairs
    oriented_gap : ndarray of float64, shape (n,)
        The out-of-fold reward gap in the AI label's orientation (> 0: the reward model agrees with the AI).
    region : ndarray of int8, shape (n,), optional
        :class:`~rlthf_selector.selection.Region` of each pair on the reward curve.
    """

    pairs: PreferencePairs
    oriented_gap: np.ndarray
    region: np.ndarray | None = None


@dataclass(frozen=True)
class SignalSpec:
    """One registered signal: its name, the words the report quotes, its prior weight and how to compute it."""

    name: str
    description: str
    prior_weight: float
    compute: Callable[[SignalContext], np.ndarray | None]


@dataclass
class Signal:
    """A signal's values on a pool.

    Attributes
    ----------
    name, description : str
    prior_weight : float
        Log-odds of a mistake per standard deviation of the signal, before any answer.
    values : ndarray of float64, shape (n,)
        Larger = the AI label more suspect; NaN where the pair has no value.
    """

    name: str
    description: str
    prior_weight: float
    values: np.ndarray

    @property
    def available(self) -> np.ndarray:
        """Shape (n,) bool: where the signal has a value."""
        return ~np.isnan(self.values)


#: The registered signals, in the order they enter the design matrix.
SIGNALS: dict[str, SignalSpec] = {}


def register_signal(name: str, description: str, *, prior_weight: float = 0.0) -> Callable:
    """Decorator: register ``compute(context) -> values or None`` (None = the data carry no such signal)."""

    def wrap(compute: Callable[[SignalContext], np.ndarray | None]) -> Callable:
        if name in SIGNALS:
            raise ValueError(f"a signal named {name!r} is registered already")
        SIGNALS[name] = SignalSpec(name, description, float(prior_weight), compute)
        return compute

    return wrap


@register_signal("rm_contradicts", "the reward model contradicts the AI label (a low reward gap)", prior_weight=0.8)
def _rm_contradicts(ctx: SignalContext) -> np.ndarray:
    return -np.asarray(ctx.oriented_gap, dtype=np.float64)


# With the gap itself, this spans the gap and |gap| alike, but its weight moves only with answers where the reward
# model agrees: a queue of contradicted pairs that finds many mistakes cannot tilt |gap| until the pairs the model
# agrees with most look suspect too (as a -|gap| column did, on PandaLM).
@register_signal("rm_agrees_weakly", "the reward model agrees with the AI label only weakly (a small positive gap)",
                 prior_weight=0.3)
def _rm_agrees_weakly(ctx: SignalContext) -> np.ndarray:
    return -np.maximum(np.asarray(ctx.oriented_gap, dtype=np.float64), 0.0)


def chose_shorter(pairs: PreferencePairs) -> np.ndarray:
    """log(length of the response the AI rejected / length of the one it chose), shape (n,): > 0 where the AI chose
    the shorter response, 0 where it gave no label (the ``length`` rival of ``rlthf simulate`` ranks by it too)."""
    len_a = np.fromiter((len(t) for t in pairs.response_a), dtype=np.float64, count=len(pairs))
    len_b = np.fromiter((len(t) for t in pairs.response_b), dtype=np.float64, count=len(pairs))
    return -np.log((len_a + 1.0) / (len_b + 1.0)) * pairs.ai_label


# The prior leans on this cue because raters of helpfulness favour the longer answer (on PandaLM it alone ranks
# GPT-3.5's mistakes at AUC 0.69). Its direction is the data's, not a law: in HH-RLHF harmless-base the safer answer
# is often the shorter refusal, and with a judge that errs at random the cue marks a *right* label (AUC 0.41-0.42 on
# the unlabelled pairs). About a hundred answers do not turn it there (at 6 percent its weight is -0.2 to +0.4, above
# zero on five seeds of six), nor with a prior width per signal: among the pairs the queue asks, the cue looks neutral.
@register_signal("ai_chose_shorter", "the AI chose the shorter response", prior_weight=0.5)
def _ai_chose_shorter(ctx: SignalContext) -> np.ndarray:
    return chose_shorter(ctx.pairs)


def other_verdicts_against(pairs: PreferencePairs) -> np.ndarray:
    """How far the verdicts on the other pairs of the same prompt favour the response the AI rejected, shape (n,).

    Where a prompt has several responses compared in several pairs, each response collects net wins (wins minus
    losses) from the prompt's *other* pairs, each judged by its human answer where there is one and by the AI
    otherwise. The value is the net wins of the response the AI rejected minus those of the one it chose: > 0
    where the other verdicts rank the rejected response higher, so the AI's verdict breaks their order.

    Returns
    -------
    ndarray of float64, shape (n,)
        NaN where the pair has no AI label or neither response is compared in another judged pair.
    """
    n = len(pairs)
    out = np.full(n, np.nan)
    # Only pairs with a response that appears in another pair of the same prompt can have a value. Hashes find them
    # cheaply (a collision only lets a pair through to the exact count below), so a pool of a million pairs with
    # one pair per prompt, or with every response new, costs a second and no index of its texts.
    key_hash = np.concatenate([np.fromiter(map(hash, zip(pairs.prompt, side)), np.int64, n)
                               for side in (pairs.response_a, pairs.response_b)])
    _, inverse, count = np.unique(key_hash, return_inverse=True, return_counts=True)
    repeated = count[inverse] > 1
    shared = np.flatnonzero(repeated[:n] | repeated[n:])
    if shared.size == 0:
        return out
    responses, (side_a, side_b) = unique_index(*(list(zip(pairs.prompt[shared], side[shared]))
                                                 for side in (pairs.response_a, pairs.response_b)))
    m = len(responses)  # distinct (prompt, response)
    human, ai = pairs.human_label[shared].astype(np.int64), pairs.ai_label[shared].astype(np.int64)
    verdict = np.where(human != 0, human, ai)
    judged = (verdict != 0) & (side_a != side_b)  # a pair of two identical responses ranks nothing
    winner = np.where(verdict > 0, side_a, side_b)[judged]
    loser = np.where(verdict > 0, side_b, side_a)[judged]
    net_wins = np.bincount(winner, minlength=m) - np.bincount(loser, minlength=m)
    times_judged = np.bincount(np.concatenate([winner, loser]), minlength=m)
    chosen, rejected = np.where(ai > 0, side_a, side_b), np.where(ai > 0, side_b, side_a)
    # Take the pair's own verdict out: it moved the difference by -2 where it sides with the AI, +2 where not.
    against = net_wins[rejected] - net_wins[chosen] + 2 * np.where(judged, verdict * ai, 0)
    compared_elsewhere = (times_judged[side_a] - judged > 0) | (times_judged[side_b] - judged > 0)
    out[shared] = np.where((ai != 0) & (side_a != side_b) & compared_elsewhere, against, np.nan)
    return out


# The same kind of evidence as a disagreeing second judge, so the same prior weight. On PandaLM (170 instructions,
# about five pairs each) the AI's own other verdicts alone rank GPT-3.5's mistakes at AUC 0.78, above the reward
# gap; where every prompt has a single pair (HH-RLHF) the signal does not exist. Human answers take the AI's place
# as they come, so an answer on one pair speaks for its siblings.
@register_signal("other_verdicts_disagree",
                 "the verdicts on the prompt's other pairs rank the response the AI rejected higher", prior_weight=0.8)
def _other_verdicts_disagree(ctx: SignalContext) -> np.ndarray | None:
    values = other_verdicts_against(ctx.pairs)
    return None if np.isnan(values).all() else values


def _evidence(name: str) -> Callable[[SignalContext], np.ndarray | None]:
    def compute(ctx: SignalContext) -> np.ndarray | None:
        from rlthf_selector.evidence import doubt_components

        return doubt_components(ctx.pairs).get(name)

    return compute


register_signal("second_judge_disagrees", "the second judge disagrees with the AI", prior_weight=0.8)(_evidence("second"))
register_signal("judge_inconsistent", "the judge changed its verdict when A and B were swapped",
                prior_weight=0.5)(_evidence("swap"))
register_signal("judge_unsure", "the judge was unsure (its own doubt)", prior_weight=0.3)(_evidence("explicit"))
register_signal("judge_low_confidence", "the judge's confidence was low", prior_weight=0.3)(_evidence("confidence"))
register_signal("judges_disagree", "the judges voted against each other", prior_weight=0.5)(_evidence("disagreement"))


def compute_signals(context: SignalContext, *, names: Sequence[str] | None = None) -> list[Signal]:
    """Every registered signal the data carry (or those ``names``), in registry order.

    Raises
    ------
    ValueError
        An unknown name, or a signal whose values do not have one entry per pair.
    """
    wanted = list(SIGNALS) if names is None else list(names)
    unknown = [s for s in wanted if s not in SIGNALS]
    if unknown:
        raise ValueError(f"unknown signals {unknown}: choose from {', '.join(SIGNALS)}")
    n = len(context.pairs)
    out = []
    for name in wanted:
        spec = SIGNALS[name]
        values = spec.compute(context)
        if values is None:
            continue
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (n,):
            raise ValueError(f"signal {name!r} gave shape {values.shape} for {n} pairs")
        out.append(Signal(spec.name, spec.description, spec.prior_weight, values))
    return out


__all__ = [
    "SIGNALS",
    "Signal",
    "SignalContext",
    "SignalSpec",
    "chose_shorter",
    "compute_signals",
    "other_verdicts_against",
    "register_signal",
]
