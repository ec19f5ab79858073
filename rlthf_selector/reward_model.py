"""Bradley-Terry reward models on preference pairs.

Two levels:

- :class:`BradleyTerryHead` works on arrays: per-side features ``(n, 2, d)`` in, a reward ``r(x)`` per row
  out. The loss is the weighted mean of ``-log sigmoid(y * (r(x_A) - r(x_B)))`` plus an L2 penalty, with
  ``y`` = +1 (A preferred) or -1 (B preferred).
- :class:`RewardModel` works on :class:`~rlthf_selector.pairs.PreferencePairs`; the loop only uses this
  protocol. :class:`FeatureRewardModel` is a featuriser plus a head; ``trl_reward_model.TRLRewardModel``
  fine-tunes a transformer instead.

Every gap is computed as ``r(x_A) - r(x_B)`` with ``r`` applied to each side separately, so swapping A and B
negates it exactly. :func:`rlthf_selector.out_of_fold.out_of_fold_reward_gap` scores each pair with a model
that never trained on it.

torch is imported inside the MLP code only.
"""

from __future__ import annotations

import json
import zipfile
from abc import ABC, abstractmethod
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rlthf_selector.config import BradleyTerryConfig
from rlthf_selector.feature_store import CHUNK_PAIRS, FeatureRows, FeatureStore
from rlthf_selector.pairs import PreferencePairs

_STATE_FORMAT = "rlthf-bradley-terry/1"


# ----------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------
def check_labels_and_weights(
    labels: Any, n: int, sample_weight: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate training labels and weights for ``n`` pairs.

    Returns
    -------
    labels : ndarray of float64, shape (n,)
        +1.0 or -1.0.
    weights : ndarray of float64, shape (n,)
        Non-negative, positive sum; ones when ``sample_weight`` is None.

    Raises
    ------
    ValueError
        Wrong shape, a label other than +1/-1 (0 = unknown cannot be trained on), or bad weights.
    """
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    bad = ~np.isin(y, (-1, 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"labels[{i}] = {y[i]!r}: training labels must be +1 (A) or -1 (B); "
            f"{int(bad.sum())} pairs are unlabelled or invalid. Drop unknown (0) labels before fitting."
        )
    if sample_weight is None:
        w = np.ones(n, dtype=np.float64)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (n,):
            raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any():
            i = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0])
            raise ValueError(f"sample_weight[{i}] = {w[i]!r}: weights must be finite and non-negative")
    if n == 0 or w.sum() <= 0:
        raise ValueError("no training signal: there are no pairs or every sample weight is zero")
    return y.astype(np.float64), w


def check_features(features: Any, *, dim: int | None = None) -> FeatureRows:
    """Per-side features as a lazy :class:`FeatureRows` view (an array is wrapped, not copied)."""
    if isinstance(features, FeatureRows):
        x = features  # a store's rows were checked finite when stored
    else:
        x = FeatureRows(np.asarray(features))
        for _, _, block in x.chunks():  # chunk by chunk: no full-size boolean temporary
            if not np.isfinite(block).all():
                raise ValueError("features contain NaN or infinite values")
    if dim is not None and x.shape[2] != dim:
        raise ValueError(f"features have d = {x.shape[2]}, the model was fitted on d = {dim}")
    return x


# ----------------------------------------------------------------------------------------------
# The array-level head
# ----------------------------------------------------------------------------------------------
def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


#: Pairs used to estimate the feature standardisation (all of them below this size).
_STANDARDISER_SAMPLE = 20_000


class BradleyTerryHead:
    """A Bradley-Terry reward on per-side feature vectors.

    ``r(x) = w . s(x)`` (``hidden = 0``) or ``r(x) = v . relu(W s(x) + b)`` (``hidden > 0``), where ``s``
    standardises each feature with the (weighted) mean and standard deviation of the training rows. The
    linear head is fitted by full-batch L-BFGS, the MLP by mini-batch Adam with early stopping on a held-out
    share of the pairs. Training is seeded and deterministic on CPU.

    Parameters
    ----------
    config : BradleyTerryConfig, optional

    Attributes
    ----------
    history_ : dict
        After :meth:`fit`: ``train_loss`` (and for the MLP ``val_loss`` per epoch, ``best_epoch``), ``n_iter``.
    """

    def __init__(self, config: BradleyTerryConfig | None = None) -> None:
        self.config = config or BradleyTerryConfig()
        if self.config.hidden < 0:
            raise ValueError(f"BradleyTerryConfig.hidden must be >= 0, got {self.config.hidden}")
        if self.config.l2 < 0:
            raise ValueError(f"BradleyTerryConfig.l2 must be >= 0, got {self.config.l2}")
        if not 0 <= self.config.validation_fraction < 1:
            raise ValueError(f"BradleyTerryConfig.validation_fraction must be in [0, 1), got {self.config.validation_fraction}")
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.params_: dict[str, np.ndarray] = {}
        self.history_: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"BradleyTerryHead(hidden={self.config.hidden}, l2={self.config.l2}, fitted={self.is_fitted})"

    @property
    def is_fitted(self) -> bool:
        return self.mean_ is not None

    @property
    def dim(self) -> int | None:
        return None if self.mean_ is None else int(self.mean_.shape[0])

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, features: np.ndarray, labels: np.ndarray, *, sample_weight: np.ndarray | None = None) -> "BradleyTerryHead":
        """Fit on ``n`` pairs.

        Parameters
        ----------
        features : ndarray or FeatureRows, shape (n, 2, d)
            Per-side features (``[:, 0]`` = A, ``[:, 1]`` = B).
        labels : ndarray, shape (n,)
            +1 (A preferred) or -1 (B preferred). 0 raises ValueError.
        sample_weight : ndarray, shape (n,), optional
            Non-negative weight of each pair's loss term.

        Returns
        -------
        self
        """
        x = check_features(features)
        y, w = check_labels_and_weights(labels, x.shape[0], sample_weight)
        self._fit_standardiser(x, w)
        if self.config.hidden == 0:
            self._fit_linear(x, y, w)
        else:
            self._fit_mlp(x, y, w)
        return self

    def _fit_standardiser(self, rows: FeatureRows, w: np.ndarray, *, chunk: int = 16384) -> None:
        # Both sides, weighted by their pair's weight; one affine map for A and B keeps the gap antisymmetric.
        # Two passes over float32 chunks with float64 sums: fast and without E[x^2] - E[x]^2 cancellation.
        n, _, d = rows.shape
        if n > _STANDARDISER_SAMPLE:
            # Means and scales of a fixed random subsample are as good for conditioning, at a fraction of the cost.
            keep = np.sort(np.random.default_rng(self.config.seed).choice(n, _STANDARDISER_SAMPLE, replace=False))
            x, w, n = rows.gather(keep), w[keep], _STANDARDISER_SAMPLE
        else:
            x = rows.gather()
        wn = (w / (2.0 * w.sum())).astype(np.float32)
        mean = np.zeros(d, dtype=np.float64)
        for start in range(0, n, chunk):
            block, wb = x[start : start + chunk], wn[start : start + chunk]
            mean += (wb @ block[:, 0]).astype(np.float64) + (wb @ block[:, 1]).astype(np.float64)
        mean32 = mean.astype(np.float32)
        var = np.zeros(d, dtype=np.float64)
        for start in range(0, n, chunk):
            block, wb = x[start : start + chunk].astype(np.float32, copy=False), wn[start : start + chunk]
            for side in (0, 1):
                centred = block[:, side] - mean32
                var += (wb @ (centred * centred)).astype(np.float64)
        scale = np.sqrt(var)
        scale[~(scale > 1e-6 * (1.0 + np.abs(mean)))] = 1.0  # constant features stay constant (and add nothing)
        self.mean_ = mean
        self.scale_ = scale

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        out = np.subtract(x, self.mean_.astype(np.float32), dtype=np.float32)
        out /= self.scale_.astype(np.float32)
        return out

    def _fit_linear(self, rows: FeatureRows, y: np.ndarray, w: np.ndarray) -> None:
        from scipy.optimize import minimize

        # The gap is linear in the side difference, so L-BFGS runs on (x_A - x_B) / scale only: the one
        # (n, d) array training holds, filled chunk by chunk from the features.
        diff = np.empty((rows.shape[0], rows.shape[2]), dtype=np.float32)
        for start, stop, block in rows.chunks():
            np.subtract(block[:, 0], block[:, 1], out=diff[start:stop])
        diff /= self.scale_.astype(np.float32)
        yw = (y * w / w.sum()).astype(np.float64)
        wn = w / w.sum()
        l2 = float(self.config.l2)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            z = y * (diff @ theta.astype(np.float32)).astype(np.float64)
            loss = float(wn @ _softplus(-z)) + 0.5 * l2 * float(theta @ theta)
            coef = -(yw * _sigmoid(-z)).astype(np.float32)
            grad = (coef @ diff).astype(np.float64) + l2 * theta
            return loss, grad

        theta0 = np.zeros(diff.shape[1], dtype=np.float64)
        result = minimize(
            objective, theta0, jac=True, method="L-BFGS-B",
            options={"maxiter": int(self.config.max_iter), "gtol": 1e-6, "ftol": 1e-10},
        )
        if not np.isfinite(result.x).all():
            raise FloatingPointError(f"Bradley-Terry L-BFGS diverged: {result.message}")
        self.params_ = {"w": result.x.astype(np.float64)}
        self.history_ = {"train_loss": [float(result.fun)], "n_iter": int(result.nit), "converged": bool(result.success)}

    def _fit_mlp(self, rows: FeatureRows, y: np.ndarray, w: np.ndarray) -> None:
        import torch

        cfg = self.config
        x = rows.gather()  # mini-batches draw from every pair: the MLP holds the standardised features whole
        n, _, d = x.shape
        rng = np.random.default_rng(cfg.seed)
        n_val = int(round(cfg.validation_fraction * n)) if cfg.patience > 0 else 0
        if n_val < 10 or n - n_val < 10:
            n_val = 0  # too few pairs to hold any out
        order = rng.permutation(n)
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        if w[train_idx].sum() <= 0:
            raise ValueError("every training pair left after the validation split has weight zero")

        old_threads = torch.get_num_threads()
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        # Adam's squared gradients underflow into denormals as the L2 penalty shrinks idle units; flushing them
        # to zero makes training several times faster on x86 and changes no result that matters.
        torch.set_flush_denormal(True)
        try:
            gen = torch.Generator().manual_seed(int(cfg.seed))
            xs = torch.from_numpy(self._standardise(x))
            xa, xb = xs[:, 0].contiguous(), xs[:, 1].contiguous()
            yt = torch.from_numpy(y.astype(np.float32))
            wt = torch.from_numpy((w / w[train_idx].mean()).astype(np.float32))
            h = int(cfg.hidden)
            params = {
                "W": (torch.randn(d, h, generator=gen) * np.sqrt(2.0 / d)).requires_grad_(),
                "b": torch.zeros(h).requires_grad_(),
                "v": (torch.randn(h, generator=gen) / np.sqrt(h)).requires_grad_(),
            }

            def reward(rows: "torch.Tensor") -> "torch.Tensor":
                return torch.relu(rows @ params["W"] + params["b"]) @ params["v"]

            def pair_loss(idx: "torch.Tensor") -> "torch.Tensor":
                gap = reward(xa[idx]) - reward(xb[idx])
                return torch.nn.functional.softplus(-yt[idx] * gap) * wt[idx]

            optimizer = torch.optim.Adam(params.values(), lr=cfg.lr)
            train_t = torch.from_numpy(train_idx)
            val_t = torch.from_numpy(val_idx)
            # At least ~10 steps per epoch, so small pools are not trained with a handful of full-batch steps.
            batch = max(1, min(int(cfg.batch_size), int(np.ceil(len(train_idx) / 10))))
            best = (np.inf, -1, {k: p.detach().clone() for k, p in params.items()})
            train_losses, val_losses = [], []
            bad_epochs = 0
            for epoch in range(int(cfg.epochs)):
                perm = train_t[torch.randperm(len(train_t), generator=gen)]
                total = 0.0
                for start in range(0, len(perm), batch):
                    idx = perm[start : start + batch]
                    loss = pair_loss(idx).mean()
                    penalty = 0.5 * cfg.l2 * ((params["W"] ** 2).sum() + (params["v"] ** 2).sum())
                    optimizer.zero_grad()
                    (loss + penalty).backward()
                    optimizer.step()
                    total += float(loss.detach()) * len(idx)
                train_losses.append(total / len(perm))
                if n_val:
                    with torch.no_grad():
                        val_loss = float(pair_loss(val_t).sum() / wt[val_t].sum())
                    val_losses.append(val_loss)
                    if val_loss < best[0] - 1e-6:
                        best = (val_loss, epoch, {k: p.detach().clone() for k, p in params.items()})
                        bad_epochs = 0
                    else:
                        bad_epochs += 1
                        if bad_epochs >= cfg.patience:
                            break
            final = best[2] if n_val else {k: p.detach() for k, p in params.items()}
            self.params_ = {k: v.numpy().astype(np.float64) for k, v in final.items()}
            self.history_ = {
                "train_loss": train_losses,
                "val_loss": val_losses,
                "best_epoch": int(best[1]) if n_val else len(train_losses) - 1,
                "n_iter": len(train_losses),
                "n_validation": int(n_val),
            }
        finally:
            torch.set_num_threads(old_threads)
            torch.set_flush_denormal(False)

    # -- scoring --------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError("this BradleyTerryHead is not fitted; call fit() first")

    def reward(self, x: np.ndarray) -> np.ndarray:
        """Reward of each row.

        Parameters
        ----------
        x : ndarray, shape (m, d)

        Returns
        -------
        ndarray of float64, shape (m,)
        """
        self._require_fitted()
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (m, {self.dim}), got {x.shape}")
        s = (x - self.mean_) / self.scale_
        if "w" in self.params_:
            return s @ self.params_["w"]
        return np.maximum(s @ self.params_["W"] + self.params_["b"], 0.0) @ self.params_["v"]

    def reward_gap(self, features: np.ndarray) -> np.ndarray:
        """``r(x_A) - r(x_B)`` for each pair.

        Parameters
        ----------
        features : ndarray or FeatureRows, shape (n, 2, d)

        Returns
        -------
        ndarray of float64, shape (n,)
            Positive = the model prefers A. Swapping the sides negates it exactly.
        """
        self._require_fitted()
        rows = check_features(features, dim=self.dim)
        gap = np.empty(rows.shape[0], dtype=np.float64)
        for start, stop, x in rows.chunks():
            # Each side in its own call of identical shape: the same row lands in the same place either way.
            gap[start:stop] = self.reward(x[:, 0]) - self.reward(x[:, 1])
        return gap

    # -- persistence ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to score again: numpy arrays and JSON-able values."""
        self._require_fitted()
        return {
            "format": _STATE_FORMAT,
            "config": asdict(self.config),
            "mean": self.mean_.copy(),
            "scale": self.scale_.copy(),
            **{f"param_{k}": v.copy() for k, v in self.params_.items()},
            "history": json.loads(json.dumps(self.history_)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> "BradleyTerryHead":
        """Restore from :meth:`state_dict` (the config stored there replaces this head's)."""
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(f"not a Bradley-Terry head state: format = {state.get('format')!r}, expected {_STATE_FORMAT!r}")
        known = set(BradleyTerryConfig.__dataclass_fields__)
        self.config = BradleyTerryConfig(**{k: v for k, v in dict(state["config"]).items() if k in known})
        self.mean_ = np.asarray(state["mean"], dtype=np.float64)
        self.scale_ = np.asarray(state["scale"], dtype=np.float64)
        self.params_ = {k[len("param_"):]: np.asarray(v, dtype=np.float64) for k, v in state.items() if k.startswith("param_")}
        if set(self.params_) not in ({"w"}, {"W", "b", "v"}):
            raise ValueError(f"Bradley-Terry head state has parameters {sorted(self.params_)}; expected w, or W, b and v")
        self.history_ = dict(state.get("history", {}))
        return self


# ----------------------------------------------------------------------------------------------
# The text-level protocol
# ----------------------------------------------------------------------------------------------
class RewardModel(ABC):
    """What the loop needs from a reward model.

    Attributes
    ----------
    name : str
        Identifies the model kind and its features; recorded in outputs.
    """

    name: str = "reward-model"

    @abstractmethod
    def fit(self, pairs: PreferencePairs, labels: np.ndarray, *, sample_weight: np.ndarray | None = None) -> "RewardModel":
        """Train on ``pairs`` with ``labels`` (shape (n,), each +1 or -1; 0 raises ValueError).

        ``sample_weight`` (shape (n,), non-negative) scales each pair's loss term. Returns self.
        """

    @abstractmethod
    def reward_gap(self, pairs: PreferencePairs) -> np.ndarray:
        """``r(prompt, A) - r(prompt, B)`` for each pair, shape (n,) float64."""

    @abstractmethod
    def clone(self) -> "RewardModel":
        """An unfitted model with the same configuration (used for cross-fitting)."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """The fitted state as numpy arrays and JSON-able values."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> "RewardModel":
        """Restore a state from :meth:`state_dict`; returns self."""


class FeatureRewardModel(RewardModel):
    """A featuriser plus a :class:`BradleyTerryHead`.

    Features live in a :class:`~rlthf_selector.feature_store.FeatureStore` shared with every :meth:`clone`, so
    repeated fits and scores on subsets of one pool (iterations, cross-fitting folds) featurise each pair once.
    Pairs missing from the store are featurised in chunks, each stored as it finishes.

    Parameters
    ----------
    featurizer : Featurizer
    config : BradleyTerryConfig, optional
    store : FeatureStore, optional
        Where the features live; default: a store in memory. One on disk bounds memory on large pools.
    """

    def __init__(self, featurizer, config: BradleyTerryConfig | None = None, *, store: FeatureStore | None = None) -> None:
        self.featurizer = featurizer
        self.config = config or BradleyTerryConfig()
        self.head = BradleyTerryHead(self.config)
        if store is not None and store.featurizer_name != featurizer.name:
            raise ValueError(f"the feature store holds featuriser {store.featurizer_name!r}'s rows, this model uses {featurizer.name!r}")
        self.store = store if store is not None else FeatureStore(None, featurizer.name)
        kind = "linear" if self.config.hidden == 0 else f"mlp{self.config.hidden}"
        self.name = f"bt-{kind}[{featurizer.name}]"

    def __repr__(self) -> str:
        return f"FeatureRewardModel(name={self.name!r}, fitted={self.head.is_fitted})"

    def feature_rows(self, pairs: PreferencePairs) -> FeatureRows:
        """Per-side features of ``pairs`` as a lazy (n, 2, d) view of the store, featurising the pairs it lacks."""
        keys = self.store.keys(pairs)
        positions = self.store.locate(keys)
        missing = np.flatnonzero(positions < 0)
        for start in range(0, missing.shape[0], CHUNK_PAIRS):
            idx = missing[start : start + CHUNK_PAIRS]
            block = np.asarray(self.featurizer.transform(pairs.subset(idx)), dtype=np.float32)
            if block.ndim != 3 or block.shape[:2] != (idx.shape[0], 2):
                raise ValueError(f"featuriser returned shape {block.shape} for {idx.shape[0]} pairs; expected (n, 2, d)")
            positions[idx] = self.store.put(keys[idx], block)
        return FeatureRows(self.store, positions)

    def features(self, pairs: PreferencePairs) -> np.ndarray:
        """Per-side features of ``pairs``, shape (n, 2, d) float32 (featurised once per pair, see :meth:`feature_rows`)."""
        return self.feature_rows(pairs).gather()

    def fit(self, pairs: PreferencePairs, labels: np.ndarray, *, sample_weight: np.ndarray | None = None) -> "FeatureRewardModel":
        check_labels_and_weights(labels, len(pairs), sample_weight)  # fail before featurising
        self.head = BradleyTerryHead(self.config).fit(self.feature_rows(pairs), labels, sample_weight=sample_weight)
        return self

    def reward_gap(self, pairs: PreferencePairs) -> np.ndarray:
        if not self.head.is_fitted:
            raise RuntimeError("this FeatureRewardModel is not fitted; call fit() first")
        return self.head.reward_gap(self.feature_rows(pairs))

    def clone(self) -> "FeatureRewardModel":
        return FeatureRewardModel(self.featurizer, self.config, store=self.store)

    def state_dict(self) -> dict[str, Any]:
        return {"featurizer": self.featurizer.name, **self.head.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> "FeatureRewardModel":
        if state.get("featurizer") != self.featurizer.name:
            raise ValueError(
                f"the saved reward model used featuriser {state.get('featurizer')!r}, this one has {self.featurizer.name!r}"
            )
        self.head = BradleyTerryHead(self.config).load_state_dict(state)
        self.config = self.head.config
        return self


# ----------------------------------------------------------------------------------------------
# Persistence of state dicts
# ----------------------------------------------------------------------------------------------
def save_state(state: dict[str, Any], path: str | Path) -> None:
    """Write a state dict (numpy arrays + JSON-able values) to one ``.npz`` file, atomically."""
    path = Path(path)
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    meta = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    if "__meta__" in arrays:
        raise ValueError("state key '__meta__' is reserved")
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as fh:
        np.savez(fh, __meta__=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8), **arrays)
    tmp.replace(path)


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a state dict written by :func:`save_state`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            state = {k: data[k] for k in data.files if k != "__meta__"}
            state.update(json.loads(data["__meta__"].tobytes().decode("utf-8")))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable reward-model state file ({exc})") from exc
    return state


__all__ = [
    "BradleyTerryHead",
    "FeatureRewardModel",
    "RewardModel",
    "check_features",
    "check_labels_and_weights",
    "load_state",
    "save_state",
]
