"""Analysis of the reward-distribution curve: reward gaps sorted descending, and its elbow, knee
and reflection point.

Each pair's reward gap is taken in the orientation of its current label, so a large positive gap
means the reward model agrees confidently with the label and a large negative gap means it
contradicts it. Sorted descending, the gaps usually trace a reversed S: a steep head (confident
agreement), a long flat middle and a steep tail (confident contradiction).

- The **elbow** is where the steep head flattens: the transition into the high-accuracy region.
- The **knee** is where the flat middle turns into the steep tail: the transition into the
  low-accuracy region.
- The **reflection point** mirrors the elbow to the other side of zero. Pairs beyond it are the
  most contradicted ones and are flipped; pairs between the knee and it go to humans.

The paper (arXiv 2502.13417) names these points but not their formulas, so each choice here is a
named strategy (:class:`~rlthf_selector.config.CurveConfig`). All intermediate arrays are kept in
:class:`CurveAnalysis` for plotting and debugging, as kneed does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlthf_selector.config import CurveConfig
from rlthf_selector.validation import check_finite_vector

#: The curve is resampled to at most this many points before detection: detection cost stays
#: constant in N and the detectors see the curve's shape, not its noise.
_DETECTION_POINTS = 1000


@dataclass
class CurveAnalysis:
    """The sorted reward-gap curve and the points found on it.

    Attributes
    ----------
    order : ndarray of int64, shape (n,)
        Pair positions sorted by gap, descending: ``sorted_gap = gap[order]``.
    sorted_gap : ndarray of float64, shape (n,)
    x : ndarray of float64, shape (m,)
        Curve positions (fractions of N in [0, 1]) at which detection ran, m <= 1000.
    smoothed_gap : ndarray of float64, shape (m,)
        Moving-average of the sorted gap, sampled at ``x``.
    derivative : ndarray of float64, shape (m,)
        First derivative of ``smoothed_gap`` with respect to ``x`` (negative: the curve falls).
    plateau_index : int
        Curve index where the smoothed slope is flattest; the elbow is searched left of it and the
        knee right of it.
    elbow_index, knee_index, reflection_index : int
        Curve indices (into ``sorted_gap``). Pairs ``order[knee_index:reflection_index]`` are the
        human band and ``order[reflection_index:]`` the flip region. ``reflection_index`` is never
        below ``knee_index``; it equals N when nothing is to be flipped.
    elbow_gap, knee_gap, reflection_gap : float
        Gap values at those points (``reflection_gap`` is the threshold, ``-elbow_gap`` by default).
    detector : str
        The detector that produced the points (may name a fallback).
    warnings : list of str
        Why a fallback was used, in plain words.
    """

    order: np.ndarray
    sorted_gap: np.ndarray
    x: np.ndarray
    smoothed_gap: np.ndarray
    derivative: np.ndarray
    plateau_index: int
    elbow_index: int
    knee_index: int
    reflection_index: int
    elbow_gap: float
    knee_gap: float
    reflection_gap: float
    detector: str
    warnings: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.sorted_gap.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """The points and fractions as JSON-able values (no per-pair arrays)."""
        n = max(self.n, 1)
        return {
            "n": self.n,
            "detector": self.detector,
            "elbow_index": self.elbow_index,
            "knee_index": self.knee_index,
            "reflection_index": self.reflection_index,
            "elbow_gap": float(self.elbow_gap),
            "knee_gap": float(self.knee_gap),
            "reflection_gap": float(self.reflection_gap),
            "human_band_fraction": (self.reflection_index - self.knee_index) / n,
            "flip_fraction": (self.n - self.reflection_index) / n,
            "warnings": list(self.warnings),
        }


def moving_average(y: np.ndarray, *, window: int) -> np.ndarray:
    """Centred moving average with edge windows shrunk to fit, shape preserved.

    Parameters
    ----------
    y : ndarray, shape (n,)
    window : int
        Window width (made odd); 1 returns a copy.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.shape[0]
    half = max(int(window), 1) // 2
    if half == 0 or n == 0:
        return y.copy()
    csum = np.concatenate([[0.0], np.cumsum(y)])
    idx = np.arange(n)
    lo = np.clip(idx - half, 0, n)
    hi = np.clip(idx + half + 1, 0, n)
    return (csum[hi] - csum[lo]) / (hi - lo)


def _is_flat(y: np.ndarray) -> bool:
    """True when ``y`` varies by less than floating-point noise (cumsum smoothing leaves ~1e-16)."""
    return y.shape[0] == 0 or float(np.ptp(y)) <= 1e-9 * (1.0 + float(np.abs(y).max()))


def _kneed_point(x: np.ndarray, y: np.ndarray, *, curve: str) -> int | None:
    """Index of kneed's knee on a decreasing segment, or None when it finds none."""
    from kneed import KneeLocator  # light, but only needed here

    if x.shape[0] < 3 or _is_flat(y):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kneed warns when it finds no knee; we report that ourselves
        locator = KneeLocator(x, y, curve=curve, direction="decreasing", interp_method="interp1d")
    if locator.knee is None:
        return None
    return int(np.argmin(np.abs(x - locator.knee)))


def _curvature_point(derivative: np.ndarray, *, lo: int, hi: int, convex: bool) -> int | None:
    """Index in [lo, hi) where the slope changes fastest: max of the second derivative for a convex
    segment (the head flattening), min for a concave one (the tail steepening)."""
    if hi - lo < 3:
        return None
    second = np.gradient(derivative[lo:hi])
    if _is_flat(second):
        return None
    return lo + int(np.argmax(second) if convex else np.argmin(second))


def _warn(notes: list[str]) -> None:
    for note in notes:
        warnings.warn(f"reward curve: {note}", RuntimeWarning, stacklevel=3)


def analyze_curve(reward_gap: np.ndarray, *, config: CurveConfig | None = None) -> CurveAnalysis:
    """Sort reward gaps and locate elbow, knee and reflection point.

    Parameters
    ----------
    reward_gap : ndarray of float, shape (n,)
        Each pair's reward gap in the orientation of its current label.
    config : CurveConfig, optional
        Detector, smoothing and reflection strategy.

    Returns
    -------
    CurveAnalysis
        With every intermediate array. Never raises on an irregular curve: tiny N, a flat curve,
        all gaps positive or a detector that finds nothing give a documented fallback and a
        message in ``warnings``.
    """
    config = config or CurveConfig()
    gap = check_finite_vector(reward_gap, name="reward_gap")
    n = gap.shape[0]
    order = np.argsort(-gap, kind="stable")
    sorted_gap = gap[order]
    notes: list[str] = []

    if n < max(config.min_pairs, 3):
        notes.append(
            f"only {n} pairs (< min_pairs={config.min_pairs}): curve not analysed, every pair is human-eligible"
        )
        _warn(notes)
        empty = np.zeros(0)
        return CurveAnalysis(
            order=order, sorted_gap=sorted_gap, x=empty, smoothed_gap=empty, derivative=empty,
            plateau_index=0, elbow_index=0, knee_index=0, reflection_index=n,
            elbow_gap=float(sorted_gap[0]) if n else 0.0, knee_gap=float(sorted_gap[0]) if n else 0.0,
            reflection_gap=-np.inf, detector="none (too few pairs)", warnings=notes,
        )

    window = max(5, int(round(config.smoothing * n)))
    smoothed_full = moving_average(sorted_gap, window=window)
    m = min(n, _DETECTION_POINTS)
    sample = np.unique(np.round(np.linspace(0, n - 1, m)).astype(np.int64))
    x = sample / (n - 1)
    smoothed = smoothed_full[sample]
    derivative = np.gradient(smoothed, x)

    # The plateau splits the curve: the head (elbow side) and the tail (knee side).
    plateau = int(np.argmax(derivative[1:-1])) + 1 if sample.shape[0] > 2 else 0
    elbow_s = knee_s = None
    detector = config.detector
    if config.detector == "kneed":
        elbow_s = _kneed_point(x[: plateau + 1], smoothed[: plateau + 1], curve="convex")
        knee_rel = _kneed_point(x[plateau:], smoothed[plateau:], curve="concave")
        knee_s = None if knee_rel is None else plateau + knee_rel
    if elbow_s is None or knee_s is None:
        if config.detector == "kneed":
            notes.append("kneed found no elbow or knee; used the curvature of the first derivative instead")
            detector = "kneed -> derivative"
        # Skip the ends, where the shrinking smoothing window bends the curve by itself.
        edge = min(int(np.ceil(window / 2 * sample.shape[0] / n)), sample.shape[0] // 4)
        if elbow_s is None:
            elbow_s = _curvature_point(derivative, lo=edge, hi=plateau + 1, convex=True)
        if knee_s is None:
            knee_s = _curvature_point(derivative, lo=plateau, hi=sample.shape[0] - edge, convex=False)
    if elbow_s is None:
        notes.append("no elbow found (flat head): elbow set to the curve's start, so nothing is flipped")
        elbow_s = 0
    if knee_s is None:
        # Without a knee, the RM's disagreement is the only boundary left: pairs it contradicts.
        first_negative = int(np.searchsorted(-sorted_gap, 0.0, side="right"))
        notes.append("no knee found (flat tail): knee set to the first pair with a non-positive gap")
        knee_index = min(first_negative, n)
    else:
        knee_index = int(sample[knee_s])
    elbow_index = int(sample[elbow_s])
    knee_index = max(knee_index, elbow_index)

    elbow_gap = float(sorted_gap[elbow_index])
    if config.reflection == "gap":
        if elbow_gap <= 0:
            notes.append(f"elbow gap {elbow_gap:.3g} is not positive: no reflection point, nothing is flipped")
            reflection_gap = -np.inf
            reflection_index = n
        else:
            reflection_gap = -elbow_gap
            reflection_index = int(np.searchsorted(-sorted_gap, elbow_gap, side="left"))
    elif config.reflection == "index":
        reflection_index = n - 1 - elbow_index
        reflection_gap = float(sorted_gap[reflection_index])
    elif config.reflection == "none":
        # No reflection point: the human band runs to the end of the curve and nothing is flipped by position.
        reflection_index = n
        reflection_gap = -np.inf
    else:
        raise ValueError(f"unknown reflection strategy {config.reflection!r}: use 'gap', 'index' or 'none'")
    if reflection_index < knee_index:
        notes.append("reflection point lies left of the knee: moved to the knee (no pair is flipped before the knee)")
        reflection_index = knee_index
    if reflection_index >= n and config.reflection != "none" and not any("flipped" in s for s in notes):
        notes.append("all gaps lie above the reflection point: nothing is flipped")

    _warn(notes)
    return CurveAnalysis(
        order=order, sorted_gap=sorted_gap, x=x, smoothed_gap=smoothed, derivative=derivative,
        plateau_index=int(sample[plateau]), elbow_index=elbow_index, knee_index=knee_index,
        reflection_index=int(reflection_index), elbow_gap=elbow_gap,
        knee_gap=float(sorted_gap[min(knee_index, n - 1)]), reflection_gap=float(reflection_gap),
        detector=detector, warnings=notes,
    )
