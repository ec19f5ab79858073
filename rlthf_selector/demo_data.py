"""The demo's real preference pairs: a slice of the PandaLM test set shipped inside the package.

``rlthf demo`` and ``make label-studio-demo`` use it by default (``--synthetic`` keeps the generated data). It is the
first 400 records of PandaLM's human-annotated test set (Apache-2.0; ``rlthf_selector/data/pandalm/NOTICE.md`` and
``LICENSE`` beside it), with GPT-3.5's verdicts as the AI labels and PandaLM-7B's as the second judge.
"""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path
from typing import Any

#: Where the shipped slice lies (a folder :func:`rlthf_selector.io.load_pandalm` reads).
PANDALM_DEMO_DIR = Path(str(resources.files("rlthf_selector").joinpath("data", "pandalm")))
DEMO_SOURCE = "PandaLM test set slice (Apache-2.0, github.com/WeOpenML/PandaLM; see rlthf_selector/data/pandalm/NOTICE.md)"


def load_demo_pairs() -> tuple[Any, list[str]]:
    """The shipped PandaLM slice as preference pairs: gold = the human majority, AI label = GPT-3.5's verdict,
    ``extra["second_judge_label"]`` = PandaLM-7B's.

    Returns
    -------
    pairs : PreferencePairs
    notes : list of str
        What loading left out or read specially (the loader's report and its skip warning, as text).
    """
    from rlthf_selector.io import load_pandalm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pairs, report = load_pandalm(PANDALM_DEMO_DIR, judge="gpt-3.5", second_judge="pandalm-7b")
    notes = [str(w.message).split(": ", 1)[-1] for w in caught] + list(report.notes)
    return pairs, notes
