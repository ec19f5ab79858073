"""Bounded fault run against a real Label Studio: concurrent /predict load, a webhook storm, and kill -9 of
the backend mid-training (``benchmarks/load_backend.py`` in its quick form). No 5xx, no lost or overwritten
human label, the previous version serves right after the restart."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.label_studio, pytest.mark.slow]


def _load_script():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "load_backend.py"
    spec = importlib.util.spec_from_file_location("load_backend", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_storm_and_kill_lose_no_human_label(label_studio):
    figures = _load_script().run(
        ls_url=label_studio["url"], ls_token=label_studio["token"], pairs=200, clients=8, duration=4.0,
        storm=200, storm_seconds=3.0, storm_annotations=20, down_annotations=5,
    )
    assert figures["server_errors_5xx"] == 0
    assert figures["load"]["errors"] == 0 and figures["load"]["requests"] > 0
    storm = figures["storm"]
    assert storm["status"] == {"200": 200}
    assert storm["human_labels_in_label_studio"] == 19  # 20 annotated, one deleted
    assert storm["lost_or_wrong"] == 0 and storm["phantom_human_labels"] == 0
    # Retrains are bounded by time (1 s debounce, 5 s max wait), not by the number of events (220 here).
    assert 1 <= storm["trainings"] <= 2 + storm["phase_s"]
    kill = figures["kill"]
    assert kill["serving_right_after_restart"] == kill["version_before_kill"]
    assert kill["human_labels_in_label_studio"] == 24
    assert kill["lost_or_wrong"] == 0 and kill["annotations_touched_by_backend"] == 0
