"""Convert a GNN weights config written before model specs into one, keeping every number.

    python scripts/migrate_weights.py DIR [DIR ...]

Such a config chose the network's node columns with loose keys: the live-bytes column came
with any ``peak`` metric, the channel-alignment columns with ``align``. The spec names the
columns instead (``node_columns``), states every readout and the network's constants, and
is sealed by ``spec_sha256``. The conversion derives those from the old keys by the rule
the old code followed, keeps every number (scaling, standardisation, domain, rates) as it
was, leaves ``model.safetensors`` untouched, and checks the result loads before it
replaces ``config.json``. Predictions are bit for bit those of the old config. The data
fingerprint of an old config is unknown (``trained.data_sha256`` null); the dataset it
names, if any, is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from perfsage.errors import PerfSageError
from perfsage.predictors.features import GLOBAL_FEATURES
from perfsage.predictors.perfsage_gnn import weights
from perfsage.predictors.perfsage_gnn.config import read_spec
from perfsage.predictors.perfsage_gnn.spec import NET_CONSTANTS, SPEC_VERSION, node_columns, seal

#: Fields the conversion writes itself; every other field of the old config is kept as is.
_DERIVED = ("format", "spec_version", "align", "tensors", "weights_sha256", "spec_sha256")


def migrated(old: dict[str, Any]) -> dict[str, Any]:
    """The sealed spec an old config stands for (``old`` is left as it was)."""
    peak, align = old.get("peak", []), bool(old.get("align", False))
    columns = node_columns("features", *(["live_bytes"] if peak else []),
                           *(["alignment"] if align else []))
    kept = {k: v for k, v in old.items() if k not in _DERIVED}
    hyper = {"type_dropout": 0.0, **old.get("hyper", {})}  # absent: written before dropout
    trained = {"dataset": None, "holdout_space": None, **old.get("trained", {}),
               "data_sha256": None}
    spec = {"format": old.get("format"), "spec_version": SPEC_VERSION, **kept,
            "constants": old.get("constants", {}), "additive": old.get("additive", []),
            "peak": peak, "rate_init": old.get("rate_init"), "node_columns": list(columns),
            "global_columns": list(GLOBAL_FEATURES), "net_constants": dict(NET_CONSTANTS),
            "domain": old.get("domain") or None, "hyper": hyper, "trained": trained,
            "tensors": old.get("tensors"), "weights_sha256": old.get("weights_sha256")}
    return seal(spec)


def migrate(folder: str | Path) -> str:
    """Rewrite ``folder``'s config.json as a spec, in place; returns what was done.

    Raises:
        WeightsError: the folder is damaged (the weights' hash, the tensors) or its config
            does not fit its tensors; nothing is written then.
    """
    tensors, old = weights.load(folder)
    path = Path(folder) / weights.CONFIG_FILE
    if "spec_version" in old:
        read_spec(old, tensors, str(path))
        return f"{path}: already a model spec (version {old['spec_version']}); left as it is"
    new = migrated(old)
    read_spec(new, tensors, str(path))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(new, indent=1))
    tmp.replace(path)
    return f"{path}: converted to model spec version {SPEC_VERSION} ({len(new['node_columns'])} " \
           f"node columns; spec_sha256 {new['spec_sha256'][:12]}...)"


def main(argv: list[str] | None = None) -> int:
    """Convert each folder named on the command line; exit 2 at the first that fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", metavar="DIR",
                        help="a weights folder (config.json + model.safetensors)")
    args = parser.parse_args(argv)
    for folder in args.folders:
        try:
            print(migrate(folder))
        except PerfSageError as exc:
            print(f"migrate_weights: error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
