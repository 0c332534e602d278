"""Per-layer breakdowns (``perfsage predict --per-layer``) from the block predictor's weights.

Block weights ship apart from the GNN's, under ``perfsage/weights/block/<target>``, so the
GNN folders (and ``shipped.shipped_targets``) stay as they are.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from perfsage.errors import WeightsError
from perfsage.graph import Model
from perfsage.predictors.features import GraphFeatures, featurize
from perfsage.predictors.shipped import WEIGHTS_ROOT

BLOCK_ROOT = WEIGHTS_ROOT / "block"


def block_targets() -> list[str]:
    """Targets with shipped block-predictor weights."""
    if not BLOCK_ROOT.is_dir():
        return []
    return sorted(p.name for p in BLOCK_ROOT.iterdir() if (p / "config.json").is_file())


@cache
def load_block_predictor(target: str, weights: str | None = None):
    """The block predictor for ``target``: shipped, or from a folder written by ``save``."""
    from perfsage.predictors.block.predictor import BlockPredictor

    folder = Path(weights) if weights else BLOCK_ROOT / target
    if not weights and not (folder / "config.json").is_file():
        raise WeightsError(f"no block-predictor weights ship for target {target!r} (they "
                           f"ship for: {', '.join(block_targets()) or 'none'}); train some "
                           "with benchmarks/train_block.py and pass --block-weights DIR")
    predictor = BlockPredictor.load(folder)
    if predictor.target_ != target:
        raise WeightsError(f"{folder}: block weights are for target {predictor.target_!r}, "
                           f"not {target!r}")
    return predictor


def per_layer(model: Model, predictor, graph: GraphFeatures | None = None) -> dict[str, Any]:
    """Each block of ``model`` with its operators and predicted costs.

    ``graph`` is ``featurize(model)`` where the caller has it already.

    Returns ``metrics`` (those shown: every metric the predictor learns in relative terms),
    ``peak`` (metric -> whether it is a peak, not a sum), ``rows`` (one per block, then one
    ``overhead`` row: ``operators`` (output tensor names; read the model with details),
    ``types`` and a value per metric, plus ``share`` of each additive metric in %) and
    ``total`` (metric -> predicted total).
    """
    from perfsage.predictors.outputs import learned

    sub = model.main
    ops = sub.operators
    costs = predictor.block_costs(graph if graph is not None else featurize(model))
    metrics = learned(predictor.scale_)
    total = costs["total"]
    rows = []
    for i, block in enumerate(costs["blocks"]):
        rows.append({"block": i, "operators": [_label(sub, j) for j in block],
                     "types": [ops[j].opcode for j in block],
                     **{m: float(costs["costs"][m][i]) for m in metrics}})
    rows.append({"block": "overhead", "operators": [], "types": [],
                 **{m: costs["overhead"][m] for m in metrics}})
    for row in rows:
        row["share"] = {m: 100 * row[m] / total[m] for m in metrics
                        if not costs["peak"][m] and total[m] > 0}
    return {"metrics": metrics, "peak": costs["peak"], "rows": rows,
            "total": {m: total[m] for m in metrics}}


def _label(sub, index: int) -> str:
    """An operator's output tensor name (what converters name layers by), else its index."""
    op = sub.operators[index]
    names = [sub.tensors[t].name for t in op.outputs if t >= 0]
    if not names or not names[0]:
        return f"{op.name.lower()}#{index}"
    # Converter names join fused layers with ';' under long scopes: keep the layer's own.
    return "/".join(names[0].split(";")[0].split("/")[-2:])
