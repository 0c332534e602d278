"""Accuracy on real architectures nobody here wrote: build, label with the real tools, score.

    nice -n 10 .venv/bin/python benchmarks/real_models.py          # the whole benchmark

Builds every model of benchmarks/keras_zoo.py (Keras Applications and hand-written public
architectures, full-integer int8 through the official converter, each in its own process),
measures each on the three Ethos-U targets (Vela) and cortex-m-tflm (TFLite Micro) through
:class:`perfsage.targets.MeasurePool` (one worker, a time limit per task), predicts each with
the shipped weights (``perfsage.predictions``) and writes the ``real-models`` section of
docs/results.md: per target, metric and family the MAPE, median APE and worst signed miss,
and every model's measured and predicted figures.

Labels go to data/real-models/labels.csv as they come (one row per model and target, with
the file's SHA-256 and the target's settings hash), so a killed run resumes where it
stopped and a later run re-scores without re-measuring: a (file, settings) pair already in
the file is never measured again. Models the converter or a tool rejects are kept there
with the reason and reported, not retried.

SRAM errors are taken relative to max(measured, 32 KiB), as issue #12's bars define them.
Models Vela runs partly on the CPU count at Vela's figures. None of these families is in
any training set of the shipped weights (they are Keras-made, not builder-made).

Options: ``--models NAME ...`` a subset, ``--targets ...``, ``--score-only`` (no building
or measuring: score what is labelled and built), ``--timeout S`` per measurement,
``--no-doc`` (print only).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import keras_zoo  # noqa: E402
from results_doc import replace_section  # noqa: E402

LABELS = ROOT / "data" / "real-models" / "labels.csv"
TARGETS = ["ethos-u55-128", "ethos-u65-256", "ethos-u85-256", "cortex-m-tflm"]
#: Metrics scored per target (those the shipped weights also predict).
SCORED = {"ethos-u55-128": ["latency_ms", "sram_kib", "flash_kib", "energy_mj"],
          "ethos-u65-256": ["latency_ms", "sram_kib", "flash_kib", "energy_mj"],
          "ethos-u85-256": ["latency_ms", "sram_kib", "flash_kib", "energy_mj"],
          "cortex-m-tflm": ["arena_kib"]}
#: Memory errors are relative to at least this many KiB (issue #12's bars).
MEMORY_FLOOR_KIB = {"sram_kib": 32.0, "arena_kib": 32.0}
#: Issue #12's bars: MAPE % per metric, and no single model beyond WORST_BAR %.
BARS = {"latency_ms": 5.0, "sram_kib": 5.0, "arena_kib": 1.0}
WORST_BAR = 25.0
CONVERTER = "keras-converter"
FIGURES = ["latency_ms", "npu_cycles", "sram_kib", "flash_kib", "dram_kib", "cpu_ops",
           "energy_mj", "arena_kib"]
FIELDS = ["model", "family", "sha256", "target", "settings_hash", "status", "message",
          *FIGURES]
BUILD_TIMEOUT_S = 1800


# -- labels file -------------------------------------------------------------------------


def converter_settings_hash() -> str:
    """What defines a built file: TensorFlow's and Keras's versions and our conversion settings."""
    from importlib.metadata import PackageNotFoundError, version

    from perfsage.targets import settings_hash

    try:
        tensorflow = version("tensorflow")
    except PackageNotFoundError:  # the CPU-only wheel (the test extra's) has its own name
        tensorflow = version("tensorflow-cpu")
    return settings_hash({"tool": "tensorflow", "tool_version": tensorflow,
                          "keras_version": version("keras"), "quantize": "int8",
                          "seed": keras_zoo.SEED, "samples": 2})


def read_labels(path: Path = LABELS) -> dict[tuple[str, str, str], dict[str, str]]:
    """Rows by (model, target, settings hash); the last row wins, a torn last line is dropped."""
    rows: dict[tuple[str, str, str], dict[str, str]] = {}
    if not path.exists():
        return rows
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if None in row or any(row.get(k) is None for k in FIELDS) or \
                    row["status"] not in ("ok", "error", "timeout"):
                continue  # a line cut short by a killed run
            rows[(row["model"], row["target"], row["settings_hash"])] = row
    return rows


def append_label(row: dict[str, object], path: Path = LABELS) -> None:
    """Append one row and flush it to disk, so a kill loses at most the row being written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    torn = not new and path.read_bytes()[-1:] != b"\n"
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS, lineterminator="\n")
        if new:
            writer.writeheader()
        if torn:  # end the row a killed run left half-written; read_labels drops it
            f.write("\n")
        writer.writerow({k: _cell(row.get(k, "")) for k in FIELDS})
        f.flush()
        os.fsync(f.fileno())


def _cell(value: object) -> str:
    return f"{value:.9g}" if isinstance(value, float) else str(value)


def tidy_labels(current_sha: dict[str, str], path: Path = LABELS) -> None:
    """Rewrite the file sorted, one row per key, dropping rows of files since rebuilt."""
    rows = [r for r in read_labels(path).values()
            if r["target"] == CONVERTER or current_sha.get(r["model"], r["sha256"]) == r["sha256"]]
    order = {name: i for i, name in enumerate(keras_zoo.MODELS)}
    rows.sort(key=lambda r: (order.get(r["model"], len(order)), r["model"], r["target"]))
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


# -- building and measuring --------------------------------------------------------------


def build(name: str) -> tuple[Path | None, str]:
    """Build one model in its own process (TensorFlow stays out of this one): path or reason."""
    path = keras_zoo.CACHE / f"{name}.tflite"
    if path.is_file():
        return path, ""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "keras_zoo.py"), name],
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if proc.returncode == 0 and path.is_file():
        return path, ""
    failed = [ln for ln in proc.stdout.splitlines() if " FAILED: " in ln]
    if failed:
        return None, failed[-1].split(" FAILED: ", 1)[1][:300]
    if proc.returncode < 0:
        return None, f"the converter crashed ({signal.Signals(-proc.returncode).name})"
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    return None, (lines[-1] if lines else f"exit status {proc.returncode}")[:300]


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Plan:
    """What a run has to do: which models exist, which labels are missing."""

    names: list[str]
    targets: list[str]
    hashes: dict[str, str]
    labels: dict[tuple[str, str, str], dict[str, str]]
    files: dict[str, Path]
    shas: dict[str, str]
    retry: tuple[str, ...] = ()

    def record(self, row: dict[str, object]) -> None:
        """Append a label to the file and keep it, as the file will read back, for this run."""
        append_label(row)
        self.labels[(str(row["model"]), str(row["target"]), str(row["settings_hash"]))] = {
            k: _cell(row.get(k, "")) for k in FIELDS}

    def missing(self, name: str) -> list[str]:
        """Targets with no label for the model's current file under today's settings."""
        out = []
        for target in self.targets:
            row = self.labels.get((name, target, self.hashes[target]))
            if row is None or row["sha256"] != self.shas.get(name) or row["status"] in self.retry:
                out.append(target)
        return out


def _models_to_measure(plan: Plan, deferred: list[str], log) -> Iterator[tuple[str, bytes]]:
    """Build each model (or reuse its file); yield those lacking every label, defer the rest."""
    conv = plan.hashes[CONVERTER]
    for i, name in enumerate(plan.names, 1):
        family = keras_zoo.MODELS[name][0]
        if plan.labels.get((name, CONVERTER, conv), {}).get("status") == "error" and \
                not plan.retry and not (keras_zoo.CACHE / f"{name}.tflite").is_file():
            continue  # the converter rejected it before; the reason is in the labels
        start = time.perf_counter()
        path, reason = build(name)
        if path is None:
            log(f"[{i}/{len(plan.names)}] {name}: not converted: {reason}")
            plan.record({"model": name, "family": family, "target": CONVERTER,
                         "settings_hash": conv, "status": "error", "message": reason})
            continue
        plan.files[name], plan.shas[name] = path, sha256(path)
        built = plan.labels.get((name, CONVERTER, conv), {})
        if built.get("sha256") != plan.shas[name]:
            if built.get("status") == "ok":
                log(f"{name}: the file differs from the one labelled before (SHA-256); "
                    "measuring it again")
            row = {"model": name, "family": family, "sha256": plan.shas[name],
                   "target": CONVERTER, "settings_hash": conv, "status": "ok"}
            plan.record(row)
        todo = plan.missing(name)
        log(f"[{i}/{len(plan.names)}] {name}: {path.stat().st_size / 2**20:.2f} MiB, built in "
            f"{time.perf_counter() - start:.0f} s; to measure: {', '.join(todo) or 'nothing'}")
        if len(todo) == len(plan.targets):
            yield name, path.read_bytes()
        elif todo:
            deferred.append(name)


def measure(plan: Plan, timeout_s: float, log) -> None:
    """Label every built model on every target it lacks, one worker, rows appended as they come.

    Models lacking every label go through one pool over all targets while the next model
    builds; the few lacking only some (a target added later) get a pool per target after.
    """
    from perfsage.targets import MeasurePool

    deferred: list[str] = []
    done = 0

    def record(pool, models) -> None:
        nonlocal done
        for result in pool.imap_unordered(models):
            name = result.key
            done += 1
            row = {"model": name, "family": keras_zoo.MODELS[name][0],
                   "sha256": plan.shas[name], "target": result.target,
                   "settings_hash": plan.hashes[result.target], "status": result.status,
                   "message": " ".join(result.message.split())[:300], **result.metrics}
            plan.record(row)
            what = (", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items()
                              if k in SCORED[result.target]) if result.ok
                    else f"{result.status}: {row['message'][:120]}")
            log(f"    {name} on {result.target} ({result.wall_s:.1f} s; label {done}): {what}")

    with MeasurePool(plan.targets, workers=1, timeout_s=timeout_s) as pool:
        record(pool, _models_to_measure(plan, deferred, log))
    for target in plan.targets:
        names = [n for n in deferred if target in plan.missing(n)]
        if names:
            with MeasurePool([target], workers=1, timeout_s=timeout_s) as pool:
                record(pool, ((n, plan.files[n].read_bytes()) for n in names))


# -- scoring -----------------------------------------------------------------------------


@dataclass
class Score:
    """One model's measured and predicted figure for one target and metric."""

    model: str
    family: str
    target: str
    metric: str
    measured: float
    predicted: float
    cpu_ops: float

    @property
    def error_pct(self) -> float:
        """Signed error in %, relative to max(measured, floor) for memory metrics."""
        floor = MEMORY_FLOOR_KIB.get(self.metric, 0.0)
        return (self.predicted - self.measured) / max(self.measured, floor) * 100


def predict(target: str, names: list[str], files: dict[str, Path],
            weights: Path | None = None) -> tuple[dict, dict]:
    """Figures and note kinds per model, and why any model could not be read.

    ``weights``: a weights folder to score instead of the shipped one.
    """
    import perfsage
    from perfsage.errors import PerfSageError

    figures, notes, failed = {}, {}, {}
    for name in names:
        try:
            (prediction,) = perfsage.predictions([files[name]], target, weights=weights)
        except PerfSageError as exc:
            failed[name] = str(exc)
            continue
        figures[name] = prediction.figures
        notes[name] = sorted({n.kind for n in prediction.notes})
    return {"figures": figures, "notes": notes}, failed


def score(plan: Plan, weights_root: Path | None = None,
          ) -> tuple[list[Score], dict, dict[tuple[str, str], str]]:
    """Scores over every labelled model, notes per (target, model), and what could not be scored.

    ``weights_root``: a folder of weights folders named by target, scored instead of the
    shipped ones (a target without one there keeps its shipped weights).
    """
    scores: list[Score] = []
    notes: dict = {}
    unscored: dict[tuple[str, str], str] = {}
    conv = plan.hashes[CONVERTER]
    for name in plan.names:
        row = plan.labels.get((name, CONVERTER, conv))
        if name not in plan.files and row is not None and row["status"] == "error":
            unscored[(name, CONVERTER)] = f"not converted: {row['message']}"
    for target in plan.targets:
        labelled = {}
        for name in plan.names:
            row = plan.labels.get((name, target, plan.hashes[target]))
            if name not in plan.files or row is None or row["sha256"] != plan.shas[name]:
                continue
            if row["status"] != "ok":
                unscored[(name, target)] = f"{row['status']}: {row['message']}"
                continue
            labelled[name] = row
        candidate = weights_root / target if weights_root else None
        predicted, failed = predict(target, list(labelled), plan.files,
                                    candidate if candidate and candidate.is_dir() else None)
        for name, reason in failed.items():
            unscored[(name, target)] = f"not predicted: {reason}"
        for name, fig in predicted["figures"].items():
            notes[(target, name)] = predicted["notes"][name]
            row = labelled[name]
            cpu_ops = float(row["cpu_ops"]) if row["cpu_ops"] else 0.0
            for metric in SCORED[target]:
                if metric not in fig or not row[metric] or float(row[metric]) == 0.0:
                    continue  # not predicted, or not used on this target (flash with DRAM)
                scores.append(Score(name, keras_zoo.MODELS[name][0], target, metric,
                                    float(row[metric]), fig[metric], cpu_ops))
    return scores, notes, unscored


def weights_digest(target: str) -> str:
    """First 12 hex digits of the SHA-256 over a target's shipped weights folder (which weights)."""
    from perfsage.predictors.shipped import weights_dir

    digest = hashlib.sha256()
    for path in sorted(p for p in weights_dir(target).rglob("*") if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _stats(group: list[Score]) -> dict[str, object]:
    errors = np.array([s.error_pct for s in group])
    worst = group[int(np.argmax(np.abs(errors)))]
    return {"n": len(group), "mape": float(np.mean(np.abs(errors))),
            "median": float(np.median(np.abs(errors))), "worst": worst.error_pct,
            "worst_model": worst.model, "beyond": int(np.sum(np.abs(errors) > WORST_BAR))}


def _group(scores: list[Score], *keys: str) -> dict[tuple, list[Score]]:
    out: dict[tuple, list[Score]] = {}
    for s in scores:
        out.setdefault(tuple(getattr(s, k) for k in keys), []).append(s)
    return out


def _signed(percent: float) -> str:
    """A signed whole percentage, without a sign on zero."""
    return "0" if round(percent) == 0 else f"{percent:+.0f}"


def _num(value: float) -> str:
    return f"{value:.4g}"


def headline(scores: list[Score]) -> list[str]:
    """Per target and metric over every model: the figures README quotes."""
    lines = [f"| target | metric | n | MAPE % | median APE % | worst miss % (model) | "
             f"models beyond ±{WORST_BAR:g} % | bar (MAPE %) |", "|---" * 8 + "|"]
    for (target, metric), group in _group(scores, "target", "metric").items():
        st = _stats(group)
        bar = f"≤ {BARS[metric]:g}" if metric in BARS else "–"
        lines.append(f"| {target} | {metric} | {st['n']} | {st['mape']:.1f} | {st['median']:.1f} "
                     f"| {_signed(st['worst'])} ({st['worst_model']}) | {st['beyond']} | {bar} |")
    return lines


def family_table(scores: list[Score], target: str) -> list[str]:
    """Per family on one target: MAPE and worst signed miss for every scored metric."""
    metrics = [m for m in SCORED[target] if any(s.metric == m for s in scores)]
    lines = ["| family | n | " + " | ".join(f"{m} MAPE % (worst)" for m in metrics) + " |",
             "|---|---|" + "---|" * len(metrics)]
    groups = _group([s for s in scores if s.target == target], "family", "metric")
    families = list(dict.fromkeys(s.family for s in scores if s.target == target))
    for family in sorted(families):
        cells, n = [], 0
        for metric in metrics:
            group = groups.get((family, metric))
            if not group:
                cells.append("–")
                continue
            st = _stats(group)
            n = max(n, st["n"])
            cells.append(f"{st['mape']:.1f} ({_signed(st['worst'])})")
        lines.append(f"| {family} | {n} | " + " | ".join(cells) + " |")
    return lines


def notes_table(scores: list[Score], notes: dict, targets: list[str]) -> list[str]:
    """Whether the notes warn where the misses are: models beyond the bar, with and without."""
    lines = [f"| target | models | with a note | beyond ±{WORST_BAR:g} % (latency or SRAM / "
             "arena) | of those, with a note |", "|---|---|---|---|---|"]
    for target in targets:
        mine = [s for s in scores if s.target == target]
        models = {s.model for s in mine}
        if not models:
            continue
        noted = {m for m in models if notes.get((target, m))}
        missed = {s.model for s in mine if s.metric in BARS and abs(s.error_pct) > WORST_BAR}
        lines.append(f"| {target} | {len(models)} | {len(noted)} | {len(missed)} | "
                     f"{len(missed & noted)} |")
    return lines


def model_table(scores: list[Score], target: str, notes: dict) -> list[str]:
    """Every model on one target: measured, predicted and signed error per metric."""
    metrics = [m for m in SCORED[target] if any(s.metric == m for s in scores)]
    vela = target.startswith("ethos-u")
    lines = ["| model | family | " + ("Vela CPU ops | " if vela else "") +
             " | ".join(f"{m}: measured / predicted (error %)" for m in metrics) + " | notes |",
             "|---|---|" + ("---|" if vela else "") + "---|" * len(metrics) + "---|"]
    by_model = _group([s for s in scores if s.target == target], "model")
    for (model,), group in by_model.items():
        cell = {s.metric: f"{_num(s.measured)} / {_num(s.predicted)} ({s.error_pct:+.1f})"
                for s in group}
        cpu = f"{group[0].cpu_ops:.0f} | " if vela else ""
        lines.append(f"| {model} | {group[0].family} | {cpu}" +
                     " | ".join(cell.get(m, "–") for m in metrics) +
                     f" | {', '.join(notes.get((target, model), [])) or '–'} |")
    return lines


def report(scores: list[Score], notes: dict, unscored: dict, plan: Plan,
           seconds: float) -> list[str]:
    """The real-models section of docs/results.md."""
    models = sorted({s.model for s in scores})
    families = sorted({s.family for s in scores})
    lines = ["## Real models: architectures nobody here wrote", "",
             "Regenerate (resumes; labels already in data/real-models/labels.csv are not "
             "measured again):", "", "```sh",
             "nice -n 10 .venv/bin/python benchmarks/real_models.py", "```", "",
             f"{len(models)} int8 models of {len(families)} public architecture families "
             "(benchmarks/keras_zoo.py: Keras Applications and hand-written MLPerf Tiny, ViT, "
             "MobileViT, U-Net, FSRCNN/ESPCN, SSDLite, ShuffleNetV2, TCN, RegNetX, SqueezeNet, "
             "ResNet-18, recurrent and Conv-ReLU-BN definitions; random weights, converted "
             "with the official TFLite converter), measured by Vela and TFLite Micro with "
             "our target settings and predicted with the shipped weights. No family here is "
             "in any training set. Errors are signed, predicted against measured; SRAM and "
             "arena errors relative to max(measured, 32 KiB); models Vela runs partly on "
             "the CPU count at Vela's figures. Shipped weights scored (SHA-256 of each "
             "folder, first 12 digits): " + ", ".join(
                 f"{t} `{weights_digest(t)}`" for t in plan.targets) + ".", "",
             "### Per target", "", *headline(scores)]
    for target in plan.targets:
        if not any(s.target == target for s in scores):
            continue
        lines += ["", f"### {target}: per family", "", *family_table(scores, target)]
    lines += ["", "### Do the notes warn where the misses are?", "",
              "Notes from `perfsage.predictions` (kinds per model in the tables below).", "",
              *notes_table(scores, notes, plan.targets)]
    for target in plan.targets:
        if not any(s.target == target for s in scores):
            continue
        lines += ["", f"<details><summary>{target}: every model</summary>", "",
                  *model_table(scores, target, notes), "", "</details>"]
    if unscored:
        lines += ["", "### Not scored", "", "| model | target | why |", "|---|---|---|"]
        for (model, target), why in sorted(unscored.items()):
            lines.append(f"| {model} | {target} | {why.replace('|', '/')[:200]} |")
    lines += ["", f"_Scored in {seconds:.0f} s._", ""]
    return lines


# -- command -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Build, label what is missing, score, print, and write docs/results.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", nargs="+", choices=list(keras_zoo.MODELS), metavar="NAME",
                        help="a subset of benchmarks/keras_zoo.py's models (docs not written)")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=TARGETS)
    parser.add_argument("--score-only", action="store_true",
                        help="score the built and labelled models; build and measure nothing")
    parser.add_argument("--retry", action="store_true",
                        help="measure again the models a tool failed on or timed out")
    parser.add_argument("--timeout", type=float, default=900.0, metavar="S",
                        help="time limit per model and target (default 900 s)")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    parser.add_argument("--weights-root", type=Path, metavar="DIR",
                        help="score the weights folders DIR/<target> instead of the shipped "
                             "ones (implies --no-doc)")
    args = parser.parse_args(argv)
    from perfsage.targets import get_target

    began = time.monotonic()

    def log(text: str) -> None:
        print(f"{time.monotonic() - began:6.0f} s  {text}", flush=True)

    names = args.models or list(keras_zoo.MODELS)
    hashes = {t: get_target(t).settings_hash for t in args.targets}
    hashes[CONVERTER] = converter_settings_hash()
    plan = Plan(names, args.targets, hashes, read_labels(), {}, {},
                retry=("error", "timeout") if args.retry else ())
    log(f"{len(names)} models, {len(args.targets)} targets, {len(plan.labels)} labels on file")
    if args.score_only:
        for name in names:
            path = keras_zoo.CACHE / f"{name}.tflite"
            if path.is_file():
                plan.files[name], plan.shas[name] = path, sha256(path)
    else:
        measure(plan, args.timeout, log)
        tidy_labels(plan.shas)
    log(f"predicting with the weights in {args.weights_root}" if args.weights_root
        else "predicting with the shipped weights")
    start = time.monotonic()
    scores, notes, unscored = score(plan, args.weights_root)
    lines = report(scores, notes, unscored, plan, time.monotonic() - start)
    print("\n".join(lines[lines.index("### Per target"):]))
    noted = sorted({(model, kind) for (_, model), kinds in notes.items() for kind in kinds})
    print("models with notes:", ", ".join(f"{m} ({k})" for m, k in noted) or "none")
    if not (args.no_doc or args.models or args.weights_root):
        log(f"wrote {replace_section('real-models', lines).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
