"""Loaders and simulated judges on the real shared data (skipped when ../shared/data is absent).

Known answers measured on the PandaLM test set (999 rows): 105 rows have a human tie or no majority,
leaving 894 decisive rows; GPT-3.5 says tie (33) or garbage (12) on 45 of them and agrees with the human
majority on 692 of the other 849 (81.5%); PandaLM-7B (integer ``pandalm_result``) says tie on 75 and
agrees on 635 of the other 819 (77.5%).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from rlthf_selector.io import DataSkipWarning, load_hh_rlhf, load_pandalm
from rlthf_selector.simulated_judges import parse_judge_spec

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PANDALM = SHARED_DATA / "pandalm"
HH_HARMLESS = SHARED_DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz"

needs_pandalm = pytest.mark.skipif(not (PANDALM / "testset-v1.json").exists(), reason="shared PandaLM data absent")
needs_hh = pytest.mark.skipif(not HH_HARMLESS.exists(), reason="shared HH-RLHF data absent")


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataSkipWarning)
        return fn(*args, **kw)


@needs_pandalm
def test_pandalm_decisive_rows_and_gpt35_accuracy():
    human_only, report = _quiet(load_pandalm, PANDALM, judge=None)
    assert len(human_only) == 894
    assert report.skipped == {"human tie/no majority": 105}

    pairs, report = _quiet(load_pandalm, PANDALM, judge="gpt-3.5")
    assert len(pairs) == 849
    assert report.skipped == {"human tie/no majority": 105, "judge tie/unparseable": 45}
    assert set(pairs.ids) <= set(human_only.ids)
    accuracy = float((pairs.ai_label == pairs.gold_label).mean())
    assert 0.80 <= accuracy <= 0.83
    assert (pairs.ai_label != 0).all() and (pairs.gold_label != 0).all()
    assert any("non-string" in note for note in report.notes)  # JSON booleans among the responses
    assert not any(p.endswith("\n") for p in pairs.prompt)


@needs_pandalm
def test_pandalm_7b_judge_and_second_judge_agreement():
    pairs, report = _quiet(load_pandalm, PANDALM, judge="pandalm-7b")
    assert len(pairs) == 819
    assert report.skipped["judge tie/unparseable"] == 75
    assert 0.75 <= float((pairs.ai_label == pairs.gold_label).mean()) <= 0.80

    both, _ = _quiet(load_pandalm, PANDALM, judge="gpt-3.5", second_judge="pandalm-7b")
    second = both.extra["second_judge_label"]
    assert second.dtype == np.int8 and len(both) == 849
    agree = second == both.ai_label
    disagree = (second != 0) & ~agree
    gpt_wrong = both.ai_label != both.gold_label
    # Where the two real judges disagree, GPT-3.5 is wrong far more often than where they agree.
    assert agree.sum() == 624 and disagree.sum() == 164
    assert gpt_wrong[disagree].mean() > 2 * gpt_wrong[agree].mean()


@needs_hh
def test_hh_harmless_loads_with_sensible_prompts():
    pairs, report = _quiet(load_hh_rlhf, HH_HARMLESS, seed=0)
    assert report.n_read == 2312
    assert len(pairs) >= 2300 and report.n_skipped <= 12
    assert all(p.startswith("Human:") and p.endswith("\n\nAssistant:") for p in pairs.prompt)
    assert not any("\n\nHuman:" in r for r in pairs.response_a)
    assert 0.45 < float((pairs.gold_label == 1).mean()) < 0.55
    assert pairs.ids[0] == "harmless-base-test-0"


@needs_hh
def test_length_bias_judge_on_hh_harmless_is_wrong_about_half_the_time():
    pairs, _ = _quiet(load_hh_rlhf, HH_HARMLESS, seed=0)
    length_judge, description = parse_judge_spec("length-bias")
    assert description.startswith("simulated:")
    rates = [float((length_judge(pairs, seed=s) != pairs.gold_label).mean()) for s in range(3)]
    # Expected 0.476 from the length statistics (82% of pairs differ by > 1.3x; chosen is the longer in 42%).
    assert 0.44 <= float(np.mean(rates)) <= 0.52
    uniform = parse_judge_spec("uniform:0.25")[0](pairs, seed=0)
    assert abs(float((uniform != pairs.gold_label).mean()) - 0.25) < 0.03
