"""Weights that ship inside the package, one folder per target under ``perfsage/weights``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from perfsage.errors import WeightsError

WEIGHTS_ROOT = Path(__file__).resolve().parent.parent / "weights"


def shipped_targets() -> list[str]:
    """Targets with weights in the package."""
    if not WEIGHTS_ROOT.is_dir():
        return []
    return sorted(p.name for p in WEIGHTS_ROOT.iterdir() if (p / "config.json").is_file())


def weights_dir(target: str) -> Path:
    """The shipped weights folder of ``target``."""
    folder = WEIGHTS_ROOT / target
    if not (folder / "config.json").is_file():
        ships = ", ".join(shipped_targets()) or "none"
        raise WeightsError(f"no PerfSAGE weights ship for target {target!r} (weights ship for: "
                           f"{ships}); train some with `perfsage train DATASET --target "
                           f"{target} --out DIR` and pass --weights DIR")
    return folder


@cache
def load_model(target: str | None = None, weights: str | None = None):
    """The PerfSAGE model for a target (shipped) or from a weights folder, loaded once."""
    from perfsage.predictors.perfsage_gnn.predictor import PerfSAGEModel

    model = PerfSAGEModel.load(weights if weights else weights_dir(target))
    if target is not None and model.target != target:
        raise WeightsError(f"{weights}: weights are for target {model.target!r}, not {target!r}")
    return model
