"""Calibrate the shipped weights' prediction intervals and measure their coverage.

    perfsage dataset import data/edgedlperf-20k.parquet data/random-graphs-6k.parquet \\
        --out out/intervals/edl26k
    nice -n 10 .venv/bin/python benchmarks/calibrate_intervals.py \\
        --dataset out/intervals/edl26k --zoo ZOO_DATASET --write

Calibration graphs are those the shipped weights never trained on: the hash-based test
split of EdgeDLPerf-26k (groups ``task`` and ``random``) and the labelled models of the zoo
of real architectures (group ``zoo``; a dataset folder, e.g. one imported from
data/zoo/*.parquet): all of them, or only its hash-based test split where the weights were
trained on the zoo's other models. ``--write`` saves ``intervals.json`` beside each
target's weights.

Coverage is never reported on the graphs a calibration was fitted on: the task and random
graphs are split into five folds by graph hash and the zoo by family (leave one family
out), and each fold or family is scored by a calibration fitted on all the others. The
zoo is also scored by a calibration without any zoo graph, to show what calibrating on it
buys. Real models nobody here wrote (data/real-models/labels.csv, built by
benchmarks/real_models.py) are the final test: scored by the calibration that ships,
never calibrated on. Writes the ``intervals`` section of docs/results.md (``--no-doc``:
print only) and every figure to out/intervals/coverage.json.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import sys
import time
from pathlib import Path

# Small matrices, many fits: BLAS threads only contend (set before NumPy loads BLAS).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import calibration_data as cd  # noqa: E402
from results_doc import replace_section  # noqa: E402

from perfsage.dataset.store import Store  # noqa: E402
from perfsage.pipeline import NPU_TIME_METRICS  # noqa: E402
from perfsage.predictors.intervals import (  # noqa: E402
    DIFFICULTY_FEATURES,
    LEVELS,
    IntervalCalibration,
    Reference,
    difficulty_features,
)
from perfsage.predictors.perfsage_gnn.predictor import PerfSAGEModel  # noqa: E402
from perfsage.predictors.shipped import weights_dir  # noqa: E402

REPORT_LEVELS = (0.8, 0.9, 0.95)
#: Metrics the prediction pipeline computes exactly (their interval is the figure itself).
EXACT = {"ethos-u55-128": ("cpu_ops",), "ethos-u65-256": ("cpu_ops",),
         "ethos-u85-256": ("cpu_ops",), "cortex-m-tflm": ("flash_kib", "arena_kib")}
#: Metrics whose coverage is shown per zoo family.
FAMILY_METRICS = ("latency_ms", "sram_kib", "arena_kib")
REAL_LABELS = ROOT / "data" / "real-models" / "labels.csv"
REAL_MODELS = ROOT / "out" / "keras-zoo"
#: The issue's bar: 90 % intervals cover 80-98 % of real models' latency and SRAM.
REAL_BAR = (80.0, 98.0)


def _coverage(lo: np.ndarray, hi: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((y >= lo * (1 - 1e-9)) & (y <= hi * (1 + 1e-9))) * 100)


def _width(lo: np.ndarray, hi: np.ndarray, pred: np.ndarray) -> float:
    ok = pred > 0
    return float(np.median((hi[ok] - lo[ok]) / pred[ok]) * 100) if ok.any() else float("nan")


def _clusters(data: cd.Labelled) -> np.ndarray:
    """Zoo families as clusters (a new real family is widened as left-out ones needed)."""
    return np.where(data.groups == "zoo", data.names, "")


#: Groups that count in every difficulty bin, for every metric or per metric
#: (``--zoo-everywhere [METRIC ...]``).
EVERYWHERE: tuple[str, ...] | dict[str, tuple[str, ...]] = ()


def _fit(target, reference, x, data, pred, modes, index, levels):
    return IntervalCalibration.fit(target, reference, x[index],
                                   {m: v[index] for m, v in data.labels.items()},
                                   {m: v[index] for m, v in pred.items()},
                                   data.groups[index], clusters=_clusters(data)[index],
                                   everywhere=EVERYWHERE, modes=modes, levels=levels)


def cross_validate(target, reference, x, data, pred, modes) -> dict:
    """Per metric and level: lo/hi of every graph from a calibration without its unit."""
    out = {m: {lv: [np.zeros(len(data)), np.zeros(len(data))] for lv in REPORT_LEVELS}
           for m in pred}
    for unit in np.unique(data.units):
        held = data.units == unit
        cal = _fit(target, reference, x, data, pred, modes, ~held, REPORT_LEVELS)
        for lv in REPORT_LEVELS:
            bounds = cal.bounds({m: v[held] for m, v in pred.items()}, x[held], lv)
            for m, (lo, hi) in bounds.items():
                out[m][lv][0][held], out[m][lv][1][held] = lo, hi
    return out


def without_zoo(target, reference, x, data, pred, modes) -> dict:
    """The zoo's lo/hi from a calibration on the task and random graphs alone."""
    zoo = data.groups == "zoo"
    if not zoo.any() or zoo.all():
        return {}
    cal = _fit(target, reference, x, data, pred, modes, ~zoo, REPORT_LEVELS)
    return {lv: cal.bounds({m: v[zoo] for m, v in pred.items()}, x[zoo], lv)
            for lv in REPORT_LEVELS}


def real_models(target: str, cal: IntervalCalibration) -> list[dict]:
    """Real models' measured figures, predictions and intervals (the calibration that ships).

    Predicted by the pipeline users call (``perfsage.pipeline.Pipeline``: the network, what
    is computed exactly, the weights' own encoded size, the roofline floor, Vela's notes),
    with ``cal`` in place of the calibration file it replaces.
    """
    from perfsage.pipeline import Pipeline

    if not REAL_LABELS.is_file():
        return []
    pipe = Pipeline(target)
    pipe.calibration = cal
    rows = []
    with REAL_LABELS.open(newline="") as f:
        for row in csv.DictReader(f):
            path = REAL_MODELS / f"{row['model']}.tflite"
            if row["target"] != target or row["status"] != "ok" or not path.is_file():
                continue
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != row["sha256"]:
                continue  # rebuilt since it was measured
            [found] = pipe.predict([data], level=0.9)
            kinds = sorted({n.kind for n in found.notes})
            for m, (lo, hi) in (found.interval or {}).items():
                if row.get(m):
                    rows.append({"model": row["model"], "family": row["family"], "metric": m,
                                 "measured": float(row[m]), "predicted": found.figures[m],
                                 "lo": lo, "hi": hi, "notes": kinds})
    return rows


def target_report(target: str, data: cd.Labelled, train_graphs, write: bool) -> dict:
    model = PerfSAGEModel.load(weights_dir(target))
    reference = Reference.from_training(train_graphs, model.spec.domain)
    # As the pipeline: no NPU time figure (so no interval) where the CPU runs most of it.
    cpu = np.array([bool(set(n) & {"mostly-cpu", "vela-rejects"}) for n in data.notes])
    for m in NPU_TIME_METRICS:
        if m in data.labels:
            data.labels[m] = np.where(cpu, np.nan, data.labels[m])
    pred = {m: np.asarray(v, dtype=np.float64) for m, v in model.predict(data.graphs).items()}
    _softmax_floor(target, data.graphs, pred)
    modes = dict(model.spec.modes)
    x = difficulty_features(data.graphs, reference, data.notes)
    groups, counts = np.unique(data.groups, return_counts=True)
    info = {"graphs": dict(zip(groups.tolist(), counts.tolist(), strict=True)),
            "zoo_families": sorted(set(data.names[data.groups == "zoo"].tolist())),
            "note": "EdgeDLPerf-26k test split (task spaces, random graphs) and the zoo; "
                    "benchmarks/calibrate_intervals.py"}
    cal = IntervalCalibration.fit(target, reference, x, data.labels, pred, data.groups,
                                  clusters=_clusters(data), everywhere=EVERYWHERE, modes=modes,
                                  info=info)
    cal.weights_sha256 = model.config["weights_sha256"]
    if write:
        cal.save(weights_dir(target))
    cv = cross_validate(target, reference, x, data, pred, modes)
    no_zoo = without_zoo(target, reference, x, data, pred, modes)
    zoo = data.groups == "zoo"
    table = {}
    for m in pred:
        y = data.labels[m]
        ok = np.isfinite(y) & ((y > 0) | (modes.get(m) != "log"))
        per = {}
        for g in [*[g for g in ("task", "random", "zoo") if g in groups], "all"]:
            sel = ok & ((data.groups == g) if g != "all" else True)
            if not sel.any():
                continue
            per[g] = {"n": int(sel.sum()),
                      **{f"cover_{int(lv * 100)}": _coverage(cv[m][lv][0][sel],
                                                             cv[m][lv][1][sel], y[sel])
                         for lv in REPORT_LEVELS},
                      "width_90": _width(cv[m][0.9][0][sel], cv[m][0.9][1][sel], pred[m][sel])}
        if no_zoo:
            sel = ok[zoo]
            lo, hi = no_zoo[0.9][m]
            per["zoo, calibrated without zoo"] = {
                "n": int(sel.sum()), "cover_90": _coverage(lo[sel], hi[sel], y[zoo][sel]),
                "width_90": _width(lo[sel], hi[sel], pred[m][zoo][sel])}
        table[m] = per
    families = {}
    for fam in sorted(set(data.names[zoo].tolist())):
        sel = zoo & (data.names == fam)
        families[fam] = {m: _coverage(cv[m][0.9][0][sel], cv[m][0.9][1][sel],
                                      data.labels[m][sel]) for m in FAMILY_METRICS if m in pred}
        families[fam]["n"] = int(sel.sum())
    return {"table": table, "families": families, "real": real_models(target, cal),
            "bins": {m: c.counts for m, c in cal.metrics.items()},
            "inflation_90": {m: c.inflation[LEVELS.index(0.9)].tolist()
                             for m, c in cal.metrics.items()},
            "coef": {m: dict(zip(DIFFICULTY_FEATURES, np.round(c.score.coef, 3).tolist(),
                                 strict=True)) for m, c in cal.metrics.items()}}


def _softmax_floor(target: str, graphs: list, pred: dict[str, np.ndarray]) -> None:
    """Raise SRAM to Vela's SOFTMAX working set, as prediction does (``Pipeline``).

    The residuals calibrated are those of the figures a user gets: without the floor, a
    zoo U-Net's network-only SRAM (a third of Vela's) would widen every SRAM interval.
    """
    from perfsage.targets.hardware import HardwareError, hardware
    from perfsage.targets.vela_softmax import softmax_sram_bytes

    if "sram_kib" not in pred:
        return
    try:
        hw = hardware(target)
    except HardwareError:  # not an Ethos-U target
        return
    floor = np.array([softmax_sram_bytes(g, np.ones(len(g.op_types), dtype=bool),
                                         hw.accelerator.family, hw.arena_cache_bytes)
                      for g in graphs]) / 1024
    pred["sram_kib"] = np.maximum(pred["sram_kib"], floor)


#: Relative interval widths swept for --measure-if-unsure (inf: never measure).
UNSURE_WIDTHS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, float("inf"))
UNSURE_PLOT = ROOT / "docs" / "plots" / "measure_if_unsure.png"


def unsure_sweep(real: list[dict], metric: str = "latency_ms") -> list[dict]:
    """What ``--measure-if-unsure W`` gives on the real models, for each W in UNSURE_WIDTHS.

    A model whose 90 % interval on ``metric`` is wider than W relative to its prediction is
    measured (its figure is then Vela's: no error); the others keep the prediction. Per W:
    the share measured, the MAPE and the worst miss over every model.
    """
    rows = [r for r in real if r["metric"] == metric]
    if not rows:
        return []
    y, p, lo, hi = (np.array([r[k] for r in rows]) for k in ("measured", "predicted", "lo", "hi"))
    width = (hi - lo) / p
    error = np.abs(p / y - 1) * 100
    out = []
    for w in UNSURE_WIDTHS:
        measured = width > w
        kept = np.where(measured, 0.0, error)
        out.append({"width": w, "measured_pct": float(measured.mean() * 100),
                    "mape": float(kept.mean()), "worst_pct": float(kept.max())})
    return out


def plot_unsure(sweeps: dict[str, list[dict]]) -> Path | None:
    """Accuracy against the share measured, one line per target (docs/plots)."""
    sweeps = {t: s for t, s in sweeps.items() if s}
    if not sweeps:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for target, sweep in sweeps.items():
        share = [r["measured_pct"] for r in sweep]
        axes[0].plot(share, [r["mape"] for r in sweep], marker="o", label=target)
        axes[1].plot(share, [r["worst_pct"] for r in sweep], marker="o", label=target)
    for ax, name in zip(axes, ("latency MAPE, %", "worst latency miss, %"), strict=True):
        ax.set_xlabel("real models measured, %")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[1].axhline(10, color="grey", linestyle="--", linewidth=1)
    axes[0].legend(fontsize=8)
    fig.suptitle("--measure-if-unsure W on real models (W from 0 to never)", fontsize=10)
    fig.tight_layout()
    UNSURE_PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(UNSURE_PLOT, dpi=110)
    plt.close(fig)
    return UNSURE_PLOT


def _pct(v: float) -> str:
    return "–" if v != v else f"{v:.1f}"


def doc_lines(reports: dict, command: str, seconds: float) -> list[str]:
    lines = ["## Prediction intervals", "",
             "Regenerate (the datasets rebuilt from the repository's Parquet files; "
             "`--write` also saves each target's `intervals.json`):", "", "```sh",
             "perfsage dataset import data/edgedlperf-20k.parquet data/random-graphs-6k.parquet "
             "--out out/intervals/edl26k",
             "perfsage dataset import data/zoo/*.parquet --out out/intervals/zoo",
             f"nice -n 10 {command}", "```", "",
             "Split conformal intervals in log space, Mondrian by a difficulty score computed "
             "from the graph's features alone, widened by what left-out zoo families needed "
             "(src/perfsage/predictors/intervals.py says how). Calibrated on graphs the shipped "
             "weights never trained on: the EdgeDLPerf-26k test split (groups *task* and "
             "*random*) and the zoo of real architectures (*zoo*; its test split only where "
             "the weights trained on the rest of it). Coverage is the share of "
             "measured figures inside the interval, cross-validated so that no graph is scored "
             "by a calibration that saw it: task and random graphs in five hash folds, the zoo "
             "one family at a time (the row *zoo*). *zoo, calibrated without zoo* scores the "
             "zoo by a calibration on the task and random graphs alone. Width: median "
             "(hi − lo) / prediction of the 90 % interval. Metrics marked *exact* are computed "
             "exactly by the pipeline (their interval is the figure itself); their rows "
             "describe the network's figure, used only where the exact one cannot be had. "
             "Real models (data/real-models, built and measured by benchmarks/real_models.py) "
             "were never calibrated on: they are scored by the calibration that ships. Their "
             "bar (issue #14): 90 % intervals for latency and SRAM cover 80–98 % on each "
             "Ethos-U target.", ""]
    for target, rep in reports.items():
        lines += [f"### {target}", "",
                  "| metric | calibration group | n | 80 % | 90 % | 95 % | width at 90 % |",
                  "|---|---|---|---|---|---|---|"]
        for m, per in rep["table"].items():
            name = m + (" (exact)" if m in EXACT.get(target, ()) else "")
            for g, r in per.items():
                lines.append(f"| {name} | {g} | {r['n']} | {_pct(r.get('cover_80', np.nan))} | "
                             f"{_pct(r['cover_90'])} | {_pct(r.get('cover_95', np.nan))} | "
                             f"{_pct(r['width_90'])} % |")
        shown = [m for m in FAMILY_METRICS if any(m in r for r in rep["families"].values())]
        if shown:
            lines += ["", "Zoo, one family left out at a time (90 % intervals, % covered):", "",
                      "| family | n | " + " | ".join(shown) + " |",
                      "|---|---|" + "---|" * len(shown)]
            for fam, r in rep["families"].items():
                lines.append(f"| {fam} | {r['n']} | "
                             + " | ".join(_pct(r.get(m, np.nan)) for m in shown) + " |")
        real = [r for r in rep["real"] if r["metric"] not in EXACT.get(target, ())]
        if real:
            lines += ["", "Real models, 90 % intervals:", "",
                      "| metric | models | covered % | width at 90 % | bar | missed (measured / "
                      "interval) |", "|---|---|---|---|---|---|"]
            for m in sorted({r["metric"] for r in real}):
                rs = [r for r in real if r["metric"] == m]
                y, lo, hi, p = (np.array([r[k] for r in rs]) for k in
                                ("measured", "lo", "hi", "predicted"))
                cov = _coverage(lo, hi, y)
                bar = ("–" if m not in ("latency_ms", "sram_kib") or not target.startswith("ethos")
                       else "met" if REAL_BAR[0] <= cov <= REAL_BAR[1] else "missed")
                missed = [f"{r['model']} {r['measured']:.4g} / [{r['lo']:.4g}, {r['hi']:.4g}]"
                          for r in rs if not r["lo"] * (1 - 1e-9) <= r["measured"]
                          <= r["hi"] * (1 + 1e-9)]
                lines.append(f"| {m} | {len(rs)} | {cov:.1f} | {_pct(_width(lo, hi, p))} % | "
                             f"{bar} | {'; '.join(missed) or '–'} |")
        lines.append("")
    sweeps = {t: unsure_sweep(rep["real"]) for t, rep in reports.items()
               if t.startswith("ethos")}
    plot = plot_unsure(sweeps)
    if plot:
        lines += ["### Measure if unsure, on real models", "",
                  "`--measure-if-unsure W` measures every model whose 90 % latency interval is "
                  "wider than W relative to its prediction and keeps the prediction for the "
                  "rest. Over the real models above (a measured model counts as exact): the "
                  "share measured, the latency MAPE and the worst miss of what the user gets. "
                  "Bar (issue #14): at W = 0.1, worst miss ≤ 10 % with at most 40 % measured.",
                  "", f"![accuracy against share measured]({plot.relative_to(ROOT / 'docs')})",
                  "", "| target | W | measured % | MAPE % | worst miss % |",
                  "|---|---|---|---|---|"]
        for target, sweep in sweeps.items():
            for r in sweep:
                w = "never" if r["width"] == float("inf") else f"{r['width']:g}"
                lines.append(f"| {target} | {w} | {r['measured_pct']:.0f} | {r['mape']:.1f} | "
                             f"{r['worst_pct']:.1f} |")
        lines.append("")
    lines += [f"_Written in {seconds:.0f} s._", ""]
    return lines


def trained_spaces(target: str) -> list[str]:
    """The search spaces the shipped weights of ``target`` were trained on."""
    import json

    config = json.loads((weights_dir(target) / "config.json").read_text())
    return list(config.get("trained", {}).get("spaces") or [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, required=True, help="EdgeDLPerf-26k dataset folder")
    ap.add_argument("--zoo", type=Path, action="append", default=[],
                    help="zoo dataset folder (repeatable)")
    ap.add_argument("--cache", type=Path, default=ROOT / "out" / "intervals" / "cache")
    ap.add_argument("--targets", nargs="+", default=list(cd.TARGETS))
    ap.add_argument("--limit", type=int, default=None,
                    help="at most this many test-split graphs (all by default)")
    ap.add_argument("--train-sample", type=int, default=2000,
                    help="training graphs the reference statistics come from")
    ap.add_argument("--write", action="store_true", help="save intervals.json with each weights")
    ap.add_argument("--zoo-everywhere", nargs="*", metavar="METRIC",
                    help="the zoo counts in every difficulty bin (wider: no interval is as "
                         "narrow as the task spaces' own), for the metrics named (every "
                         "metric when none is)")
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args(argv)
    if set(args.targets) != set(cd.TARGETS) and not args.no_doc:
        ap.error("--targets: the intervals section of docs/results.md holds every target; "
                 "calibrating some of them, add --no-doc (their intervals.json still follow "
                 "--write)")
    global EVERYWHERE
    if args.zoo_everywhere is None:
        EVERYWHERE = ()
    elif args.zoo_everywhere:
        EVERYWHERE = {m: ("zoo",) for m in args.zoo_everywhere}
    else:
        EVERYWHERE = ("zoo",)
    start = time.time()
    args.cache.mkdir(parents=True, exist_ok=True)
    with Store(args.dataset) as store:
        train, _ = cd.collect(args.cache / "edl-train",
                              cd.train_ids(args.dataset, limit=args.train_sample),
                              store.model_bytes)
        test, test_bits = cd.collect(args.cache / "edl-test",
                                     cd.edl_ids(args.dataset, limit=args.limit),
                                     store.model_bytes)
    zoos = []
    test_only = any("zoo" in trained_spaces(t) for t in args.targets)
    for folder in args.zoo:
        tag = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]
        with Store(folder) as store:
            feats, bits = cd.collect(args.cache / f"zoo-{tag}",
                                     cd.zoo_ids(folder, test_only=test_only), store.model_bytes)
        zoos.append((folder, feats, bits))
    reports = {}
    for target in args.targets:
        parts = [cd.labelled(args.dataset, target, test, test_bits, zoo=False)]
        parts += [cd.labelled(f, target, feats, bits, zoo=True) for f, feats, bits in zoos]
        data = cd.merge(parts)
        print(f"{target}: {len(data)} calibration graphs "
              f"({dict(zip(*np.unique(data.groups, return_counts=True), strict=True))})",
              flush=True)
        reports[target] = target_report(target, data, list(train.values()), args.write)
    cd.dump_json(ROOT / "out" / "intervals" / "coverage.json", reports)
    command = ".venv/bin/python benchmarks/calibrate_intervals.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    command = command.replace("--no-doc", "").strip()
    lines = doc_lines(reports, command, time.time() - start)
    print("\n".join(lines))
    if not args.no_doc:
        replace_section("intervals", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
