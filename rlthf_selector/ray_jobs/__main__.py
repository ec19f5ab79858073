"""``python -m rlthf_selector.ray_jobs``: one selection step with featurising and scoring on Ray (:mod:`.cli`)."""

import sys

from rlthf_selector.ray_jobs.cli import main

sys.exit(main())
