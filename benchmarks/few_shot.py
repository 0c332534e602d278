"""Few-shot adaptation (`perfsage adapt`) measured three ways; writes docs/results.md's section.

    .venv/bin/python benchmarks/few_shot.py latbench [--draws 10] [--sizes 10,20,50,100]
    .venv/bin/python benchmarks/few_shot.py vela [--draws 5] [--samples 50]
    .venv/bin/python benchmarks/few_shot.py cpu [--splits 10] [--repeats 3]
    .venv/bin/python benchmarks/few_shot.py doc        # rewrite the section from saved results

* ``latbench``: LatBench's real desktop-CPU latencies (Intel i7-7820X, float32) of
  NAS-Bench-201 cells; per draw, n random cells adapt and ``--test-cells`` random others
  are predicted. Spearman rho and the share within +-10 %, beside HELP's published figures.
* ``vela``: the shipped ethos-u55-128 network adapted to Vela's ethos-u65-256 and
  ethos-u85-256 latency with n zoo models (data/zoo shards, never trained on), scored on the
  other zoo models; beside the unadapted U55 network and the shipped network of each target
  (trained on 21,000 models).
* ``cpu``: this machine's CPU (LiteRT, XNNPACK, one thread: target ``cpu-litert``) as a
  stand-in for a user's board. Real Keras architectures (benchmarks/keras_zoo.py, built
  where missing) are measured ``--repeats`` times in interleaved passes (the label is the
  lowest pass median, the spread is reported); per split, 20 adapt through a CSV exactly as
  ``perfsage adapt`` reads one and 20 others are predicted through
  ``perfsage.predict_many(..., weights=DIR)``.

The cpu-litert passes go to data/real-models/cpu-litert.csv (in git: they take a quiet
machine to make and cannot be made again elsewhere) as they come, one row per model file
(SHA-256) and target settings hash; passes already there are reused, never measured again.
Every (setting, draw) result is a JSON file under out/few-shot/, written as it finishes, so
a killed run resumes and ``doc`` re-reports without refitting. Figures are measured on each
run, never copied.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from results_doc import ROOT, replace_section

from perfsage.eval.metrics import mape, spearman_rho, within
from perfsage.predictors.adapt import Settings, adapt, adapt_set, keep_start

OUT = ROOT / "out" / "few-shot"
LATBENCH_CSV = ROOT.parent / "shared" / "data" / "latbench" / "desktop-cpu-core-i7-7820x-fp32.csv"
ZOO_SHARDS = sorted((ROOT / "data" / "zoo").glob("zoo-shard-*.parquet"))
BASE = "ethos-u55-128"
SECTION = "few-shot"
#: HELP (Lee et al., NeurIPS 2021), Table 3 as its README gives it: Spearman rho on
#: NAS-Bench-201 with 10 samples of the target device, after meta-training on 9 others.
HELP_README = "[README](https://github.com/HayeonLee/HELP)"
HELP_ROWS = [
    "| source | predictor | device | samples of the device | Spearman ρ |",
    "|---|---|---|---|---|",
    f"| HELP, Lee et al., NeurIPS 2021, Table 3 ({HELP_README}) | HELP (meta-trained on 9 "
    "other devices' NAS-Bench-201 latencies) | mean of six: Titan RTX b256, Xeon Gold 6226, "
    "Pixel2, Raspi4, Eyeriss ASIC, FPGA | 10 | 0.932 |",
    "| same | HELP | desktop CPU Xeon Gold 6226 | 10 | 0.989 |",
    "| same | BRP-NAS GCN | desktop CPU Xeon Gold 6226 | 900 | 0.796 |",
    "| same | FLOPS | desktop CPU Xeon Gold 6226 | – | 0.826 |",
]


def score(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """MAPE, median APE, share within +-10 % (in %) and Spearman rho."""
    ape = np.abs(pred / true - 1) * 100
    return {"mape": mape(pred, true), "median_ape": float(np.median(ape)),
            "max_ape": float(ape.max()), "within_10": within(pred, true, 10),
            "spearman": spearman_rho(pred, true)}


def _cached(path: Path, make, *args) -> dict:
    """The JSON result at ``path``, computed by ``make(*args)`` and written first if missing."""
    if path.is_file():
        return json.loads(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.process_time()
    result = {**make(*args), "cpu_s": None}
    result["cpu_s"] = time.process_time() - start
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(path)
    return result


def _chosen(folder: Path) -> dict:
    """What cross-validation chose: the start kept, its latency candidate, every start's error."""
    report = json.loads((folder / "adapt-report.json").read_text())
    label = next(c["label"] for c in report["choices"] if c["metric"] == "latency_ms")
    return {"chosen": f"{report['start']}: {label}", "starts": report["starts"],
            "scores": report["scores"]}


def _log(*parts) -> None:
    print("[few-shot]", *parts, file=sys.stderr, flush=True)


# -- variants: which base and which moves -----------------------------------------------

#: key -> (what a table row calls it, base, settings beyond the seed).
VARIANTS = {
    "u55-cv": ("`--base ethos-u55-128`: every start, chosen by CV", BASE, None),
    "u55-only": ("the ethos-u55-128 network refitted, moves chosen by CV", BASE,
                 {"starts": ("base",)}),
    "u55-scale": ("the ethos-u55-128 network, scale only", BASE,
                  {"starts": ("base",), "moves": ("scale",)}),
    "none-cv": ("`--base none`: chosen by CV", "none", {}),
    "none-compute": ("from nothing, MACs and activation bytes only (`compute`)", "none",
                     {"starts": ("types",), "moves": ("compute",)}),
    "none-runtime": ("from nothing, `compute` with depthwise MACs and LiteRT's undelegated "
                     "operators' bytes apart (`runtime`)", "none",
                     {"starts": ("types",), "moves": ("runtime",)}),
}


#: ``u55-cv`` is what the command does with ``--base ethos-u55-128``: cross-validate the
#: U55 network's start and the two from nothing, keep the lowest error. Those are exactly
#: the runs of ``u55-only`` and ``none-cv`` (same rows, folds and seed), so its result is
#: taken from theirs by the command's own rule instead of being fitted a third time.
DERIVED = {"u55-cv": ("u55-only", "none-cv")}


def _fitted(variants: list[str]) -> list[str]:
    """The variants to fit: the derived ones replaced by the runs they are taken from."""
    out: list[str] = []
    for v in variants:
        for part in DERIVED.get(v, (v,)):
            if part not in out:
                out.append(part)
    return out


def _settings(extra: dict, seed: int) -> Settings:
    return Settings(seed=seed, **extra)


def _derived(results: dict[str, dict]) -> dict | None:
    """The result the command would keep among its starts' results (None if one is missing).

    ``results``: variant -> its result for one draw; the start kept is the one
    ``predictors.adapt.keep_start`` keeps from all their starts' scores.
    """
    if any(r is None for r in results.values()):
        return None
    scores = {start: tuple(score) for r in results.values()
              for start, score in r["scores"].items()}
    kept = keep_start(scores)
    best = next(r for r in results.values() if kept in r["scores"])
    return {**best, "cpu_s": sum(r["cpu_s"] for r in results.values())}


def _with_derived(found: dict[str, dict], key) -> dict[str, dict]:
    """``found`` (tag -> result) plus the derived variants' results, tags made by ``key``.

    ``key(variant, rest)`` builds a tag from a variant and the rest of a tag (size, draw).
    """
    out = dict(found)
    for variant, parts in DERIVED.items():
        prefix = key(parts[0], "")
        for tag in [t for t in found if t.startswith(prefix)]:
            rest = tag[len(prefix):]
            result = _derived({v: found.get(key(v, rest)) for v in parts})
            if result is not None:
                out[key(variant, rest)] = result
    return out


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-")


def _adapted(train, folder: Path, base: str, settings: Settings, graphs, truth) -> dict:
    """Adapt on ``train`` (a GraphSet) into ``folder``; score its NumPy weights on ``graphs``."""
    from perfsage.predictors.perfsage_gnn.predictor import PerfSAGEModel

    adapt_set(train, folder, base=base, settings=settings)
    pred = PerfSAGEModel.load(folder).predict(graphs)["latency_ms"]
    return {**score(pred, truth), **_chosen(folder)}


def _fixed(folder: Path, graphs, truth) -> dict:
    """A weights folder's score as it is, without adapting."""
    from perfsage.predictors.perfsage_gnn.predictor import PerfSAGEModel

    return {**score(PerfSAGEModel.load(folder).predict(graphs)["latency_ms"], truth),
            "chosen": "-"}


def _adapted_csv(csv: Path, out: Path, base: str, settings: Settings, names: list[str],
                 paths: list[Path], truth) -> dict:
    """``perfsage adapt CSV`` as the command runs it, then ``predict_many`` on ``paths``."""
    from perfsage.api import predict_many

    adapt(csv, out, base=base, name="this-cpu", settings=settings)
    pred = np.array([f["latency_ms"] for f in predict_many(paths, weights=out)])
    return {**score(pred, truth), **_chosen(out), "test": names,
            "predicted": pred.tolist(), "measured": np.asarray(truth).tolist()}


# -- LatBench -----------------------------------------------------------------------------


def run_latbench(args) -> None:
    from perfsage.predictors.latbench import load_latbench

    data = load_latbench(LATBENCH_CSV, ROOT / "out" / "latbench", workers=1)
    data.target = "latbench-i7-7820x"
    y = data.labels["latency_ms"]
    for n in args.sizes:
        for draw in range(args.draws):
            rows = np.random.default_rng(1000 * n + draw).permutation(len(data))
            train, test = np.sort(rows[:n]), np.sort(rows[n:n + args.test_cells])
            for variant in _fitted(args.variants):
                _, base, extra = VARIANTS[variant]
                tag = f"{variant}-n{n}-d{draw}"
                folder = OUT / "latbench" / "weights" / tag
                result = _cached(OUT / "latbench" / "results" / f"{tag}.json", _adapted,
                                 data.subset(train), folder, base, _settings(extra, draw),
                                 [data.graphs[i] for i in test], y[test])
                _log(f"latbench n={n} draw {draw} {variant}: rho {result['spearman']:.3f}, "
                     f"±10 % {result['within_10']:.1f}, MAPE {result['mape']:.1f}")


def latbench_lines(sizes, variants) -> list[str]:
    found = _with_derived(_results(OUT / "latbench" / "results"), lambda v, rest: f"{v}-{rest}")
    if not found:
        return ["Not run yet."]
    lines = ["| adapted | samples | draws | Spearman ρ | ±10 % | MAPE % | chose (most often) "
             "| CPU s per adaptation |", "|---|---|---|---|---|---|---|---|"]
    for variant in variants:
        for n in sizes:
            rows = [r for tag, r in found.items()
                    if tag.startswith(f"{variant}-n{n}-d")]
            if rows:
                lines.append(_row(VARIANTS[variant][0], n, rows))
    return lines


def _row(variant: str, n: int, rows: list[dict]) -> str:
    def stat(key: str, form: str) -> str:
        return _stat(rows, key, form)

    common, count = _most_often(rows)
    return (f"| {variant} | {n} | {len(rows)} | {stat('spearman', '{:.3f}')} | "
            f"{stat('within_10', '{:.1f}')} | {stat('mape', '{:.1f}')} | {common} "
            f"({count}/{len(rows)}) | {stat('cpu_s', '{:.0f}')} |")


def _stat(rows: list[dict], key: str, form: str) -> str:
    """Mean ± std over draws of one figure (the mean alone for one draw)."""
    values = np.array([r[key] for r in rows], dtype=float)
    return form.format(values.mean()) + (" ± " + form.format(values.std())
                                         if len(values) > 1 else "")


def _most_often(rows: list[dict]) -> tuple[str, int]:
    """The candidate chosen most often over draws, and how often."""
    chosen = [r.get("chosen", "-") for r in rows]
    common = max(set(chosen), key=chosen.count)
    return common, chosen.count(common)


def _results(folder: Path) -> dict[str, dict]:
    if not folder.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


# -- Vela transfer ------------------------------------------------------------------------

VELA_TARGETS = ("ethos-u65-256", "ethos-u85-256")


def _zoo(target: str):
    """The zoo shards' models with ``target``'s Vela labels (imported into a store once)."""
    from perfsage.dataset.export import import_parquet
    from perfsage.predictors.graphset import load_graphset

    folder = OUT / "zoo-store"
    if not (folder / "perfsage.sqlite").is_file():
        import_parquet(ZOO_SHARDS, folder)
    return load_graphset(folder, target, workers=1,
                         progress=lambda d, t: _log(f"zoo features {d}/{t}")
                         if d % 200 == 0 else None)


def run_vela(args) -> None:
    from perfsage.predictors.shipped import weights_dir

    for target in VELA_TARGETS:
        data = _zoo(target)
        positive = np.flatnonzero(data.labels["latency_ms"] > 0)
        data = data.subset(positive)
        data.labels = {"latency_ms": data.labels["latency_ms"]}
        y = data.labels["latency_ms"]
        n = args.samples
        for draw in range(args.draws):
            rows = np.random.default_rng(draw).permutation(len(data))
            train, test = np.sort(rows[:n]), np.sort(rows[n:])
            graphs = [data.graphs[i] for i in test]
            for name, folder in (("u55 network, not adapted", weights_dir(BASE)),
                                 (f"shipped {target} network", weights_dir(target))):
                tag = f"{target}-{_slug(name)}-d{draw}"
                _cached(OUT / "vela" / "results" / f"{tag}.json", _fixed, folder, graphs,
                        y[test])
            for variant in _fitted(args.variants):
                _, base, extra = VARIANTS[variant]
                tag = f"{target}-{variant}-d{draw}"
                folder = OUT / "vela" / "weights" / tag
                train_set = data.subset(train)
                train_set.target = target
                result = _cached(OUT / "vela" / "results" / f"{tag}.json", _adapted,
                                 train_set, folder, base, _settings(extra, draw), graphs,
                                 y[test])
                _log(f"vela {target} draw {draw} {variant}: MAPE {result['mape']:.1f}, "
                     f"rho {result['spearman']:.3f}")


def vela_lines(samples: int, variants) -> list[str]:
    found = _results(OUT / "vela" / "results")
    for target in VELA_TARGETS:
        found = _with_derived(found, lambda v, rest, t=target: f"{t}-{v}-{rest}")
    if not found:
        return ["Not run yet."]
    lines = ["| target | network | draws | MAPE % | median APE % | ±10 % | Spearman ρ | "
             "chose (most often) |", "|---|---|---|---|---|---|---|---|"]
    for target in VELA_TARGETS:
        names = ["u55 network, not adapted", *variants, f"shipped {target} network"]
        for name in names:
            key = name if name in VARIANTS else _slug(name)
            rows = [r for tag, r in found.items() if tag.startswith(f"{target}-{key}-d")]
            if not rows:
                continue

            def stat(key, form, rows=rows):
                return _stat(rows, key, form)

            common, _ = _most_often(rows)
            shown = f"{VARIANTS[name][0]}, {samples} samples" if name in VARIANTS else name
            lines.append(f"| {target} | {shown} | {len(rows)} | {stat('mape', '{:.1f}')} | "
                         f"{stat('median_ape', '{:.1f}')} | {stat('within_10', '{:.1f}')} | "
                         f"{stat('spearman', '{:.3f}')} | {common} |")
    return lines


# -- this machine's CPU -------------------------------------------------------------------


def _keras_zoo() -> dict[str, Path]:
    """Built Keras-zoo models (benchmarks/keras_zoo.py's cache), by name."""
    from keras_zoo import CACHE, MODELS

    return {name: CACHE / f"{name}.tflite" for name in MODELS
            if (CACHE / f"{name}.tflite").is_file()}


def _build_zoo() -> dict[str, Path]:
    """Every Keras-zoo model, built where missing, by name.

    keras_zoo.py converts each model in its own process (the converter can crash one) and
    prints why one fails; a failed model is left out. Cached files cost nothing.
    """
    import subprocess

    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "keras_zoo.py")], check=False,
                   stdout=sys.stderr)
    return _keras_zoo()


#: This machine's cpu-litert labels, kept in the repo because they cost minutes of a quiet
#: machine to make and cannot be made again elsewhere: one row per model file and target
#: settings (the host's CPU is in them), every pass's median in it.
CPU_LABELS = ROOT / "data" / "real-models" / "cpu-litert.csv"
CPU_FIELDS = ("model", "family", "sha256", "settings_hash", "status", "message", "label_ms",
              "medians_ms", "load_1m")


@dataclass
class CpuLabel:
    """One model file's cpu-litert passes under one settings hash."""

    model: str
    family: str
    sha256: str
    settings_hash: str
    status: str = "ok"
    message: str = ""
    medians_ms: list[float] = field(default_factory=list)
    load_1m: list[float] = field(default_factory=list)

    @property
    def label_ms(self) -> float:
        """The model's latency on the board: the lowest of its passes' medians.

        Another process can only slow a timed invoke down, never speed it up, so on a shared
        machine the least disturbed pass is the closest to the board's own figure; the
        median within each pass (of 50 invokes) already discards single preemptions.
        """
        return min(self.medians_ms)

    def cells(self) -> dict[str, str]:
        return {"model": self.model, "family": self.family, "sha256": self.sha256,
                "settings_hash": self.settings_hash, "status": self.status,
                "message": self.message,
                "label_ms": f"{self.label_ms:.6g}" if self.medians_ms else "",
                "medians_ms": ";".join(f"{m:.6g}" for m in self.medians_ms),
                "load_1m": ";".join(f"{x:.2f}" for x in self.load_1m)}


def read_cpu_labels(path: Path = CPU_LABELS) -> dict[tuple[str, str], CpuLabel]:
    """Rows by (model, settings hash); the file is only ever replaced whole, never torn."""
    if not path.is_file():
        return {}

    def numbers(cell: str) -> list[float]:
        return [float(x) for x in cell.split(";") if x]

    with path.open(newline="") as f:
        rows = [CpuLabel(r["model"], r["family"], r["sha256"], r["settings_hash"], r["status"],
                         r["message"], numbers(r["medians_ms"]), numbers(r["load_1m"]))
                for r in csv.DictReader(f)]
    return {(r.model, r.settings_hash): r for r in rows}


def write_cpu_labels(rows, path: Path = CPU_LABELS) -> None:
    """Replace the file with ``rows`` (zoo order), synced to disk first: a kill keeps the last."""
    from keras_zoo import MODELS

    order = {name: i for i, name in enumerate(MODELS)}
    rows = sorted(rows, key=lambda r: (order.get(r.model, len(order)), r.model,
                                       r.settings_hash))
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, CPU_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(r.cells() for r in rows)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measure_cpu(repeats: int, models: dict[str, Path]) -> dict[str, CpuLabel]:
    """At least ``repeats`` cpu-litert passes of each of ``models``, from CPU_LABELS or measured.

    Passes already in CPU_LABELS for the same file (SHA-256) and settings are reused, never
    measured again; a file rebuilt since starts afresh. One pass measures every model once,
    so a model's passes fall a whole pass apart, each under whatever else the shared machine
    runs then; each records the 1-minute load, and the file is rewritten after each
    measurement.
    Returns the models measured ``repeats`` times or more, without error.
    """
    from keras_zoo import MODELS

    from perfsage.errors import MeasurementError
    from perfsage.targets.litert_cpu import CpuLiteRT

    cpu = CpuLiteRT()
    settings = cpu.settings_hash
    rows = read_cpu_labels()
    for name, path in models.items():
        sha = _sha256(path)
        row = rows.get((name, settings))
        if row is None or row.sha256 != sha:
            if row is not None:
                _log(f"{name}: the file differs from the one measured (SHA-256); measuring it")
            rows[(name, settings)] = CpuLabel(name, MODELS[name][0], sha, settings)
    for rep in range(repeats):
        for name, path in models.items():
            row = rows[(name, settings)]
            if row.status != "ok" or len(row.medians_ms) > rep:
                continue
            try:
                figures = cpu.measure(path.read_bytes())
            except MeasurementError as exc:
                row.status, row.message = "error", " ".join(str(exc).split())[:300]
            else:
                row.medians_ms.append(figures["latency_ms"])
                row.load_1m.append(os.getloadavg()[0])
            write_cpu_labels(rows.values())
            _log(f"cpu-litert pass {rep + 1}/{repeats}: {name} "
                 + (row.message if row.status != "ok" else f"{row.medians_ms[-1]:.4g} ms"))
    rows = read_cpu_labels()  # the figures as the file keeps them, for every later run alike
    return {name: rows[(name, settings)] for name in models
            if rows[(name, settings)].status == "ok"
            and len(rows[(name, settings)].medians_ms) >= repeats}


def _split_files(folder: Path, files: dict[str, str]) -> None:
    """Write a split's CSVs; results cached under ``folder`` for other CSVs are dropped first."""
    if any(not (folder / n).is_file() or (folder / n).read_text() != t for n, t in files.items()):
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)


def run_cpu(args) -> None:
    models = _build_zoo()
    measured = measure_cpu(args.repeats, models)
    names = sorted(measured)
    label = {n: measured[n].label_ms for n in names}
    for split in range(args.splits):
        order = np.random.default_rng(split).permutation(len(names))
        train = [names[i] for i in order[:args.train]]
        test = [names[i] for i in order[args.train:args.train + args.test]]
        folder = OUT / "cpu" / f"split{split}"
        csv_path = folder / "measured.csv"
        _split_files(folder, {
            csv_path.name: "model,latency_ms\n" + "".join(f"{models[n]},{label[n]!r}\n"
                                                          for n in train),
            "test.csv": "model,latency_ms\n" + "".join(f"{n},{label[n]!r}\n" for n in test)})
        truth = np.array([label[n] for n in test])
        for variant in _fitted(args.variants):
            _, base, extra = VARIANTS[variant]
            result = _cached(folder / f"{variant}.json", _adapted_csv, csv_path,
                             folder / variant, base, _settings(extra, split), test,
                             [models[n] for n in test], truth)
            _log(f"cpu split {split} {variant}: MAPE {result['mape']:.1f}, "
                 f"median {result['median_ape']:.1f}, rho {result['spearman']:.3f}")


def cpu_lines(variants, train: int, test: int) -> list[str]:
    from perfsage.targets.litert_cpu import CpuLiteRT

    settings = CpuLiteRT().settings_hash
    labelled = [r for r in read_cpu_labels().values() if r.settings_hash == settings]
    measured = [r for r in labelled if r.status == "ok" and len(r.medians_ms) > 1]
    if not measured:
        return ["Not run yet."]
    spread = np.array([(max(r.medians_ms) - min(r.medians_ms)) / min(r.medians_ms) * 100
                       for r in measured])
    ms = np.array([r.label_ms for r in measured])
    load = np.array([x for r in measured for x in r.load_1m])
    failed = [r for r in labelled if r.status != "ok"]
    lines = [f"{len(measured)} models, {ms.min():.3f}–{ms.max():.0f} ms, each measured "
             f"{min(len(r.medians_ms) for r in measured)}+ times in interleaved passes "
             "(1-minute load average of the 2-core machine while measuring: median "
             f"{np.median(load):.1f}, up to {load.max():.1f}); the label is the lowest of a "
             "model's medians (`CpuLabel.label_ms`: other processes only ever slow a run "
             "down). Spread between a model's medians, (max − min) / min: median "
             f"{np.median(spread):.0f} %, 90th percentile {np.percentile(spread, 90):.0f} %, "
             f"largest {spread.max():.0f} %. Every pass's median, the label and the file's "
             f"SHA-256 are in `{CPU_LABELS.relative_to(ROOT)}`; a later run reuses them for "
             "the same file and target settings instead of measuring again."
             + (f" LiteRT failed on {len(failed)}: "
                + ", ".join(f"{r.model} ({r.message[:80]})" for r in failed) + "."
                if failed else ""), "",
             "| adapted | splits | MAPE % | median APE % | worst APE % | ±10 % | Spearman ρ "
             "| chose (most often) | MAPE ≤ 15 % in |", "|---|---|---|---|---|---|---|---|---|"]
    found = _with_derived({f"{p.stem}-{p.parent.name}": json.loads(p.read_text())
                           for p in sorted((OUT / "cpu").glob("split*/*.json"))},
                          lambda v, rest: f"{v}-{rest}")
    for variant in variants:
        rows = [r for tag, r in found.items() if tag.startswith(f"{variant}-split")]
        if not rows:
            continue

        def stat(key, form, rows=rows):
            return _stat(rows, key, form)

        common, count = _most_often(rows)
        passed = sum(r["mape"] <= 15 for r in rows)
        lines.append(f"| {VARIANTS[variant][0]} | {len(rows)} | {stat('mape', '{:.1f}')} | "
                     f"{stat('median_ape', '{:.1f}')} | {stat('max_ape', '{:.0f}')} | "
                     f"{stat('within_10', '{:.1f}')} | {stat('spearman', '{:.3f}')} | "
                     f"{common} ({count}/{len(rows)}) | {passed}/{len(rows)} |")
    return lines + ["", *_misses(found, variants[0])]


def _misses(found: dict[str, dict], variant: str, most: int = 8) -> list[str]:
    """The models ``variant`` missed most, with their APE over the splits that tested them."""
    ape: dict[str, list[float]] = {}
    for tag, r in found.items():
        if tag.startswith(f"{variant}-split"):
            for name, p, m in zip(r["test"], r["predicted"], r["measured"], strict=True):
                ape.setdefault(name, []).append(abs(p / m - 1) * 100)
    if not ape:
        return []
    worst = sorted(ape, key=lambda n: -np.median(ape[n]))[:most]
    return [f"Missed most by {VARIANTS[variant][0]} (median APE over the splits that "
            "tested it): " + ", ".join(f"{n} {np.median(ape[n]):.0f} % ({len(ape[n])})"
                                        for n in worst) + "."]


# -- the section --------------------------------------------------------------------------


def write_doc(args, commands: dict[str, str]) -> None:
    """The docs/results.md section from every saved result; each table under its command."""
    saved = OUT / "commands.json"
    known = json.loads(saved.read_text()) if saved.is_file() else {}
    known.update(commands)
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(known, indent=1))

    def command(part: str) -> str:
        return f"Regenerate: `{known[part]}`" if part in known else "Not run yet."

    lines = [
        "## Few-shot adaptation: `perfsage adapt` on a board it has never seen", "",
        "`perfsage adapt MEASUREMENTS.csv --base TARGET|none --out DIR` fits a network to a "
        "user's measurements from three starts: the base network (its encoder frozen), and "
        "two from nothing whose frozen operator features are the operator's type or random "
        "message passing. Per start and metric it cross-validates the moves, simplest first: "
        "a level shift of the base (`scale`); MACs and activation bytes at rates fitted by "
        "NNLS (`compute`); the same with depthwise MACs and the bytes of the operator types "
        "LiteRT's XNNPACK delegate leaves to LiteRT's own kernels at rates of their own "
        "(`runtime`, "
        "`perfsage.targets.xnnpack`; the `types` start only); every cost quantity plus "
        "per-call and per-network constants (`linear`); the network-wide rates (`rates`); "
        "the last per-operator layer (`head`, `compute+head`, `runtime+head`, "
        "`linear+head`), each Adam move with ridge weights 1e-4 to 1e-2 and "
        "50 to 800 steps. Folds hold out whole operator-type sets (near enough architecture "
        "families) where the rows have enough of them. The simplest candidate, and then the "
        "simplest start, within one standard error of the best is kept (the "
        "one-standard-error rule). Rows below name the starts and moves allowed; the first "
        "row of each table is what the command does (taken from the runs of the rows that "
        "restrict it to one start, by the command's own rule). Every figure is on models "
        "the adaptation never saw; mean ± std over draws.", "",
        "### This machine's CPU as a user's board (real architectures)", "",
        command("cpu"), "",
        "The target `cpu-litert` (LiteRT with XNNPACK, one thread, on this shared 2-core "
        "machine) stands in for a board PerfSAGE has no weights for. Models: the real Keras "
        "architectures of `benchmarks/keras_zoo.py` (MobileNets, EfficientNets, ResNets, "
        "DenseNet, ViTs, U-Nets, ...), int8. Per split (seeded), "
        f"{args.train} models' latencies go into a CSV, `perfsage adapt` fits on them, and "
        f"{args.test} others are predicted through `perfsage.predict_many(..., weights=DIR)`. "
        "The bar (issue 15): MAPE ≤ 15 % (goal ≤ 5 %).", "",
        *cpu_lines(list(VARIANTS), args.train, args.test), "",
        "### LatBench: real desktop-CPU latency (Intel i7-7820X, float32, NAS-Bench-201)", "",
        command("latbench"), "",
        f"Per draw (seeded) n random cells of the 15,284 adapt and {args.test_cells:,} "
        "random others are predicted. The u55 base was trained on Vela's int8 Ethos-U55 "
        "figures, never on a CPU nor on float32 models.", "",
        *latbench_lines(args.sizes, list(VARIANTS)), "",
        "HELP's published figures (a different CPU; HELP meta-trains on nine other devices' "
        "latencies of the same NAS-Bench-201 cells before it sees the 10 samples):", "",
        *HELP_ROWS, "",
        "### Vela transfer: ethos-u55-128 weights adapted to ethos-u65-256 and ethos-u85-256",
        "", command("vela"), "",
        f"The zoo shards (data/zoo, real-architecture families, never in any training set) "
        f"with Vela's latency; per draw {args.samples} random models adapt and the others "
        "are scored. 'shipped' is the network trained for that target on 21,000 models of "
        "our search spaces, for reference.", "",
        *vela_lines(args.samples, list(VARIANTS)),
    ]
    replace_section(SECTION, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("latbench", "vela", "cpu", "doc"))
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--sizes", default="10,20,50,100")
    parser.add_argument("--samples", type=int, default=50, help="vela: models to adapt on")
    parser.add_argument("--test-cells", type=int, default=3000,
                        help="latbench: random cells scored per draw (of the ~15,000 not "
                             "adapted on)")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--train", type=int, default=20)
    parser.add_argument("--test", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="cpu: measurement passes")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in args.variants:
        if v not in VARIANTS:
            parser.error(f"unknown variant {v!r}")
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    run = {"latbench": run_latbench, "vela": run_vela, "cpu": run_cpu}.get(args.part)
    commands = {}
    if run is not None:
        run(args)
        commands[args.part] = shlex.join([".venv/bin/python", "benchmarks/few_shot.py",
                                          *sys.argv[1:]])
    if not args.no_doc:
        write_doc(args, commands)


if __name__ == "__main__":
    main()
