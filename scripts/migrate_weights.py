"""Convert PerfSAGE GNN weights configs written before model specs, in place.

    .venv/bin/python scripts/migrate_weights.py DIR [DIR ...]

Each DIR holds config.json and model.safetensors; only config.json is rewritten, and every
number in it is kept (``perfsage.predictors.perfsage_gnn.migrate`` says how). A folder
already in the current format is left as it is.
"""

from __future__ import annotations

import sys

from perfsage.predictors.perfsage_gnn.migrate import main

if __name__ == "__main__":
    sys.exit(main())
