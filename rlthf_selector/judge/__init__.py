"""AI prelabels for preference pairs: the judge stage of RLTHF (``rlthf prelabel``).

- :class:`~rlthf_selector.judge.openai_judge.OpenAIJudge`: any OpenAI-compatible chat-completions server.
- :class:`~rlthf_selector.judge.local_judge.LocalJudge`: a local Hugging Face causal LM (transformers is
  imported only when one is built).
- :func:`~rlthf_selector.judge.runner.judge_pairs` / :func:`~rlthf_selector.judge.runner.prelabel`: both
  orders per pair, bounded concurrency, the resumable answer cache, the summary.
- :mod:`~rlthf_selector.judge.merge`: both orders -> one judge's label, several judges -> majority and evidence,
  and labels read from files.

Output fields per pair: ``ai_label`` ("a"/"b"/null), ``ai_confidence``, ``ai_consistent``, ``ai_disagreement``,
``ai_unlabeled_reason``, ``judge_doubt`` and the per-judge lists ``judge_labels``, ``judge_confidence``,
``judge_consistent`` in the order of ``judge_names``. See ``docs/prelabel.md``.
"""

from rlthf_selector.judge.base import JudgeError, JudgeFatalError, OrderVerdict, PairJudge
from rlthf_selector.judge.cache import JudgeCache, answer_key
from rlthf_selector.judge.local_judge import LocalJudge
from rlthf_selector.judge.merge import (
    Evidence,
    JudgeLabels,
    combine_judges,
    combine_orders,
    majority_vote,
    read_label_file,
)
from rlthf_selector.judge.openai_judge import OpenAIJudge
from rlthf_selector.judge.prompts import (
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_TEMPLATE,
    PromptTemplate,
    load_template,
    parse_verdict,
)
from rlthf_selector.judge.runner import JudgeRunStats, format_summary, judge_pairs, prelabel

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "DEFAULT_TEMPLATE",
    "Evidence",
    "JudgeCache",
    "JudgeError",
    "JudgeFatalError",
    "JudgeLabels",
    "JudgeRunStats",
    "LocalJudge",
    "OpenAIJudge",
    "OrderVerdict",
    "PairJudge",
    "PromptTemplate",
    "answer_key",
    "combine_judges",
    "combine_orders",
    "format_summary",
    "judge_pairs",
    "load_template",
    "majority_vote",
    "parse_verdict",
    "prelabel",
    "read_label_file",
]
