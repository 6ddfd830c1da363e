"""Where the benchmarks find the repository and the shared evaluation data.

The data lies in ``../shared/eval`` beside the clone (as CI lays it out), wherever the clone is;
``MATCHER_EVAL_DIR`` points elsewhere.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EVAL = Path(os.environ.get("MATCHER_EVAL_DIR") or REPO.parent / "shared" / "eval")
