"""The one prediction pipeline: weights → read → featurise → network → checks → notes.

The CLI (`perfsage predict`), the Python API (`perfsage.predict*`), the worker processes of
``predict_many`` and the evaluation commands all go through :class:`Pipeline`, so a
setting, a check or a note exists once. NumPy only: nothing here imports torch, TensorFlow
or a measuring tool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from perfsage.errors import UsageError
from perfsage.graph import Model, read_model
from perfsage.graph.reader import mapped
from perfsage.graph.rewrite import fold_hw_pads
from perfsage.predictors.features import GraphFeatures, featurize
from perfsage.predictors.intervals import DEFAULT_LEVEL
from perfsage.predictors.perfsage_gnn.runtime import check_finite

if TYPE_CHECKING:
    from perfsage.predictors.compressed import Correction, WeightBytes
    from perfsage.targets.vela_support import CpuPlacement

Source = str | PathLike[str] | bytes
#: TFLite Micro's target, whose arena and flash are computed.
TFLM = "cortex-m-tflm"


@dataclass(frozen=True, slots=True)
class Note:
    """Something a user should know about one prediction.

    ``kind`` is a stable key for programs (``outside-training``); ``message`` the sentence.
    """

    kind: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"kind": self.kind, "message": self.message}


#: Metrics that describe time on the NPU: not given for a model that runs mostly on the CPU.
NPU_TIME_METRICS = ("latency_ms", "npu_cycles", "energy_mj")


@dataclass(slots=True)
class Prediction:
    """One model's figures on one target, where they came from, and what to know about them.

    ``figures`` are the ones to use: the network's, with the metrics that can be computed
    exactly (named in ``exact``) computed instead, or the real tool's when the model was
    measured (``source == "measured"``; ``predicted`` then keeps the network's).
    """

    model: str
    target: str
    figures: dict[str, float]
    notes: list[Note] = field(default_factory=list)
    source: str = "predicted"
    exact: tuple[str, ...] = ()
    predicted: dict[str, float] | None = None
    measure_s: float | None = None
    interval: dict[str, tuple[float, float]] | None = None
    level: float | None = None

    def relative_width(self, metric: str) -> float | None:
        """(hi - lo) / prediction of ``metric``'s interval; None without one."""
        if not self.interval or metric not in self.interval:
            return None
        lo, hi = self.interval[metric]
        value = (self.predicted or self.figures).get(metric)
        return (hi - lo) / value if value else float("inf")

    def as_dict(self) -> dict[str, Any]:
        """JSON form (every figure finite, so plain JSON)."""
        out: dict[str, Any] = {"model": self.model, "target": self.target,
                               "source": self.source}
        if self.source == "measured":
            out |= {"measured": dict(self.figures), "predicted": dict(self.predicted or {}),
                    "measure_s": self.measure_s}
        else:
            out["predicted"] = dict(self.figures)
        if self.interval is not None:
            out |= {"interval": {m: list(v) for m, v in self.interval.items()},
                    "level": self.level}
        return out | {"exact": list(self.exact), "notes": [n.as_dict() for n in self.notes]}


@dataclass(slots=True)
class _Figures:
    """One model's figures and what its notes need to know about them.

    Which metrics were computed exactly, Vela's placement (Ethos-U targets, else None), the
    network's latency when the roofline floor raised it (else None), the encoded sizes
    of compressed weights when those corrected the figures (else None), and the network's
    SRAM when Vela's SOFTMAX working set raised it (else None).
    """

    row: dict[str, float]
    exact: tuple[str, ...]
    placement: CpuPlacement | None
    raised: float | None
    weights: WeightBytes | None = None
    compressed: bool = False  # pruned or clustered weights (a note says so)
    sram_raised: float | None = None


def _on_npu(model: Model, placement: CpuPlacement) -> np.ndarray:
    """Per operator of the main graph, whether Vela runs it on the NPU."""
    on_npu = np.ones(len(model.main.operators), dtype=bool)
    for op in placement.operators:
        on_npu[op.index] = False
    return on_npu


def _compressed_note(stored: WeightBytes) -> Note:
    """The note of a model whose compressed weights corrected its figures."""
    return Note("compressed-weights", f"pruned or clustered weights: Vela's encoder stores "
                f"them in {stored.actual.sum() / 1024:.4g} KiB against "
                f"{stored.reference.sum() / 1024:.4g} KiB for dense weights of the same "
                "shapes; flash, weight traffic, latency and energy are corrected for the "
                "difference (the network itself saw only dense weights)")


def source_name(source: Source) -> str:
    """How a model is named in results and messages: its path, or ``<bytes>``."""
    return "<bytes>" if isinstance(source, bytes | bytearray | memoryview) else str(source)


def read_for(target: str, source: Source, *, details: bool = False,
             vela: bool | None = None) -> tuple[Model, GraphFeatures]:
    """A model's IR and features as predictions for ``target`` read them.

    The one reading of a model for a target: prediction and adaptation to a user's
    measurements (``predictors.adapt``) must see the same graph. Quantisation is always
    read for Ethos-U and TFLite Micro (Vela's checks and TFLM's planner look at it), and on
    Ethos-U a PAD that Vela folds into the convolution after it is folded here too.
    ``vela``: whether ``target`` is an Ethos-U target, when the caller knows already.
    """
    if vela is None:
        from perfsage.targets.vela_support import ETHOS_U_TARGETS

        vela = target in ETHOS_U_TARGETS
    with mapped(source) as (contents, name):
        model = read_model(contents, name=name, details=details or vela or target == TFLM)
        if vela:  # Vela folds a PAD into the convolution after it: so do we
            model = fold_hw_pads(model)
        return model, featurize(model)


def _sram_cap_kib(target: str) -> float | None:
    """The SRAM (KiB) an Ethos-U target's memory mode lets Vela use; None where unbounded.

    With ``arena_cache_size`` set (the U85's Dedicated_Sram_384KB: a 384 KiB cache in front
    of DRAM), Vela never reports more SRAM than that, however large the model: the learnt
    peak extrapolates past it on models larger than any trained on (ResNet-50 at 160 px:
    499 KiB predicted, 380 measured), so the figure and its interval stop at the bound.
    """
    from perfsage.targets.hardware import hardware

    hw = hardware(target)
    return hw.arena_cache_bytes / 1024 if hw.sram_limited else None


class Pipeline:
    """Predictions for one target from one set of weights (shipped, or a trained folder).

    Args:
        target: a target with shipped weights; may be omitted when ``weights`` is given
            (the weights name their target).
        weights: a weights folder from ``perfsage train`` instead of the shipped ones.
    """

    def __init__(self, target: str | None = None, weights: str | PathLike[str] | None = None,
                 ) -> None:
        from perfsage.predictors.intervals import IntervalCalibration
        from perfsage.predictors.shipped import load_model, shipped_targets, weights_dir
        from perfsage.targets.vela_support import ETHOS_U_TARGETS

        if target is None and weights is None:
            raise UsageError("no target given: pass target=NAME (or -t NAME); targets with "
                             f"shipped weights: {', '.join(shipped_targets())}")
        self.network = load_model(target, str(weights) if weights is not None else None)
        self.target: str = self.network.target
        self.metrics: list[str] = self.network.metrics
        self._vela = self.target in ETHOS_U_TARGETS
        self.folder = Path(weights) if weights is not None else weights_dir(self.target)
        #: Conformal intervals calibrated for these weights (None: the folder has none).
        self.calibration = IntervalCalibration.load(self.folder)
        #: The most SRAM Vela may use on this target (KiB), where its memory mode bounds it.
        self.sram_cap_kib = _sram_cap_kib(self.target) if self._vela else None

    @property
    def lead_metric(self) -> str:
        """The metric whose interval decides whether to measure: latency where there is one."""
        return "latency_ms" if "latency_ms" in self.metrics else self.metrics[0]

    def read(self, source: Source, *, details: bool = False) -> tuple[Model, GraphFeatures]:
        """A model's IR and features; ``details`` also reads tensor names and quantisation.

        Quantisation is always read for Ethos-U and TFLite Micro: Vela's checks and TFLM's
        planner look at it.
        """
        return read_for(self.target, source, details=details, vela=self._vela)

    def columns(self, graphs: list[GraphFeatures], names: list[str] | None = None,
                ) -> dict[str, np.ndarray]:
        """Every metric as an array over ``graphs``, checked finite (graphs named by ``names``).

        Raises:
            PredictionError: a figure is infinite or NaN; it never leaves the program.
        """
        columns = self.network.predict(graphs)
        check_finite(columns, names or [f"graph {i}" for i in range(len(graphs))])
        return columns

    def figures(self, models: list[Model], graphs: list[GraphFeatures], names: list[str],
                ) -> list[dict[str, float]]:
        """Every metric for every model, one dict each.

        The network's figures, checked finite, with what can be computed exactly computed
        instead (see :meth:`exact`) and latency raised to the roofline floor.
        """
        return [f.row for f in self._figures(models, graphs, names)]

    def _figures(self, models: list[Model], graphs: list[GraphFeatures], names: list[str],
                 ) -> list[_Figures]:
        """:meth:`figures`, with what each model's notes need to know about them."""
        if not graphs:
            return []
        columns = self.columns(graphs, names)
        out = []
        for i, model in enumerate(models):
            placement = self._placement(model) if self._vela else None
            computed = self.exact(model, placement)
            row = {m: float(columns[m][i]) for m in self.metrics} | computed
            raised = stored = sram_raised = None
            compressed = False
            if placement is not None:
                stored, compressed, fix = self._own_weights(model, graph=graphs[i],
                                                            placement=placement)
                self._kept_npu_time(fix, row).apply(row)
                raised = self._at_least_the_floor(row, model, graphs[i], placement, stored)
                sram_raised = self._sram_for_softmax(row, graphs[i], model, placement)
            if self.sram_cap_kib is not None and "sram_kib" in row:
                row["sram_kib"] = min(row["sram_kib"], self.sram_cap_kib)
            out.append(_Figures(row, tuple(computed), placement, raised, stored, compressed,
                                sram_raised))
        return out

    def _own_weights(self, model: Model, graph: GraphFeatures, placement: CpuPlacement,
                     ) -> tuple[WeightBytes, bool, Correction]:
        """What the model's own weight values change on an Ethos-U target.

        The network sees shapes, not weight values, and learnt on the builder's dense random
        weights; Vela's encoder sees the values (:mod:`perfsage.predictors.compressed`).
        Pruned or clustered weights encode to a fraction of those, and so do trained or
        He-initialised ones, peaked at zero (Keras' ResNets and ShuffleNets: 4-7 % fewer
        bytes; on 51 real models, U55 flash MAPE 18 -> 6 % and latency 7.0 -> 5.7 %). Returns
        the encoded sizes, whether the weights are pruned or clustered, and the correction.
        """
        from perfsage.graph.weight_stats import is_compressed, weight_tensors
        from perfsage.predictors.compressed import correction, weight_bytes
        from perfsage.targets.hardware import hardware

        tensors = weight_tensors(model)
        found = weight_bytes(model, tensors)
        fix = correction(model, graph, hardware(self.target), _on_npu(model, placement), found,
                         self.metrics)
        return found, is_compressed(model, tensors), fix

    def _kept_npu_time(self, fix: Correction, row: dict[str, float]) -> Correction:
        """``fix`` limited so that the latency it corrects keeps the NPU cycles' time.

        ``row``: the network's figures (``latency_ms`` and ``npu_cycles`` where it has
        them); :meth:`Correction.limited` says why.
        """
        from perfsage.targets.hardware import hardware

        if "latency_ms" not in row or "npu_cycles" not in row:
            return fix
        npu_ms = hardware(self.target).cycles_to_ms(row["npu_cycles"])
        return fix.limited(row["latency_ms"], npu_ms)

    def floor_ms(self, model: Model, graph: GraphFeatures,
                 placement: CpuPlacement | None = None, stored: WeightBytes | None = None,
                 ) -> float:
        """The least time an Ethos-U can take for a model: its roofline floor, in ms.

        The larger of the NPU operators' summed compute and each memory's summed traffic at
        the ini's clock and bandwidths (:mod:`perfsage.predictors.roofline`); no Vela
        estimate fell below it on 333 models per target (docs/perfsage.md). ``stored``:
        the encoded sizes of compressed weights, which the weights' memory moves instead.
        """
        from perfsage.predictors.roofline import estimate_features
        from perfsage.targets.hardware import hardware

        weights = None
        if stored is not None:
            from perfsage.predictors.compressed import constant_bytes

            weights = constant_bytes(graph, stored.actual)
        found = estimate_features(graph, hardware(self.target),
                                  _on_npu(model, placement or self._placement(model)), weights)
        return found.floor_cycles / found.core_clock_hz * 1e3

    def _at_least_the_floor(self, row: dict[str, float], model: Model, graph: GraphFeatures,
                            placement: CpuPlacement, stored: WeightBytes | None = None,
                            ) -> float | None:
        """Raise a latency the network puts below the roofline floor to the floor.

        Physics bounds what the network may say: a figure below the floor is certainly too
        low (on real architectures the network under-predicted by up to 87 % where the
        floor alone was far closer). NPU cycles follow latency in proportion. Returns the
        network's latency when it was raised, else None.
        """
        if "latency_ms" not in row or row["latency_ms"] <= 0:
            return None
        floor, low = self.floor_ms(model, graph, placement, stored), row["latency_ms"]
        if low >= floor:
            return None
        for m in ("latency_ms", "npu_cycles"):
            if m in row:
                row[m] *= floor / low
        return low

    def _sram_for_softmax(self, row: dict[str, float], graph: GraphFeatures, model: Model,
                          placement: CpuPlacement) -> float | None:
        """Raise an SRAM figure below what Vela's SOFTMAX lowering needs to that need.

        The working set is computed (:mod:`perfsage.targets.vela_softmax`); a dense
        prediction head makes it the model's peak, which the network has no way to know.
        Returns the network's figure when it was raised, else None.
        """
        from perfsage.targets.hardware import hardware
        from perfsage.targets.vela_softmax import softmax_sram_bytes

        if "sram_kib" not in row:
            return None
        hw = hardware(self.target)
        need = softmax_sram_bytes(graph, _on_npu(model, placement), hw.accelerator.family,
                                  hw.arena_cache_bytes) / 1024
        if row["sram_kib"] >= need:
            return None
        low, row["sram_kib"] = row["sram_kib"], need
        return low

    def exact(self, model: Model, placement: CpuPlacement | None = None) -> dict[str, float]:
        """The metrics of this target that follow from the graph alone, computed, not learnt.

        On an Ethos-U target, ``cpu_ops`` comes from Vela's supported-operator checks
        (:mod:`perfsage.targets.vela_support`). On TFLite Micro, the flash a model takes is
        its file's size, and the arena is its memory planner replayed
        (:mod:`perfsage.targets.tflm_planner`) for every model whose operators it knows;
        for the others the network predicts the arena.
        """
        out: dict[str, float] = {}
        if self._vela and "cpu_ops" in self.metrics:
            out["cpu_ops"] = float((placement or self._placement(model)).cpu_ops)
        if self.target == TFLM:
            if "flash_kib" in self.metrics and model.size_bytes:
                out["flash_kib"] = model.size_bytes / 1024
            if "arena_kib" in self.metrics:
                from perfsage.errors import MeasurementError
                from perfsage.targets.tflm_planner import arena_bytes

                try:
                    out["arena_kib"] = arena_bytes(model) / 1024
                except MeasurementError:
                    pass  # an operator the replica has no rule for: the network's figure
        return out

    def _placement(self, model: Model) -> CpuPlacement:
        from perfsage.targets.vela_support import cpu_placement

        return cpu_placement(model, self.target)

    def notes(self, model: Model, graph: GraphFeatures,
              placement: CpuPlacement | None = None) -> list[Note]:
        """What a user should know about one model's prediction on this target.

        ``placement``: Vela's placement of ``model``, when the caller has it already.
        """
        reasons = self.network.outside_training(graph, [op.opcode for op in
                                                        model.main.operators])
        notes = [Note("outside-training", f"outside the training data ({r}); the prediction "
                                          "is an extrapolation") for r in reasons]
        if self._vela:
            from perfsage.targets.vela_support import model_notes

            found = model_notes(model, [self.target],
                                placements=[placement] if placement is not None else [])
            notes += [Note(n.kind, n.message) for n in found]
        return notes

    def predict(self, sources: list[Source], *, details: bool = False,
                level: float | None = DEFAULT_LEVEL, measure_if_unsure: float | None = None,
                timeout_s: float = 120.0, workers: int = 1,
                read: list[tuple[Model, GraphFeatures]] | None = None) -> list[Prediction]:
        """Figures, intervals and notes for each model, in order.

        Args:
            sources: paths or bytes of .tflite models; a bad file raises ModelFileError.
            details: also read tensor names (for per-operator tables).
            read: ``sources`` as :meth:`read` returned them, where the caller has read them
                already (the CLI reads each file first to report a bad one and go on):
                reading and featurizing a real-size model costs as much as predicting it.
            level: the share of true values each interval should cover; None for none.
                Weights without a calibration give no intervals.
            measure_if_unsure: measure with the real tool every model whose interval on
                :attr:`lead_metric` is wider than this, relative to the prediction
                ((hi - lo) / prediction); None measures nothing.
            timeout_s: the measuring pool's limit per model, in seconds.
            workers: the measuring pool's processes.

        A model that runs mostly on the CPU (a ``mostly-cpu`` note) gets no NPU time figures
        (:data:`NPU_TIME_METRICS`): they would describe the small part the NPU runs.
        """
        if measure_if_unsure is not None and not measure_if_unsure >= 0:
            raise UsageError(f"measure_if_unsure must be a relative width of 0 or more, not "
                             f"{measure_if_unsure!r}")
        if measure_if_unsure is not None and (self.calibration is None or level is None):
            raise UsageError(f"measure_if_unsure needs intervals, and the weights in "
                             f"{self.folder} have no calibration (intervals.json)")
        if read is None:
            read = [self.read(s, details=details) for s in sources]
        elif len(read) != len(sources):
            raise UsageError(f"read: {len(read)} models read for {len(sources)} sources")
        names = [source_name(s) for s in sources]
        models = [m for m, _ in read]
        graphs = [g for _, g in read]
        found = self._figures(models, graphs, names)
        figures, exact = [f.row for f in found], [f.exact for f in found]
        notes = [self.notes(model, graph, f.placement)
                 for (model, graph), f in zip(read, found, strict=True)]
        for i, f in enumerate(found):
            if set(self.metrics) <= set(f.exact):  # nothing was extrapolated
                notes[i] = [n for n in notes[i] if n.kind != "outside-training"]
            if f.compressed:
                notes[i].append(_compressed_note(f.weights))
            if f.raised is not None:
                notes[i].append(Note(
                    "below-physics", f"the network said {f.raised:.4g} ms, below the least "
                    f"time the NPU's compute and memory traffic can take "
                    f"({f.row['latency_ms']:.4g} ms, the roofline floor); raised to the floor"))
            if f.sram_raised is not None:
                notes[i].append(Note(
                    "softmax-sram", f"the network said {f.sram_raised:.4g} KiB of SRAM, less "
                    f"than Vela's lowering of the model's SOFTMAX needs "
                    f"({f.row['sram_kib']:.4g} KiB); raised to that"))
        bounds = self._intervals(figures, graphs, notes, exact, level, names)
        out = []
        for i, (name, fig) in enumerate(zip(names, figures, strict=True)):
            interval = {m: (float(lo[i]), float(hi[i])) for m, (lo, hi) in bounds.items()}
            if any(n.kind in ("mostly-cpu", "vela-rejects") for n in notes[i]):
                fig = {m: v for m, v in fig.items() if m not in NPU_TIME_METRICS}
                interval = {m: v for m, v in interval.items() if m in fig}
            out.append(Prediction(name, self.target, fig, notes[i], exact=exact[i],
                                  interval=interval if bounds else None,
                                  level=level if bounds else None))
        if measure_if_unsure is not None:
            unsure = [i for i, p in enumerate(out)
                      if (p.relative_width(self.lead_metric) or 0.0) > measure_if_unsure]
            if unsure:
                self.measure([out[i] for i in unsure], [sources[i] for i in unsure],
                             timeout_s=timeout_s, workers=workers)
        return out

    def _intervals(self, figures: list[dict[str, float]], graphs: list[GraphFeatures],
                   notes: list[list[Note]], exact: list[tuple[str, ...]], level: float | None,
                   names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Metric -> (lo, hi) arrays over the models, or {} without a calibration or level."""
        if self.calibration is None or level is None or not figures:
            return {}
        columns = {m: np.array([f[m] for f in figures]) for m in self.metrics}
        bounds = self.calibration.intervals(columns, graphs, level,
                                            notes=[[n.kind for n in ns] for ns in notes])
        for i, computed in enumerate(exact):  # an exact figure's interval is the figure
            for m in computed:
                bounds[m][0][i] = bounds[m][1][i] = figures[i][m]
        if self.sram_cap_kib is not None and "sram_kib" in bounds:
            bounds["sram_kib"] = tuple(np.minimum(b, self.sram_cap_kib)
                                       for b in bounds["sram_kib"])
        check_finite({f"{m} interval bound": np.concatenate(b) for m, b in bounds.items()},
                     names * 2)
        return bounds

    def measure(self, predictions: list[Prediction], sources: list[Source], *,
                timeout_s: float = 120.0, workers: int = 1) -> None:
        """Measure these models with the target's real tool, in place of their predictions.

        Runs in the worker pool with its time limits (a tool that hangs or crashes costs
        that model, not the call). A model the tool fails on keeps its prediction and gets
        a ``measure-failed`` note.
        """
        from perfsage.targets.pool import MeasurePool

        items = []
        for i, source in enumerate(sources):
            with mapped(source) as (contents, _):
                items.append((i, bytes(contents)))
        with MeasurePool([self.target], workers=workers, timeout_s=timeout_s) as pool:
            for result in pool.imap_unordered(items):
                found = predictions[result.key]
                if result.ok:
                    found.predicted, found.figures = found.figures, dict(result.metrics)
                    found.source, found.measure_s = "measured", result.wall_s
                else:
                    found.notes.append(Note("measure-failed", f"{self.target} could not "
                                            f"measure it ({result.status}: {result.message});"
                                            " the figures are predicted"))

    def per_operator(self, model: Model, graph: GraphFeatures) -> dict[str, Any]:
        """Where the additive metrics go: each operator's share of the same network's totals.

        The additive readout predicts a network's latency (energy, cycles, flash) as a sum of
        per-operator costs plus a per-network overhead, so these rows add up to the totals
        :meth:`predict` reports: on Ethos-U each row is corrected for its operator's own
        weights as the totals are (flash rows are then the encoded weights, the overhead what
        Vela adds). Peak metrics (SRAM, arena) are not sums and are not split.
        Returns ``metrics`` (the split ones), ``rows`` (one per operator, by index: ``index``,
        ``op``, ``output_shape``, ``macs`` and a value per metric), ``overhead`` and ``total``.
        """
        from perfsage.graph.analysis import analyze

        split = self.network.operator_costs(graph)
        if not split:
            raise UsageError(f"weights for {self.target} were trained with the pooled readout, "
                             "which does not split costs per operator; use weights trained "
                             "with --readout additive")
        layers = analyze(model).layers
        metrics = list(split)
        costs = {m: np.asarray(split[m][0], dtype=np.float64) for m in metrics}
        overhead = {m: float(split[m][1]) for m in metrics}
        if self._vela:  # the model's own weights, per operator as in the totals
            placement = self._placement(model)
            fix = self._own_weights(model, graph, placement)[2]
            totals = {m: float(costs[m].sum()) + overhead[m] for m in metrics}
            self._kept_npu_time(fix, totals).apply_per_operator(costs, overhead)
        check_finite({f"{m} of one operator": costs[m] for m in metrics}
                     | {f"{m} overhead": np.array([overhead[m]]) for m in metrics},
                     [model.source] * len(layers))
        rows = []
        for i, layer in enumerate(layers):
            rows.append({"index": layer.index, "op": layer.op,
                         "output_shape": [list(s) for s in layer.output_shapes],
                         "macs": int(layer.macs),
                         **{m: float(costs[m][i]) for m in metrics}})
        total = {m: float(math.fsum([*costs[m].tolist(), overhead[m]])) for m in metrics}
        return {"metrics": metrics, "rows": rows, "overhead": overhead, "total": total}
