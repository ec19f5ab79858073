"""rlthf_selector: targeted human feedback for preference labeling (RLTHF, arXiv 2502.13417).

Import is light: numpy only. torch, transformers and trl load where they are used.
"""

from rlthf_selector.pairs import (
    A_PREFERRED,
    B_PREFERRED,
    UNKNOWN,
    LabelSource,
    PreferencePairs,
)

__version__ = "0.1.0"

__all__ = ["A_PREFERRED", "B_PREFERRED", "UNKNOWN", "LabelSource", "PreferencePairs", "__version__"]
