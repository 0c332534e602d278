"""Adapting PerfSAGE to a user's board from a few measurements (`perfsage adapt`).

The user brings a CSV of model files and what they measured (``dataset.measurements``);
this fits a network that predicts those metrics for the user's board and writes it as a
weights folder that ``perfsage predict --weights DIR`` reads like any other, carrying the
board's name, its metrics and how it was fitted.

With so few samples the question is what to fit, and the answer is left to evidence: the
candidate moves of :mod:`perfsage.predictors.perfsage_gnn.adapt` (a level shift of the base
network, the physics baseline of MACs and bytes at fitted rates, the network-wide rates,
the last per-operator layer) each with several ridge weights and Adam step counts, are
scored by k-fold cross-validation on the user's rows: every row predicted once by a fit
that never saw it, and where the rows have enough distinct operator-type sets (near enough
architecture families, ``type_sets``) each fold holds out whole sets. Each metric gets the
simplest candidate whose out-of-fold error is within one standard error of the lowest
(the one-standard-error rule: with 20 rows, candidates a few points apart are not told
apart, and the simpler extrapolates less wildly). This is done for each network one may
start from: the base network (``--base``) and two from nothing, whose frozen operator
features are the operator's type (a rate per type, learnt) or random message-passing
features; the simplest start within one standard error of the best is kept
(``keep_start``), and its choices are refitted on every row.

Every finished (metric, fold, move, ridge) run is written to a checkpoint in the output
folder as it ends, so a killed job resumes where it stopped and a finished one re-reports
without refitting. Training only: this imports torch.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perfsage.dataset.measurements import Measurements, read_measurements
from perfsage.errors import UsageError
from perfsage.predictors.graphset import GraphSet
from perfsage.predictors.perfsage_gnn.adapt import ENCODERS, ITERATIVE, MOVES, moves_for

CHECKPOINT = "adapt-checkpoint.json"
REPORT = "adapt-report.json"
NONE = "none"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

Progress = Callable[[int, int, str], None]


#: The networks an adaptation may start from: the base's, or one from nothing whose frozen
#: operator features are their types or random (``perfsage_gnn.adapt.from_nothing``).
STARTS = ("base", *ENCODERS)
#: The starts from the fewest assumptions to the most: a rate per operator type, random
#: operator features, a whole encoder trained for other hardware. The one kept is the first
#: whose error is within one standard error of the best start's.
SIMPLEST_START = (*ENCODERS, "base")


@dataclass(frozen=True)
class Settings:
    """How candidates are searched: folds, ridge weights, Adam step counts, moves, starts."""

    folds: int = 5
    seed: int = 0
    ridges: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
    steps: tuple[int, ...] = (50, 100, 200, 400, 800)
    moves: tuple[str, ...] = MOVES
    starts: tuple[str, ...] = STARTS

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise UsageError(f"folds: {self.folds}; cross-validation needs 2 or more")
        if not self.ridges or min(self.ridges) < 0:
            raise UsageError(f"ridges: {self.ridges}; give one or more weights, each >= 0")
        if not self.steps or min(self.steps) < 1:
            raise UsageError(f"steps: {self.steps}; give one or more step counts, each >= 1")
        unknown = set(self.moves) - set(MOVES)
        if unknown or not self.moves:
            raise UsageError(f"moves: {', '.join(sorted(unknown)) or 'none given'}; choose "
                             f"from: {', '.join(MOVES)}")
        unknown = set(self.starts) - set(STARTS)
        if unknown or not self.starts:
            raise UsageError(f"starts: {', '.join(sorted(unknown)) or 'none given'}; choose "
                             f"from: {', '.join(STARTS)}")


@dataclass(frozen=True)
class Candidate:
    """One way to refit a metric: a move, its ridge weight and Adam steps (0: closed form)."""

    move: str
    ridge: float = 0.0
    steps: int = 0

    def label(self) -> str:
        """How reports name it: ``head, ridge 0.01, 100 steps``."""
        if not self.steps:
            return self.move
        return f"{self.move}, ridge {self.ridge:g}, {self.steps} steps"


@dataclass
class MetricChoice:
    """What cross-validation chose for one metric, and what every candidate scored."""

    metric: str
    candidate: Candidate
    cv_error: float  # the winner's out-of-fold error (MAPE %, or MAE for counts)
    error_name: str  # "MAPE %" or "MAE"
    scores: dict[str, float]  # every candidate's label -> out-of-fold error
    base_error: float | None  # the base network's error before any refit, where it has one
    fit_error: float | None = None  # the refitted network's error on every row (in-sample)
    source: str | None = None  # the base metric whose rows it started from
    cv_se: float = 0.0  # standard error of cv_error (its rows' errors' std / sqrt(rows))


@dataclass
class Report:
    """The outcome of one adaptation: where the weights went and what was chosen.

    ``start`` is the network kept (``STARTS``), ``choices`` its metrics' choices, and
    ``starts`` every start's cross-validated error per metric.
    """

    out: Path
    name: str
    base: str
    models: int
    folds: int
    start: str = ""
    choices: list[MetricChoice] = field(default_factory=list)
    starts: dict[str, dict[str, float]] = field(default_factory=dict)
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)  # (score, its SE)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the folder's ``adapt-report.json``)."""
        return {"out": str(self.out), "name": self.name, "base": self.base,
                "models": self.models, "folds": self.folds, "start": self.start,
                "starts": self.starts, "scores": self.scores,
                "choices": [asdict(c) | {"candidate": asdict(c.candidate),
                                         "label": c.candidate.label()} for c in self.choices]}


def check_name(name: str) -> str:
    """A board's name as weights carry it: letters, digits, ``.``, ``_``, ``-``."""
    if not _NAME.match(name or ""):
        raise UsageError(f"--name {name!r}: a target name is 1-64 letters, digits, '.', '_' "
                         "or '-', starting with a letter or digit (e.g. my-board)")
    return name


def base_folder(base: str) -> Path | None:
    """The weights folder ``--base`` names: a target with shipped weights, a folder, or none."""
    if base == NONE:
        return None
    if Path(base).is_dir():
        return Path(base)
    from perfsage.predictors.shipped import weights_dir

    return weights_dir(base)


# -- reading the user's models ----------------------------------------------------------


def read_rows(found: Measurements, target: str, progress: Progress | None = None) -> GraphSet:
    """The measured models, converted where needed and read as predictions for ``target`` are.

    Raises:
        ModelFileError, ConversionError: a model that cannot be read, named with its path.
    """
    from perfsage.convert import as_tflite
    from perfsage.graph.hashing import graph_hash
    from perfsage.pipeline import read_for

    graphs, hashes = [], []
    for done, path in enumerate(found.paths, 1):
        model, graph = read_for(target, as_tflite(path))
        graphs.append(graph)
        hashes.append(graph_hash(model))
        if progress:
            progress(done, len(found), path.name)
    n = len(found)
    return GraphSet(graphs=graphs, labels=dict(found.labels), spaces=np.full(n, "user"),
                    hashes=np.array(hashes), model_ids=np.arange(n, dtype=np.int64),
                    target=target)


# -- cross-validation --------------------------------------------------------------------


def folds_of(n: int, k: int, seed: int, groups: Sequence[Any] | None = None,
             ) -> list[np.ndarray]:
    """``min(k, n)`` cross-validation folds of ``n`` rows, seeded.

    With ``groups`` (one label per row) of at least ``k`` distinct values, a group's rows
    all fall in one fold, the groups dealt in a seeded order to the emptiest fold: each
    fold then holds out whole groups. Otherwise the folds split a seeded permutation, sizes
    within one.
    """
    rng = np.random.default_rng(seed)
    k = min(k, n)
    labels = list(dict.fromkeys(groups)) if groups is not None else []
    if len(labels) < k:
        return [np.sort(part) for part in np.array_split(rng.permutation(n), k)]
    members = {g: [i for i in range(n) if groups[i] == g] for g in labels}
    folds: list[list[int]] = [[] for _ in range(k)]
    for j in rng.permutation(len(labels)):
        min(folds, key=len).extend(members[labels[j]])
    return [np.sort(np.array(f, dtype=np.int64)) for f in folds]


def type_sets(data: GraphSet) -> list[tuple[int, ...]]:
    """Each row's set of operator types: the family a model belongs to, near enough.

    Models of one architecture family share their operator types (MobileNet v1 at any
    width and resolution), and what an adapted network must do for a user is predict
    families it was not shown; folds that hold out whole type sets measure that, where
    random folds leave a sibling in training and flatter the candidates that memorise a
    family (on this machine's CPU they chose per-type and random-feature refits that then
    missed unseen families by 5-10x).
    """
    return [tuple(sorted(set(g.op_types.tolist()))) for g in data.graphs]


def error(pred: np.ndarray, true: np.ndarray, mode: str) -> float:
    """MAPE in % for a positive metric; mean absolute error for a count (log1p mode)."""
    if mode == "log":
        return float(np.mean(np.abs(pred / true - 1)) * 100)
    return float(np.mean(np.abs(pred - true)))


class _Checkpoint:
    """Finished runs' held-out predictions, on disk after each run (atomic replace)."""

    def __init__(self, path: Path, key: str) -> None:
        self.path, self.key = path, key
        saved = json.loads(path.read_text()) if path.is_file() else {}
        self.runs: dict[str, dict[str, list[float]]] = (
            saved.get("runs", {}) if saved.get("key") == key else {})

    def get(self, run: str) -> dict[int, np.ndarray] | None:
        found = self.runs.get(run)
        return None if found is None else {int(k): np.array(v) for k, v in found.items()}

    def put(self, run: str, found: dict[int, np.ndarray]) -> None:
        self.runs[run] = {str(k): np.asarray(v, dtype=float).tolist() for k, v in found.items()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"key": self.key, "runs": self.runs}))
        tmp.replace(self.path)


def _runs(moves: Sequence[str], settings: Settings) -> list[tuple[str, float]]:
    """(move, ridge) of every run a fold needs: one per closed move, one per ridge else."""
    return [(m, r) for m in moves for r in (settings.ridges if m in ITERATIVE else (0.0,))]


def cross_validate(refitter, metric: str, moves: Sequence[str], folds: list[np.ndarray],
                   settings: Settings, checkpoint: _Checkpoint,
                   tick: Callable[[str], None]) -> dict[Candidate, np.ndarray]:
    """Every candidate's out-of-fold predictions of ``metric`` (one per row)."""
    n = sum(len(f) for f in folds)
    start = refitter.state()
    oof: dict[Candidate, np.ndarray] = {}
    for f, held in enumerate(folds):
        rows = np.setdiff1d(np.arange(n), held)
        for move, ridge in _runs(moves, settings):
            run = f"{metric}|{f}|{move}|{ridge!r}"
            found = checkpoint.get(run)
            if found is None:
                refitter.restore(start)
                found = refitter.apply(metric, move, rows, ridge=ridge,
                                       checkpoints=settings.steps, held=held)
                checkpoint.put(run, found)
            for steps, pred in found.items():
                candidate = Candidate(move, ridge, steps)
                oof.setdefault(candidate, np.full(n, np.nan))[held] = pred
            tick(f"{metric}: fold {f + 1}/{len(folds)}, {move}")
    refitter.restore(start)
    return oof


def _fingerprint(data: GraphSet, base: str, base_sha: str | None, settings: Settings,
                 folds: list[np.ndarray]) -> str:
    """What a checkpoint's runs depend on: rows, base, settings and the folds themselves."""
    from perfsage.predictors.perfsage_gnn.spec import data_sha256

    text = json.dumps({"data": data_sha256(data.target, {"train": data}), "base": base,
                       "base_sha": base_sha, "settings": asdict(settings),
                       "folds": [f.tolist() for f in folds]}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


# -- the job ------------------------------------------------------------------------------


def adapt(csv: str | Path, out: str | Path, *, base: str, name: str,
          settings: Settings | None = None, progress: Progress | None = None) -> Report:
    """Fit a network to the measurements in ``csv`` and write its weights folder to ``out``.

    Args:
        csv: the measurements (``dataset.measurements``).
        out: the weights folder to write (created); it also holds the checkpoint.
        base: a target with shipped weights, a weights folder, or ``"none"``.
        name: the target name the weights carry (``perfsage predict`` shows it).
        settings: the candidate search.
        progress: called with (done, total, what) as models are read and candidates fitted.

    Raises:
        UsageError, ModelFileError, ConversionError, WeightsError: bad input, one line.
    """
    name = check_name(name)
    folder = base_folder(base)  # a bad base fails before any model is read
    found = read_measurements(csv)
    data = read_rows(found, name, progress=lambda d, t, what: progress and progress(
        d, t, f"reading {what}"))
    return adapt_set(data, out, base=base, settings=settings, progress=progress,
                     dataset=str(Path(csv).resolve()), folder=folder)


def adapt_set(data: GraphSet, out: str | Path, *, base: str, settings: Settings | None = None,
              progress: Progress | None = None, dataset: str | None = None,
              folder: Path | None = None) -> Report:
    """:func:`adapt` on rows already read: ``data.target`` is the name the weights carry.

    Every start in ``settings.starts`` (the base network where ``base`` names one, and the
    networks from nothing) that has a move for each metric is cross-validated, and the one
    :func:`keep_start` keeps is refitted on every row. ``dataset`` names where the rows came
    from in the weights' config; ``folder`` is ``base_folder(base)`` when the caller has it.
    """
    from perfsage.predictors.perfsage_gnn import weights
    from perfsage.predictors.perfsage_gnn.adapt import Refitter
    from perfsage.predictors.perfsage_gnn.spec import data_sha256

    settings = settings or Settings()
    name, out = check_name(data.target), Path(out)
    folder = folder if folder is not None else base_folder(base)
    starts, base_sha = _starts(data, base, folder, settings)
    out.mkdir(parents=True, exist_ok=True)
    folds = folds_of(len(data), settings.folds, settings.seed, type_sets(data))
    checkpoint = _Checkpoint(out / CHECKPOINT, _fingerprint(data, base, base_sha, settings,
                                                            folds))
    refitters = {key: Refitter(start, data) for key, start in starts.items()}
    moves = {key: {m: [x for x in moves_for(r.spec, m, from_nothing=r.from_nothing)
                       if x in settings.moves] for m in r.spec.metrics}
             for key, r in refitters.items()}
    for key, by_metric in list(moves.items()):  # a start that cannot fit every metric
        if any(not ms and refitters[key].spec.modes[m] != "constant"
               for m, ms in by_metric.items()):
            del moves[key], refitters[key]
    if not refitters:
        raise UsageError(f"moves {', '.join(settings.moves)}: none applies to every metric "
                         f"from the starts {', '.join(starts)}; allow more moves")
    total = sum(len(folds) * len(_runs(ms, settings)) for by_metric in moves.values()
                for ms in by_metric.values())
    done = 0

    def tick(what: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total, what)

    report = Report(out=out, name=name, base=base, models=len(data), folds=len(folds))
    chosen: dict[str, list[MetricChoice]] = {}
    for key, refitter in refitters.items():
        chosen[key] = [_choose(refitter, m, moves[key][m], folds, settings,
                               _Prefixed(checkpoint, key), tick, starts[key].sources.get(m))
                       for m in refitter.spec.metrics]
        report.starts[key] = {c.metric: c.cv_error for c in chosen[key]}
    report.scores = {k: _start_score(chosen[k]) for k in refitters}
    report.start = keep_start(report.scores)
    report.choices, refitter = chosen[report.start], refitters[report.start]
    everything = np.arange(len(data))
    for choice in report.choices:  # each metric's rows are its own: refit one by one
        c = choice.candidate
        if c.move != "constant":
            refitter.apply(choice.metric, c.move, everything, ridge=c.ridge,
                           checkpoints=(c.steps,) if c.steps else ())
        choice.fit_error = error(refitter.predict(choice.metric, everything),
                                 data.labels[choice.metric], refitter.spec.modes[choice.metric])
    draft = dict(starts[report.start].draft)
    draft["trained"] = {
        "dataset": dataset, "holdout_space": None,
        "data_sha256": data_sha256(name, {"train": data}), "train_graphs": len(data),
        "val_graphs": 0, "adapted_from": base, "base_spec_sha256": base_sha,
        "start": report.start, "starts_cv_error": report.starts,
        "adapt": {c.metric: {"move": c.candidate.move, "ridge": c.candidate.ridge,
                             "steps": c.candidate.steps, "source": c.source,
                             "cv_error": c.cv_error, "error": c.error_name,
                             "fit_error": c.fit_error} for c in report.choices},
        "cv": {"folds": len(folds), "seed": settings.seed}}
    weights.save(out, refitter.tensors(), draft)
    _check_written(out, refitter, data)
    (out / REPORT).write_text(json.dumps(report.as_dict(), indent=1))
    return report


def _starts(data: GraphSet, base: str, folder: Path | None, settings: Settings):
    """The networks to cross-validate, by start name, and the base's spec hash (or None)."""
    from perfsage.predictors.perfsage_gnn import weights
    from perfsage.predictors.perfsage_gnn.adapt import from_base, from_nothing

    starts, base_sha = {}, None
    if folder is not None and "base" in settings.starts:
        tensors, config = weights.load(folder)
        starts["base"] = from_base(config, tensors, data.labels, data.target)
        base_sha = config["spec_sha256"]
    for encoder in ENCODERS:
        if encoder in settings.starts:
            starts[encoder] = from_nothing(data, data.target, seed=settings.seed,
                                           encoder=encoder)
    if not starts:
        raise UsageError(f"--base {base}: no network to start from; the starts allowed "
                         f"({', '.join(settings.starts)}) need a base network")
    return starts, base_sha


def _start_score(choices: list[MetricChoice]) -> tuple[float, float]:
    """How a start compares: its metrics' mean out-of-fold MAPE, and their mean SE.

    MAE stands in for MAPE where no metric has one (counts only).
    """
    kept = [c for c in choices if c.error_name == "MAPE %"] or choices
    if not kept:
        return 0.0, 0.0
    return (float(np.mean([c.cv_error for c in kept])),
            float(np.mean([c.cv_se for c in kept])))


def keep_start(scores: dict[str, tuple[float, float]]) -> str:
    """The start kept: the simplest (``SIMPLEST_START``) within one SE of the best.

    ``scores``: start -> (mean cross-validated error, its standard error).
    """
    best = min(scores, key=lambda k: scores[k][0])
    limit = sum(scores[best])
    return next(k for k in SIMPLEST_START if k in scores and scores[k][0] <= limit)


class _Prefixed:
    """A view of the checkpoint whose run names start with one start's name."""

    def __init__(self, checkpoint: _Checkpoint, prefix: str) -> None:
        self.checkpoint, self.prefix = checkpoint, prefix

    def get(self, run: str) -> dict[int, np.ndarray] | None:
        return self.checkpoint.get(f"{self.prefix}|{run}")

    def put(self, run: str, found: dict[int, np.ndarray]) -> None:
        self.checkpoint.put(f"{self.prefix}|{run}", found)


def _choose(refitter, metric: str, moves: list[str], folds: list[np.ndarray],
            settings: Settings, checkpoint: _Checkpoint, tick, source: str | None,
            ) -> MetricChoice:
    """The candidate with the lowest out-of-fold error for ``metric`` (simplest on ties)."""
    mode = refitter.spec.modes[metric]
    y = np.asarray(refitter.labels[metric], dtype=np.float64)
    everything = np.arange(len(y))
    name = "MAPE %" if mode == "log" else "MAE"
    if mode == "constant":
        return MetricChoice(metric, Candidate("constant"), 0.0, name, {}, None, source=source)
    base_error = None  # the base network's own figure, where the metric has one
    if source is not None and not refitter.from_nothing:
        base_error = error(refitter.predict(metric, everything), y, mode)
    oof = cross_validate(refitter, metric, moves, folds, settings, checkpoint, tick)
    scores = {c: error(p, y, mode) for c, p in oof.items()}
    order = sorted(scores, key=lambda c: (round(scores[c], 9), _complexity(c)))
    limit = scores[order[0]] + _standard_error(oof[order[0]], y, mode)
    chosen = min((c for c in scores if scores[c] <= limit), key=_complexity)
    return MetricChoice(metric, chosen, scores[chosen], name,
                        {c.label(): scores[c] for c in order}, base_error, source=source,
                        cv_se=_standard_error(oof[chosen], y, mode))


def _complexity(c: Candidate) -> tuple:
    """Simpler first: the move's place in ``MOVES``, fewer steps, a stronger ridge."""
    return MOVES.index(c.move), c.steps, -c.ridge


def _standard_error(pred: np.ndarray, y: np.ndarray, mode: str) -> float:
    """Standard error of :func:`error`: its rows' errors' standard deviation / sqrt(rows).

    What the one-standard-error rule allows (Breiman et al., *Classification and Regression
    Trees*, 1984; Hastie et al., *The Elements of Statistical Learning*, 7.10): the simplest
    candidate, and the simplest start, whose cross-validated error is within one standard
    error of the best's is kept. With 20 rows, candidates a few points apart are not told
    apart, and the simpler one extrapolates less wildly to models unlike the rows (a
    per-call rate fitted on large models, applied to one of 800 tiny layers).
    """
    per_row = np.abs(pred / y - 1) * 100 if mode == "log" else np.abs(pred - y)
    return float(np.std(per_row, ddof=1) / np.sqrt(len(y))) if len(y) > 1 else 0.0


def _check_written(out: Path, refitter, data: GraphSet) -> None:
    """The written folder predicts what the refitted network does (NumPy against torch).

    Raises:
        RuntimeError: they differ by more than float32 rounding; a bug here, not the user's.
    """
    from perfsage.predictors.perfsage_gnn.predictor import PerfSAGEModel

    model = PerfSAGEModel.load(out)
    found = model.predict(data.graphs)
    rows = np.arange(len(data))
    for metric in refitter.spec.metrics:
        torch_side = refitter.predict(metric, rows)
        if not np.allclose(found[metric], torch_side, rtol=1e-3, atol=1e-6):
            raise RuntimeError(f"adapted weights in {out}: the NumPy runtime's {metric} "
                               f"differs from the refitted network's")
