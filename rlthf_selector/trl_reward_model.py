"""A reward model fine-tuned end to end with TRL's ``RewardTrainer``.

A Hugging Face sequence classifier with one output (``num_labels=1``) reads ``prompt + "\\n\\n" + response``
and returns a scalar reward; ``RewardTrainer`` minimises ``-log sigmoid(r(chosen) - r(rejected))``. It is the
heavier alternative to :class:`~rlthf_selector.reward_model.FeatureRewardModel` (frozen features plus a small
head): better in principle, slow on CPU. With ``TRLRewardConfig.chat_template`` it reads each pair's conversation
(``pairs.MESSAGE_FIELDS``) through the tokenizer's chat template instead, in training and scoring alike.

RewardTrainer has no per-example weights, so a pair of weight ``w`` is repeated ``round(w)`` times. It drops
pairs longer than ``max_length`` tokens instead of truncating them; this module counts and warns.

trl, transformers, datasets and torch are imported inside the methods that use them.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import asdict
from typing import Any

import numpy as np

from rlthf_selector.config import TRLRewardConfig
from rlthf_selector.pairs import MESSAGE_FIELDS, PreferencePairs, chosen_rejected, has_conversation
from rlthf_selector.reward_model import RewardModel, check_labels_and_weights

PROMPT_SEPARATOR = "\n\n"
_STATE_FORMAT = "rlthf-trl-reward/1"


def oversample_counts(sample_weight: np.ndarray) -> np.ndarray:
    """How many times each pair is repeated for training: ``w`` rounded half up, shape (n,) int64."""
    return np.floor(np.asarray(sample_weight, dtype=np.float64) + 0.5).astype(np.int64)


class TRLRewardModel(RewardModel):
    """Fine-tunes a sequence classifier as a reward model with ``trl.RewardTrainer``.

    Parameters
    ----------
    config : TRLRewardConfig, optional

    Attributes
    ----------
    train_log_ : dict
        After :meth:`fit`: ``n_pairs`` given, ``n_trained`` rows after oversampling and length filtering,
        ``n_dropped_too_long``, ``train_loss``, ``steps``, ``chat_template``.
    """

    def __init__(self, config: TRLRewardConfig | None = None) -> None:
        from rlthf_selector.features import default_encoder_dir, model_fingerprint

        self.config = config or TRLRewardConfig()
        self.model_dir = self.config.model_dir or default_encoder_dir()
        self.model_id = model_fingerprint(self.model_dir)
        self.name = f"trl-reward[{self.model_id}]"
        self._model = None
        self._tokenizer = None
        self.train_log_: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"TRLRewardModel(name={self.name!r}, fitted={self._model is not None})"

    # -- model and tokenizer ---------------------------------------------------------------------
    def _device(self) -> str:
        import torch

        return "cuda" if torch.cuda.is_available() and not self.config.use_cpu else "cpu"

    def _load_tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
            if tok.eos_token is None:
                # BERT-style tokenisers have no EOS; TRL appends one to every sequence. [SEP] already ends them.
                if tok.sep_token is None:
                    raise ValueError(f"the tokenizer in {self.model_dir} has neither an EOS nor a SEP token")
                tok.eos_token = tok.sep_token
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            self._tokenizer = tok
        return self._tokenizer

    def _new_model(self):
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForSequenceClassification, set_seed

        from transformers.utils import logging as hf_logging

        set_seed(int(self.config.seed))  # the new reward head's initialisation
        verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # the fresh head is meant to be missing from the checkpoint: no report
        hf_logging.disable_progress_bar()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = AutoModelForSequenceClassification.from_pretrained(
                    self.model_dir, num_labels=1, local_files_only=True
                )
        finally:
            hf_logging.set_verbosity(verbosity)
            if bars:
                hf_logging.enable_progress_bar()
        model.config.pad_token_id = self._load_tokenizer().pad_token_id
        return model

    @property
    def max_length(self) -> int:
        """``config.max_length`` capped at the model's position embeddings (512 for MiniLM)."""
        from transformers import AutoConfig

        positions = getattr(AutoConfig.from_pretrained(self.model_dir, local_files_only=True), "max_position_embeddings", None)
        return int(min(self.config.max_length, positions or self.config.max_length))

    def _sequence(self, prompt: str, response: str) -> str:
        """The text the classifier reads, exactly as RewardTrainer builds it (prompt + response + EOS)."""
        eos = self._load_tokenizer().eos_token
        if not response.endswith(eos):
            response = response + eos
        return prompt + PROMPT_SEPARATOR + response

    def _token_lengths(self, texts: list[str]) -> np.ndarray:
        tok = self._load_tokenizer()
        return np.asarray([len(ids) for ids in tok(texts)["input_ids"]], dtype=np.int64)

    def _reads_conversations(self, pairs: PreferencePairs) -> bool:
        """``config.chat_template``, once checked that the tokenizer has a template and every pair its conversation.

        Raises
        ------
        ValueError
            Naming what is missing.
        """
        if not self.config.chat_template:
            return False
        if not self._load_tokenizer().chat_template:
            raise ValueError(f"TRLRewardConfig.chat_template is on, but the tokenizer in {self.model_dir} has no chat "
                             f"template; turn it off to read the texts")
        missing = np.flatnonzero(~has_conversation(pairs))
        if missing.size:
            raise ValueError(f"TRLRewardConfig.chat_template is on, but {missing.size} of {len(pairs)} pairs carry no "
                             f"conversation (first: {pairs.ids[missing[0]]!r}); load conversational data with "
                             f"load_trl, or turn it off to read the texts")
        return True

    def _conversation_ids(self, prompts: Any, responses: Any, *, truncate: bool = False) -> list[list[int]]:
        """Token ids of each prompt + response conversation through the chat template, as RewardTrainer builds them."""
        tok = self._load_tokenizer()
        extra = {"truncation": True, "max_length": self.max_length} if truncate else {}
        return [list(tok.apply_chat_template(list(p) + list(r), tokenize=True, return_dict=True, **extra)["input_ids"])
                for p, r in zip(prompts, responses)]

    # -- training --------------------------------------------------------------------------------
    def fit(self, pairs: PreferencePairs, labels: np.ndarray, *, sample_weight: np.ndarray | None = None) -> "TRLRewardModel":
        """Fine-tune a fresh copy of the model on ``pairs`` (labels +1 / -1; 0 raises ValueError).

        ``sample_weight`` (shape (n,)) is applied by repeating each pair ``round(w)`` times.
        """
        y, w = check_labels_and_weights(labels, len(pairs), sample_weight)
        repeats = oversample_counts(w)
        lost = int(((w > 0) & (repeats == 0)).sum())
        if lost:
            warnings.warn(f"{lost} pairs have a sample weight below 0.5 and are left out of TRL training", UserWarning, stacklevel=2)
        chat = self._reads_conversations(pairs)
        if chat:
            prompt_messages, a_messages, b_messages = (pairs.extra[key] for key in MESSAGE_FIELDS)
            chosen = [a if label > 0 else b for a, b, label in zip(a_messages, b_messages, y)]
            rejected = [b if label > 0 else a for a, b, label in zip(a_messages, b_messages, y)]
            lengths = [np.asarray([len(ids) for ids in self._conversation_ids(prompt_messages, side)], dtype=np.int64)
                       for side in (chosen, rejected)]
        else:
            chosen, rejected = chosen_rejected(pairs, y.astype(np.int8))
            lengths = [self._token_lengths([self._sequence(p, r) for p, r in zip(pairs.prompt, side)])
                       for side in (chosen, rejected)]
        max_len = self.max_length
        too_long = (lengths[0] > max_len) | (lengths[1] > max_len)
        if too_long.any():
            warnings.warn(
                f"{int(too_long.sum())} of {len(pairs)} pairs are longer than max_length = {max_len} tokens and are "
                "dropped from training (TRL does not truncate)",
                UserWarning,
                stacklevel=2,
            )
        repeats[too_long] = 0
        rows = np.repeat(np.arange(len(pairs)), repeats)
        if len(rows) == 0:
            raise ValueError("no pair is left to train on after oversampling and the max_length filter")

        from datasets import Dataset
        from trl import RewardConfig, RewardTrainer

        if chat:  # message lists: RewardTrainer applies the chat template to prompt + chosen / rejected
            dataset = Dataset.from_dict({
                "prompt": [list(prompt_messages[i]) for i in rows],
                "chosen": [list(chosen[i]) for i in rows],
                "rejected": [list(rejected[i]) for i in rows],
            })
        else:
            dataset = Dataset.from_dict({
                "prompt": [pairs.prompt[i] + PROMPT_SEPARATOR for i in rows],
                "chosen": [chosen[i] for i in rows],
                "rejected": [rejected[i] for i in rows],
            })
        tokenizer = self._load_tokenizer()
        model = self._new_model()
        with tempfile.TemporaryDirectory(prefix="rlthf-trl-") as tmp:
            args = RewardConfig(
                output_dir=self.config.output_dir or tmp,
                num_train_epochs=float(self.config.epochs),
                learning_rate=float(self.config.lr),
                per_device_train_batch_size=int(self.config.batch_size),
                seed=int(self.config.seed),
                max_length=max_len,
                eos_token=tokenizer.eos_token,
                bf16=False,
                fp16=False,
                use_cpu=self._device() == "cpu",
                activation_checkpointing=False,  # small models: memory is not the limit, speed is
                report_to="none",
                save_strategy="no",
                logging_strategy="no",
                disable_tqdm=True,
                dataloader_num_workers=0,
            )
            import datasets

            bars = datasets.is_progress_bar_enabled()
            datasets.disable_progress_bars()  # TRL's three map passes over a small set are noise
            try:
                trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
            finally:
                if bars:
                    datasets.enable_progress_bars()
            result = trainer.train()
        self._model = trainer.model.eval()
        self.train_log_ = {
            "n_pairs": len(pairs),
            "n_trained": int(len(trainer.train_dataset)),
            "n_dropped_too_long": int(too_long.sum()),
            "train_loss": float(result.training_loss),
            "steps": int(result.global_step),
            "chat_template": chat,
        }
        return self

    # -- scoring ---------------------------------------------------------------------------------
    def rewards(self, texts: list[str]) -> np.ndarray:
        """Rewards of full sequences (prompt, separator, response and EOS already joined), shape (m,) float64.

        Texts are scored once each, in batches of similar length; longer ones are truncated (with a warning).
        """
        self._check_fitted()
        unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
        tok = self._load_tokenizer()
        ids = tok(list(unique))["input_ids"]
        truncated = self._truncate_long(ids, lambda long: tok([unique[i] for i in long], truncation=True,
                                                               max_length=self.max_length)["input_ids"])
        return self._score_ids(ids, truncated=truncated)[inverse.reshape(-1)]

    def _truncate_long(self, ids: list[list[int]], reencode: Any) -> int:
        """Replace, in place, each sequence longer than ``max_length`` by ``reencode(positions)``'s (the tokenizer's own
        truncation, which keeps a closing special token), and return how many there were."""
        long = [i for i, seq in enumerate(ids) if len(seq) > self.max_length]
        for i, seq in zip(long, reencode(long) if long else []):
            ids[i] = seq
        return len(long)

    def _check_fitted(self) -> None:
        if self._model is None:
            raise RuntimeError("this TRLRewardModel is not fitted; call fit() or load_state_dict() first")

    def _score_ids(self, ids: list[list[int]], *, truncated: int) -> np.ndarray:
        """Rewards of token-id sequences, shape (m,) float64, in batches of similar length."""
        import torch

        if truncated:
            warnings.warn(f"{truncated} texts are longer than {self.max_length} tokens and are truncated for scoring",
                          UserWarning, stacklevel=4)
        tok = self._load_tokenizer()
        order = np.argsort(np.asarray([len(seq) for seq in ids], dtype=np.int64), kind="stable")
        out = np.empty(len(ids), dtype=np.float64)
        device = next(self._model.parameters()).device
        step = max(1, int(self.config.score_batch_size))
        with torch.no_grad():
            for start in range(0, len(order), step):
                idx = order[start : start + step]
                batch = tok.pad({"input_ids": [ids[i] for i in idx]}, padding=True, return_tensors="pt")
                logits = self._model(**{k: v.to(device) for k, v in batch.items()}).logits
                out[idx] = logits[:, 0].float().cpu().numpy()
        return out

    def reward_gap(self, pairs: PreferencePairs) -> np.ndarray:
        """``r(prompt + A) - r(prompt + B)`` per pair, shape (n,); each distinct sequence is scored once, so
        swapping A and B negates the gap exactly. With ``config.chat_template``, through the chat template.

        Raises
        ------
        ValueError
            With ``config.chat_template``: a pair without its conversation, or a tokenizer without a template.
        """
        self._check_fitted()
        n = len(pairs)
        if not self._reads_conversations(pairs):
            texts = [self._sequence(p, a) for p, a in zip(pairs.prompt, pairs.response_a)]
            texts += [self._sequence(p, b) for p, b in zip(pairs.prompt, pairs.response_b)]
            r = self.rewards(texts)
            return r[:n] - r[n:]
        prompt_messages, a_messages, b_messages = (pairs.extra[key] for key in MESSAGE_FIELDS)
        ids = self._conversation_ids(prompt_messages, a_messages) + self._conversation_ids(prompt_messages, b_messages)
        truncated = self._truncate_long(ids, lambda long: self._conversation_ids(
            [prompt_messages[i % n] for i in long], [(a_messages if i < n else b_messages)[i % n] for i in long],
            truncate=True))
        keys = np.asarray([" ".join(map(str, seq)) for seq in ids], dtype=object)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        r = self._score_ids([ids[i] for i in first], truncated=truncated)[inverse.reshape(-1)]
        return r[:n] - r[n:]

    # -- the rest of the protocol -------------------------------------------------------------------
    def clone(self) -> "TRLRewardModel":
        return TRLRewardModel(self.config)

    def state_dict(self) -> dict[str, Any]:
        """The fine-tuned weights as numpy arrays (``weight:<name>``), the config and the base model's id."""
        if self._model is None:
            raise RuntimeError("this TRLRewardModel is not fitted")
        state: dict[str, Any] = {"format": _STATE_FORMAT, "config": asdict(self.config), "model_id": self.model_id,
                                 "train_log": dict(self.train_log_)}
        for key, tensor in self._model.state_dict().items():
            tensor = tensor.detach().cpu()
            if tensor.is_floating_point():
                tensor = tensor.float()  # numpy has no bfloat16
            state[f"weight:{key}"] = tensor.numpy().copy()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> "TRLRewardModel":
        import torch

        if state.get("format") != _STATE_FORMAT:
            raise ValueError(f"not a TRL reward model state: format = {state.get('format')!r}, expected {_STATE_FORMAT!r}")
        if state.get("model_id") != self.model_id:
            raise ValueError(f"the state was trained from base model {state.get('model_id')!r}, this model loads {self.model_id!r}")
        model = self._new_model()
        weights = {k[len("weight:"):]: torch.from_numpy(np.asarray(v)) for k, v in state.items() if k.startswith("weight:")}
        model.load_state_dict(weights, strict=True)
        self._model = model.to(self._device()).eval()
        self.train_log_ = dict(state.get("train_log", {}))
        return self


# ----------------------------------------------------------------------------------------------
# Command line: one fit, on one device or data-parallel under `accelerate launch`
# ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Fit a TRL reward model on a labelled canonical JSONL and save its state (and optionally each pair's gap).

    Runs as ``python -m rlthf_selector.trl_reward_model`` on one device, or as
    ``accelerate launch --config_file docs/accelerate.yaml -m rlthf_selector.trl_reward_model`` with one process
    per GPU: RewardTrainer reads the launcher's environment and trains data-parallel; the main process alone
    scores and writes. Training labels are each pair's human label (weight alpha of the first iteration), else
    its AI label (weight 1), as the loop's first step trains.
    """
    import argparse
    import json
    import os
    from pathlib import Path

    from rlthf_selector.config import LoopConfig, add_config_arguments, config_from_args
    from rlthf_selector.io import load_jsonl
    from rlthf_selector.loop import training_set
    from rlthf_selector.reward_model import save_state

    parser = argparse.ArgumentParser(prog="python -m rlthf_selector.trl_reward_model", description=main.__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True, help="canonical JSONL with ai_label and/or human_label")
    parser.add_argument("--out", required=True, help="reward-model state (.npz), written by the main process")
    parser.add_argument("--gaps-out", help="also write each pair's reward gap r(A) - r(B) as JSONL (id, reward_gap)")
    add_config_arguments(parser, TRLRewardConfig)
    args = parser.parse_args(argv)
    pairs, _ = load_jsonl(args.pairs)
    labels, weights = training_set(pairs.ai_label, pairs.human_label, alpha=LoopConfig().alpha_at(0))
    trained = np.flatnonzero(labels != 0)
    if trained.shape[0] == 0:
        parser.error(f"{args.pairs}: no pair has an ai_label or a human_label to train on")
    model = TRLRewardModel(config_from_args(TRLRewardConfig, args))
    model.fit(pairs.subset(trained), labels[trained], sample_weight=weights[trained])
    if int(os.environ.get("RANK", "0")) != 0:  # the other data-parallel processes are done once training is
        return 0
    save_state(model.state_dict(), args.out)
    if args.gaps_out:
        gaps = model.reward_gap(pairs)
        Path(args.gaps_out).write_text(
            "".join(json.dumps({"id": str(i), "reward_gap": float(g)}) + "\n" for i, g in zip(pairs.ids, gaps)),
            encoding="utf-8",
        )
    print(json.dumps({"state": args.out, **model.train_log_}))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
