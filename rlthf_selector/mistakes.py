"""The mistake model: the probability that each pair's AI label is wrong, learned from the human answers.

Every human answer says whether the AI was wrong on that pair. The mistake model reads a matrix of named
*signals* (the reward gap, the length cue, the other verdicts on the same prompt, each piece of the judge's own
evidence, ...) and fits a Bayesian logistic regression of "the AI was wrong" on them, shrunk toward a prior that
needs no answer at all. It decides which pairs are asked (highest expected gain first), which AI labels are flipped
(only where the lower confidence bound on P(wrong) is above one half) and it says in plain words which signals mark
the AI's mistakes on the data in front of it.

The signals and their prior weights live in :mod:`rlthf_selector.signals`; this module fits, predicts and explains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from rlthf_selector.config import SelectionConfig
from rlthf_selector.pairs import PreferencePairs
from rlthf_selector.reward_model import _sigmoid
from rlthf_selector.signals import Signal

#: The AI's error rate the prior assumes before any answer, and how far (log-odds s.d.) the answers may move it:
#: judges in the field are wrong on roughly one pair in five to one in four; the control draws pin it down fast.
PRIOR_ERROR_RATE = 0.2
PRIOR_SD_INTERCEPT = 1.0
#: The widths (log-odds per s.d. of a signal) the prior on the signals' weights may take; the answers choose one by
#: the Laplace evidence (:func:`fit_mistake_model`).
PRIOR_SD_GRID = (0.125, 0.25, 0.5, 1.0, 2.0)


@dataclass
class Design:
    """The standardised signal matrix the mistake model reads.

    Attributes
    ----------
    matrix : ndarray of float64, shape (n, d)
        One column per usable signal, standardised over the pairs with an AI label (mean 0, sd 1; 0 where a value
        is missing), and one column per signal that is missing on some pairs only (1 where missing).
    names, descriptions : list of str, length d
    prior_weight : ndarray of float64, shape (d,)
    """

    matrix: np.ndarray
    names: list[str]
    descriptions: list[str]
    prior_weight: np.ndarray


def design_matrix(signals: Sequence[Signal], *, scope: np.ndarray) -> Design:
    """Standardise the signals over ``scope`` (bool, shape (n,)) into a :class:`Design`.

    A signal that is constant over the scope carries nothing and is left out; a signal missing on part of the scope
    adds a missingness column, so that "no value" can itself mark mistakes (a second judge that gave no verdict).
    """
    scope = np.asarray(scope, dtype=bool)
    columns: list[np.ndarray] = []
    names: list[str] = []
    descriptions: list[str] = []
    prior: list[float] = []
    n = scope.shape[0]
    for s in signals:
        v = s.values
        known = scope & ~np.isnan(v)
        if known.sum() < 2:
            continue
        mean = float(v[known].mean())
        sd = float(v[known].std())
        if sd > 1e-12:
            columns.append(np.where(np.isnan(v), 0.0, (np.nan_to_num(v, nan=mean) - mean) / sd))
            names.append(s.name)
            descriptions.append(s.description)
            prior.append(s.prior_weight)
        missing = np.isnan(v)
        if missing[scope].any() and not missing[scope].all():
            columns.append(missing.astype(np.float64))
            names.append(f"{s.name}:missing")
            descriptions.append(f"no value for: {s.description}")
            prior.append(0.0)
    matrix = np.column_stack(columns) if columns else np.zeros((n, 0))
    return Design(matrix, names, descriptions, np.asarray(prior, dtype=np.float64))


def _fisher_information(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The logistic log-likelihood's Fisher information (negative Hessian), shape (d, d), over the rows of ``x`` (m, d)."""
    return (x * (p * (1.0 - p))[:, None]).T @ x


def fit_logistic_map(x: np.ndarray, y: np.ndarray, *, prior_mean: np.ndarray, prior_precision: np.ndarray,
                     max_iter: int = 50, tol: float = 1e-8) -> tuple[np.ndarray, np.ndarray, float]:
    """Maximum a posteriori logistic regression under a Gaussian prior, by Newton's method.

    Parameters
    ----------
    x : ndarray, shape (m, p)
        Rows to fit on, an intercept column included if wanted.
    y : ndarray of bool or {0, 1}, shape (m,)
    prior_mean, prior_precision : ndarray, shape (p,)
        The prior N(prior_mean, diag(1 / prior_precision)); precisions > 0.

    Returns
    -------
    coef : ndarray, shape (p,)
    covariance : ndarray, shape (p, p)
        The Laplace approximation of the posterior covariance (inverse Hessian at the mode).
    log_evidence : float
        The Laplace approximation of log p(y | x, prior): how well the prior, not only the fit, explains the answers.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mean = np.asarray(prior_mean, dtype=np.float64)
    prec = np.asarray(prior_precision, dtype=np.float64)
    if not (prec > 0).all():
        raise ValueError("prior precisions must be > 0")
    def objective(c: np.ndarray) -> float:
        z = x @ c
        # -log likelihood of a logistic model (stable form) plus the Gaussian prior's penalty.
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(prec * (c - mean) ** 2))

    coef = mean.copy()
    value = objective(coef)
    for _ in range(max_iter):
        p = _sigmoid(x @ coef)
        grad = x.T @ (p - y) + prec * (coef - mean)
        hess = _fisher_information(x, p) + np.diag(prec)
        step = np.linalg.solve(hess, grad)
        # Newton with step halving: the objective is convex, but a full step can overshoot where p saturates.
        t = 1.0
        while t > 1e-6:
            trial = coef - t * step
            trial_value = objective(trial)
            if trial_value <= value:
                break
            t *= 0.5
        coef, value = trial, trial_value
        if float(np.abs(t * step).max()) < tol:
            break
    p = _sigmoid(x @ coef)
    hess = _fisher_information(x, p) + np.diag(prec)
    # log p(y) ~ log p(y | w*) + log N(w*; prior) + (p/2) log 2 pi - (1/2) log |H|  (Laplace, at the mode w*).
    log_evidence = -value + 0.5 * float(np.sum(np.log(prec))) - 0.5 * float(np.linalg.slogdet(hess)[1])
    return coef, np.linalg.inv(hess), log_evidence


@dataclass
class MistakeModel:
    """A fitted mistake model on one design.

    Attributes
    ----------
    names, descriptions : list of str, length d
        The design's columns.
    coef : ndarray, shape (d + 1,)
        Intercept first, then one log-odds weight per standardised column.
    covariance : ndarray, shape (d + 1, d + 1)
        Posterior covariance (Laplace).
    prior_mean : ndarray, shape (d + 1,)
    n_answers, n_mistakes : int
        The answers it was fitted on, and how many of them overturned the AI.
    confidence : float
        One-sided level of :meth:`predict`'s lower bound.
    prior_sd : float
        The prior's width the answers favour: the geometric mean over :data:`PRIOR_SD_GRID`, weighted by each width's
        Laplace evidence.
    tight_coef, tight_covariance : ndarray, optional
        The posterior under the tightest width of the grid, the prior's own verdict (None before any answer):
        :meth:`predict`'s lower bound is the smaller of its bound and the mixture's.
    """

    names: list[str]
    descriptions: list[str]
    coef: np.ndarray
    covariance: np.ndarray
    prior_mean: np.ndarray
    n_answers: int
    n_mistakes: int
    confidence: float
    prior_sd: float
    tight_coef: np.ndarray | None = None
    tight_covariance: np.ndarray | None = None

    def predict(self, matrix: np.ndarray, *, more_answers: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """P(AI label wrong) (the mixture over prior widths) and its lower confidence bound (the smaller of the
        mixture's and the tightest width's) for each row of ``matrix`` (shape (n, d)).

        Parameters
        ----------
        more_answers : int
            0: the bound the answers so far give (0 before any answer, so the prior alone flips nothing). k > 0: the
            bound expected once k more answers are in, the posterior precision grown by k answers' Fisher information
            (averaged over the rows): which pairs the rest of the budget will likely let the model flip.

        Returns
        -------
        prob, lower : ndarray of float64, shape (n,)
        """
        from scipy.stats import norm

        x = _with_intercept(matrix)
        prob = _sigmoid(x @ self.coef)
        if more_answers < 0:
            raise ValueError(f"more_answers must be >= 0, got {more_answers}")
        if self.n_answers == 0 and more_answers == 0:  # the prior alone never flips a label
            return prob, np.zeros(x.shape[0])
        z = float(norm.ppf(self.confidence))
        if more_answers:
            # k more answers add about k times one answer's Fisher information, averaged over the pool, to the
            # posterior precision (the Laplace Hessian): what the answers will likely know by then, whatever they are.
            information = more_answers * _fisher_information(x, prob) / max(x.shape[0], 1)
        # A flip needs the answers' support (the mixture over widths, weighted by how well each explains them) and the
        # prior's (the tightest width): a few dozen answers that happen to make a weak signal look strong can widen
        # the favoured prior; they cannot move the tight one. The widest width alone is not asked: after a dozen
        # answers its bound says only that a dozen answers are few, and it held back the flips the judge's own
        # evidence supports (PandaLM-7B at 2 percent).
        posteriors = [(self.coef, self.covariance)]
        if self.tight_coef is not None and self.tight_covariance is not None:
            posteriors.append((self.tight_coef, self.tight_covariance))
        lower = np.full(x.shape[0], np.inf)
        for coef, cov in posteriors:
            if more_answers:
                cov = np.linalg.inv(np.linalg.inv(cov) + information)
            sd = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", x, cov, x), 0.0))
            lower = np.minimum(lower, x @ coef - z * sd)
        return prob, _sigmoid(lower)

    def reasons(self, matrix: np.ndarray, *, most: int = 2, at_least: float = 0.2) -> list[str]:
        """Why each row's AI label is suspect, in words: the signals that raise its log-odds of a mistake most
        (weight x standardised value, at least ``at_least``), strongest first, at most ``most``, joined by "; ".
        An empty string where none does (a pair asked as a control draw, or one the model trusts).

        Parameters
        ----------
        matrix : ndarray, shape (k, d)
            Rows of the design the model was fitted on.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        push = matrix * self.coef[1:]
        words = [d.split(" (")[0] for d in self.descriptions]  # without the bracketed gloss: a column's width
        keep = [not n.endswith(":missing") for n in self.names]
        out = []
        for row in push:
            order = [j for j in np.argsort(-row, kind="stable") if keep[j] and row[j] >= at_least][:most]
            out.append("; ".join(words[j] for j in order))
        return out

    def weights(self, *, confidence: float = 0.9) -> list[dict[str, Any]]:
        """Each column's learned weight with a two-sided interval, strongest first (JSON-able)."""
        from scipy.stats import norm

        z = float(norm.ppf(0.5 + confidence / 2.0))
        sd = np.sqrt(np.diag(self.covariance))[1:]
        rows = [{"signal": name, "description": desc, "weight": float(w), "lower": float(w - z * s),
                 "upper": float(w + z * s), "prior": float(p)}
                for name, desc, w, s, p in zip(self.names, self.descriptions, self.coef[1:], sd, self.prior_mean[1:])]
        return sorted(rows, key=lambda r: -abs(r["weight"]))

    def explain(self, *, confidence: float = 0.9) -> str:
        """What the model learned, in plain words: which signals mark the AI's mistakes on this data.

        A signal is a sign of the AI's mistakes when its weight's whole interval lies above 0, of a right label when it
        lies below 0; the rest are not yet clear. Before any answer it names what the prior leans on.
        """
        rows = [r for r in self.weights(confidence=confidence) if not r["signal"].endswith(":missing")]
        if self.n_answers == 0:
            return "No human answers yet: the queue follows the prior (" + _phrase(
                [r["description"] for r in sorted(rows, key=lambda r: -r["prior"]) if r["prior"] > 0][:3]) + ")."
        marks = [r for r in rows if r["lower"] > 0]
        against = [r for r in rows if r["upper"] < 0]
        unclear = [r for r in rows if r["lower"] <= 0 <= r["upper"] and r["prior"] > 0]
        parts = [f"From {self.n_answers} human answers ({self.n_mistakes} overturned the AI)."]
        if marks:
            parts.append("Signs of the AI's mistakes on this data: " + "; ".join(
                f"{r['description']} (odds {_odds(r['weight'])} per s.d.)" for r in marks) + ".")
        if against:
            parts.append("Signs of a right AI label: " + "; ".join(
                f"{r['description']} (odds {_odds(r['weight'])} per s.d.)" for r in against) + ".")
        if unclear:
            parts.append("Not yet clear: " + "; ".join(r["description"] for r in unclear[:3]) + ".")
        if not marks and not against:
            parts.append("No signal marks the AI's mistakes clearly yet.")
        return " ".join(parts)

    def to_dict(self, *, confidence: float = 0.9) -> dict[str, Any]:
        return {"answers": self.n_answers, "mistakes": self.n_mistakes, "intercept": float(self.coef[0]),
                "prior_sd": self.prior_sd,
                "weights": self.weights(confidence=confidence), "explanation": self.explain(confidence=confidence)}


def _odds(weight: float) -> str:
    """A log-odds weight as an odds factor: x2.4, or /2.4 for a weight below 0."""
    return ("x" if weight >= 0 else "/") + f"{float(np.exp(abs(weight))):.1f}"


def _phrase(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _with_intercept(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    return np.column_stack([np.ones(matrix.shape[0]), matrix])


def fit_mistake_model(design: Design, *, answered: np.ndarray, wrong: np.ndarray,
                      config: SelectionConfig | None = None) -> MistakeModel:
    """Fit the mistake model on the answered pairs, shrunk toward the prior.

    Parameters
    ----------
    design : Design
        Of n pairs.
    answered : ndarray of bool, shape (n,)
        Pairs with a human answer and an AI label.
    wrong : ndarray of bool, shape (n,)
        Where the human overturned the AI (read where ``answered``).
    config : SelectionConfig, optional

    Returns
    -------
    MistakeModel
        With no answer, the prior itself (its covariance the prior's).
    """
    config = config or SelectionConfig()
    answered = np.asarray(answered, dtype=bool)
    wrong = np.asarray(wrong, dtype=bool)
    n, d = design.matrix.shape
    if answered.shape != (n,) or wrong.shape != (n,):
        raise ValueError(f"answered {answered.shape} and wrong {wrong.shape} must have shape ({n},)")
    if not 0.5 <= config.flip_confidence <= 1.0:
        raise ValueError(f"SelectionConfig.flip_confidence must be in [0.5, 1], got {config.flip_confidence}")
    prior_mean = np.concatenate([[np.log(PRIOR_ERROR_RATE / (1.0 - PRIOR_ERROR_RATE))], design.prior_weight])
    x = _with_intercept(design.matrix[answered])
    y = wrong[answered]

    def precision(sd: float) -> np.ndarray:
        return np.concatenate([[1.0 / PRIOR_SD_INTERCEPT ** 2], np.full(d, 1.0 / sd ** 2)])

    prior_sd = PRIOR_SD_GRID[len(PRIOR_SD_GRID) // 2]
    coef, cov = prior_mean.copy(), np.diag(1.0 / precision(prior_sd))
    tight_coef = tight_cov = None
    if x.shape[0]:
        # The prior's width is not fixed: each width on the grid is weighted by how well it explains the answers
        # (its Laplace evidence; a flat prior over the grid) and the posteriors are merged into one Gaussian with the
        # mixture's mean and covariance, which ranks the queue. Answers that agree with the prior keep it tight;
        # answers that contradict it (a judge whose bias the reward model copied) widen it, so they win. The tightest
        # width's own posterior is kept: a flip's bound must hold under it too (MistakeModel.predict).
        fits = [fit_logistic_map(x, y, prior_mean=prior_mean, prior_precision=precision(sd)) for sd in PRIOR_SD_GRID]
        log_evidence = np.array([f[2] for f in fits])
        weight = np.exp(log_evidence - log_evidence.max())
        weight /= weight.sum()
        coef = np.sum([w * f[0] for w, f in zip(weight, fits)], axis=0)
        cov = np.sum([w * (f[1] + np.outer(f[0] - coef, f[0] - coef)) for w, f in zip(weight, fits)], axis=0)
        prior_sd = float(np.exp(np.sum(weight * np.log(PRIOR_SD_GRID))))
        tight_coef, tight_cov, _ = fits[int(np.argmin(PRIOR_SD_GRID))]
    return MistakeModel(names=list(design.names), descriptions=list(design.descriptions), coef=coef, covariance=cov,
                        prior_mean=prior_mean, n_answers=int(answered.sum()), n_mistakes=int((y != 0).sum()),
                        confidence=config.flip_confidence, prior_sd=prior_sd, tight_coef=tight_coef,
                        tight_covariance=tight_cov)


@dataclass
class MistakeEstimate:
    """The mistake model's verdict on a pool. Arrays have shape (n,).

    Attributes
    ----------
    prob : float64, P(the AI label is wrong); NaN where the pair has no AI label.
    lower : float64, its one-sided lower confidence bound (``SelectionConfig.flip_confidence``): what decides a flip.
    lower_ahead : float64, the bound expected once the rest of the budget is answered (``more_answers``): which pairs
        will likely be flipped by then, so that the queue need not ask them.
    model : MistakeModel
    design : Design
    """

    prob: np.ndarray
    lower: np.ndarray
    lower_ahead: np.ndarray
    model: MistakeModel
    design: Design = field(repr=False)


def estimate_mistakes(signals: Sequence[Signal], pairs: PreferencePairs, *, more_answers: int = 0,
                      config: SelectionConfig | None = None) -> MistakeEstimate:
    """Fit on every human answer in ``pairs`` (queue, control and any other alike) and score every pair.

    Parameters
    ----------
    signals : list of Signal
        From :func:`compute_signals` on the same pairs.
    pairs : PreferencePairs
        ``ai_label`` and ``human_label`` are read: an answer is a pair with both; it is a mistake where they differ.
    more_answers : int
        Human answers still to come in the budget (``lower_ahead``).
    """
    ai = np.asarray(pairs.ai_label)
    human = np.asarray(pairs.human_label)
    has_ai = ai != 0
    design = design_matrix(signals, scope=has_ai)
    answered = has_ai & (human != 0)
    model = fit_mistake_model(design, answered=answered, wrong=answered & (human != ai), config=config)
    prob, lower = model.predict(design.matrix)
    ahead = model.predict(design.matrix, more_answers=more_answers)[1] if more_answers else lower
    return MistakeEstimate(prob=np.where(has_ai, prob, np.nan), lower=np.where(has_ai, lower, np.nan),
                           lower_ahead=np.where(has_ai, ahead, np.nan), model=model, design=design)


__all__ = [
    "Design",
    "MistakeEstimate",
    "MistakeModel",
    "design_matrix",
    "estimate_mistakes",
    "fit_logistic_map",
    "fit_mistake_model",
]
