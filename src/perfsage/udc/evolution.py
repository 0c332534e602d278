"""Hardware-constrained search: regularised evolution with the predictor as its cost model.

The search is regularised (aging) evolution (Real et al., "Regularized Evolution for Image
Classifier Architecture Search", AAAI 2019): a population of candidates; each child is a
one-site mutation of the best of a random sample of the population (a tournament), and the
oldest member leaves as each child enters. Children are made a population at a time so that
the predictor sees them in one batch, which is what makes it fast.

A candidate is a config of the space (its architecture) and a compression gene per
weighted layer (sparsity and bit-width, a
:class:`~perfsage.udc.compress.LayerCompression`). Its cost is the pipeline's
prediction with intervals; it is *within budget* only when the upper end of every budgeted
metric's interval is. Selection ranks candidates within budget above those outside, the
former by the objective, the latter by how far they are over (the summed relative excess,
as in Deb's constraint-domination rules). A user's objective is evaluated only for
candidates within budget, so a costly estimator runs only where it matters.

At the end the best candidates within budget, one per architecture, are measured with the
target's real tool (Vela for Ethos-U), best first, until ``count`` of them hold every
budget measured; those that break one are dropped and reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from perfsage.errors import PerfSageError, PredictionError, UsageError
from perfsage.pipeline import Prediction
from perfsage.predictors.intervals import DEFAULT_LEVEL
from perfsage.spaces import Config, SearchSpace, get_space
from perfsage.udc.budgets import Budget, parse_budgets
from perfsage.udc.compress import LayerCompression, WeightLayer, compress_values, weight_layers
from perfsage.udc.mutation import Mutator, architecture
from perfsage.udc.objectives import Objective, resolve

log = logging.getLogger(__name__)

#: Values a layer's genes take: sparsity (the share of weights pruned) and bit-width
#: (2^bits distinct values per output channel). 8 bits and no sparsity is the dense layer.
SPARSITIES = (0.0, 0.25, 0.5, 0.75, 0.9)
BITS = (8, 6, 5, 4, 3, 2)
#: Share of mutations that change the architecture when compression is searched too.
ARCH_SHARE = 0.6
#: Verification measures at most this many candidates per one asked for.
VERIFY_TRIES_PER_COUNT = 4


DENSE = LayerCompression()
#: Compressed layer values kept for reuse (a child differs from its parent in one layer);
#: past this many bytes the cache starts again.
LAYER_CACHE_BYTES = 64 << 20


@dataclass(slots=True, eq=False)
class Architecture:
    """A config's dense model and what the objectives and genes need to know about it."""

    config: Config
    key: str
    tflite: bytes
    #: SHA-256 of the dense model: configs that differ only where the space's builder
    #: ignores them (a stride on a map too small to take it) build the same model.
    digest: str
    macs: int
    params: int
    #: The int8 weight tensors compression can change, in operator order.
    weight_layers: tuple[WeightLayer, ...]

    @property
    def layer_weights(self) -> tuple[int, ...]:
        """Weight elements of each weight layer."""
        return tuple(layer.size for layer in self.weight_layers)


@dataclass(slots=True, eq=False)
class Candidate:
    """One evaluated model: architecture, compression, prediction, standing, and checks.

    ``bound`` holds, per budgeted metric, the value checked against the budget (the upper
    end of its interval, or the figure where there is no interval; None when the pipeline
    gives no figure, as for NPU time on a model that runs mostly on the CPU).
    """

    arch: Architecture
    layers: tuple[LayerCompression, ...]
    tflite: bytes
    prediction: Prediction
    bound: dict[str, float | None]
    violation: float
    objective: float | None = None
    measured: dict[str, float] | None = None
    status: str = "predicted"
    reason: str = ""
    order: int = 0

    @property
    def config(self) -> Config:
        """The space's config of the architecture."""
        return self.arch.config

    @property
    def predicted(self) -> dict[str, float]:
        """The pipeline's figures (point estimates)."""
        return self.prediction.figures

    @property
    def within_budget(self) -> bool:
        """True when every budgeted metric's interval ends within its budget."""
        return self.violation == 0.0

    @property
    def sha256(self) -> str:
        """The model file's hash (names its .tflite file)."""
        return hashlib.sha256(self.tflite).hexdigest()

    @property
    def compressed(self) -> bool:
        """True when some layer is pruned or clustered."""
        return any(not g.is_identity for g in self.layers)

    @property
    def sparsity(self) -> float:
        """The share of all compressible weights pruned."""
        sizes = self.arch.layer_weights
        return sum(w * g.sparsity for w, g in zip(sizes, self.layers, strict=True)) / \
            max(1, sum(sizes))

    @property
    def min_bits(self) -> int:
        """The fewest bits of any layer (8 when none is clustered)."""
        return min((g.bits for g in self.layers), default=8)

    def rank_key(self) -> tuple[bool, float]:
        """Within budget first, by objective; the others by how little they are over."""
        if self.within_budget:
            return True, self.objective if self.objective is not None else -math.inf
        return False, -self.violation


@dataclass(frozen=True, slots=True)
class Settings:
    """The search's settings, checked once."""

    count: int = 3
    generations: int = 30
    population: int = 64
    seed: int = 0
    level: float | None = DEFAULT_LEVEL
    compress: bool = True
    verify: bool = True
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        _whole("count", self.count, 1)
        _whole("generations", self.generations, 0)
        _whole("population", self.population, 2)
        _whole("seed", self.seed, 0)
        if self.level is not None and not (isinstance(self.level, float | int)
                                           and 0.5 <= self.level <= 0.99):
            raise UsageError(f"level must be an interval coverage from 0.5 to 0.99 (e.g. 0.9),"
                             f" or None to check budgets on the figures alone, not "
                             f"{self.level!r}")
        if not (isinstance(self.timeout_s, float | int) and self.timeout_s > 0):
            raise UsageError(f"timeout_s must be a positive number of seconds, not "
                             f"{self.timeout_s!r}")

    @property
    def tournament(self) -> int:
        """Candidates drawn per parent: a quarter of the population (at least 2)."""
        return max(2, self.population // 4)


def _whole(name: str, value: object, floor: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < floor:
        raise UsageError(f"{name} must be a whole number of at least {floor}, not {value!r}")


@dataclass(slots=True)
class Timing:
    """Where the search's time went, in seconds, and how many models each stage handled."""

    build_s: float = 0.0
    compress_s: float = 0.0
    predict_s: float = 0.0
    objective_s: float = 0.0
    search_s: float = 0.0
    verify_s: float = 0.0
    built: int = 0
    predicted: int = 0
    measured: int = 0

    def as_dict(self) -> dict[str, float]:
        """JSON form, with the rates: candidates/s over the whole search, and per stage."""
        def rate(n: int, s: float) -> float:
            return n / s if s > 0 else 0.0

        return {"search_s": self.search_s, "build_s": self.build_s,
                "compress_s": self.compress_s, "predict_s": self.predict_s,
                "objective_s": self.objective_s, "verify_s": self.verify_s,
                "built": self.built, "predicted": self.predicted, "measured": self.measured,
                "candidates_per_s": rate(self.predicted, self.search_s),
                "predictions_per_s": rate(self.predicted, self.predict_s),
                "builds_per_s": rate(self.built, self.build_s)}


class Evaluator:
    """Builds, compresses and predicts candidates in batches; remembers every one it saw.

    Args:
        space: the search space.
        target: the target whose pipeline predicts.
        budgets: the budgets a candidate must meet.
        objective: what to maximise among candidates within budget.
        level: interval coverage (None: check the figures alone).
        weights: a weights folder instead of the target's shipped weights.
        workers: processes building models (1: build here).
    """

    def __init__(self, space: SearchSpace, target: str, budgets: tuple[Budget, ...],
                 objective: Objective, level: float | None,
                 weights: str | PathLike[str] | None = None, workers: int = 1) -> None:
        from perfsage.api import pipeline

        self.space, self.target, self.budgets = space, target, budgets
        self.objective, self.level, self.weights = objective, level, weights
        self.pipeline = pipeline(target, weights)
        self.timing = Timing()
        self.invalid: dict[str, str] = {}  # architecture key -> why it cannot be built
        self.unpredictable = 0
        self._archs: dict[str, Architecture | None] = {}
        self._seen: dict[str, Candidate] = {}
        self._layer_cache: dict[tuple[str, int, LayerCompression], bytes] = {}
        self._layer_cache_bytes = 0
        self.workers = workers
        self._pool = None

    @property
    def seen(self) -> list[Candidate]:
        """Every candidate evaluated, in the order they were first met."""
        return list(self._seen.values())

    def architecture(self, config: Config) -> Architecture | None:
        """The dense model of a config (cached); None when the space cannot build it."""
        self.build([config])
        return self._archs[json.dumps(config, sort_keys=True)]

    def build(self, configs: Iterable[Config]) -> None:
        """Build and describe every config not built yet, in the worker processes if any.

        Building is most of a search's time (the builder serialises each model through
        the LiteRT schema's object API), and each config builds on its own.
        """
        tasks = {}
        for config in configs:
            key = json.dumps(config, sort_keys=True)
            if key not in self._archs and key not in tasks:
                tasks[key] = (self.space.name, config, key)
        if not tasks:
            return
        start = time.perf_counter()
        if self.workers > 1 and len(tasks) >= 2 * self.workers:
            found = self._worker_pool().map(_build, list(tasks.values()),
                                            chunksize=max(1, len(tasks) // (4 * self.workers)))
        else:
            found = [_build(task) for task in tasks.values()]
        self.timing.build_s += time.perf_counter() - start
        for key, arch in zip(tasks, found, strict=True):
            if isinstance(arch, str):  # the builder's own refusal: a config out of range
                self.invalid[key] = arch
                self._archs[key] = None
            else:
                self.timing.built += 1
                self._archs[key] = arch

    def _worker_pool(self):
        if self._pool is None:
            import multiprocessing

            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else None)
            self._pool = context.Pool(self.workers)
        return self._pool

    def close(self) -> None:
        """End the worker processes, if any."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def evaluate(self, genomes: Iterable[tuple[Config, tuple[LayerCompression, ...]]],
                 ) -> list[Candidate | None]:
        """Candidates for (config, genes) pairs, in order; None where a config cannot build.

        Genes are fitted to the architecture's weighted layers (cut or padded with dense
        layers); pairs already seen come from memory.
        """
        genomes = list(genomes)
        self.build(config for config, _ in genomes)
        out: list[Candidate | None] = []
        todo: dict[str, tuple[Architecture, tuple[LayerCompression, ...], bytes]] = {}
        keys: list[str | None] = []
        for config, genes in genomes:
            arch = self.architecture(config)
            if arch is None:
                keys.append(None)
                continue
            fitted = fit_genes(genes, len(arch.layer_weights))
            key = arch.digest + "|" + ",".join(f"{g.sparsity:g}/{g.bits}" for g in fitted)
            keys.append(key)
            if key not in self._seen and key not in todo:
                todo[key] = (arch, fitted, self._compressed(arch, fitted))
        self._predict(todo)
        for key in keys:
            out.append(self._seen.get(key) if key is not None else None)
        return out

    def _compressed(self, arch: Architecture, genes: tuple[LayerCompression, ...]) -> bytes:
        """The architecture's model with each weight layer pruned and clustered by its gene.

        Only the weight bytes change (:mod:`perfsage.udc.compress`); each layer's
        compressed values are kept, so a child that changed one gene costs one layer.
        """
        if all(g.is_identity for g in genes):
            return arch.tflite
        start = time.perf_counter()
        out = bytearray(arch.tflite)
        for layer, gene in zip(arch.weight_layers, genes, strict=True):
            if not gene.is_identity:
                out[layer.start:layer.start + layer.size] = self._layer_values(arch, layer,
                                                                               gene)
        self.timing.compress_s += time.perf_counter() - start
        return bytes(out)

    def _layer_values(self, arch: Architecture, layer: WeightLayer,
                      gene: LayerCompression) -> bytes:
        key = (arch.key, layer.op_index, gene)
        found = self._layer_cache.get(key)
        if found is None:
            dense = np.frombuffer(arch.tflite, np.int8, layer.size, layer.start)
            found = compress_values(dense.reshape(layer.shape), layer, gene).tobytes()
            if self._layer_cache_bytes + len(found) > LAYER_CACHE_BYTES:
                self._layer_cache.clear()
                self._layer_cache_bytes = 0
            self._layer_cache[key] = found
            self._layer_cache_bytes += len(found)
        return found

    def _predict(self, todo: Mapping[str, tuple[Architecture, tuple[LayerCompression, ...], bytes]],
                 ) -> None:
        """Predict a batch, judge each against the budgets, score those within budget."""
        if not todo:
            return
        items = list(todo.items())
        start = time.perf_counter()
        predictions = self._predictions([tflite for _, (_, _, tflite) in items])
        self.timing.predict_s += time.perf_counter() - start
        self.timing.predicted += len(items)
        for (key, (arch, genes, tflite)), prediction in zip(items, predictions, strict=True):
            if prediction is None:
                continue
            bound, violation = judge(prediction, self.budgets)
            candidate = Candidate(arch, genes, tflite, prediction, bound, violation,
                                  order=len(self._seen))
            if candidate.within_budget or self.objective.proxy:  # a proxy costs nothing
                start = time.perf_counter()
                candidate.objective = self.objective(candidate)
                self.timing.objective_s += time.perf_counter() - start
            self._seen[key] = candidate

    def sees_compression(self, rng: np.random.Generator, tries: int = 10) -> bool | None:
        """Whether compressing changes any budgeted prediction (None: nothing to try on).

        Weights trained without weight statistics predict a pruned model as its dense
        original (to float rounding); then compression genes cannot help meet a budget,
        only cost time. The probe prunes 90 % of every layer and clusters it to 2 bits.
        """
        for _ in range(tries):
            arch = self.architecture(architecture(self.space.sample(rng)))
            if arch is None or not arch.weight_layers:
                continue
            heavy = (LayerCompression(0.9, 2),) * len(arch.weight_layers)
            dense, small = self._predictions([arch.tflite, self._compressed(arch, heavy)])
            if dense is None or small is None:
                continue
            return any(_differ(dense.figures.get(b.metric), small.figures.get(b.metric))
                       for b in self.budgets)
        return None

    def _predictions(self, models: list[bytes]) -> list[Prediction | None]:
        """The pipeline's predictions; a model it cannot predict (non-finite) is None.

        One non-finite prediction fails a whole batch, so that batch is predicted again one
        model at a time to find which; that model is counted and left out.
        """
        from perfsage.api import predictions

        try:
            return predictions(models, self.target, weights=self.weights, level=self.level)
        except PredictionError:
            out: list[Prediction | None] = []
            for model in models:
                try:
                    out += predictions([model], self.target, weights=self.weights,
                                       level=self.level)
                except PredictionError as exc:
                    log.info("left out a candidate the predictor cannot handle: %s", exc)
                    self.unpredictable += 1
                    out.append(None)
            return out


def _build(task: tuple[str, Config, str]) -> Architecture | str:
    """Build and describe one config (in a worker process, too); a refusal as its message."""
    name, config, key = task
    try:
        tflite = get_space(name).build(config)
    except PerfSageError as exc:
        return str(exc)
    return _describe(config, key, tflite)


def _differ(a: float | None, b: float | None) -> bool:
    """More than a rounding apart: at least 1 % (pruning 90 % of weights moves far more)."""
    if a is None or b is None:
        return a is not b
    return abs(a - b) > 0.01 * max(abs(a), abs(b))


def _describe(config: Config, key: str, tflite: bytes) -> Architecture:
    """MACs, parameters and weight layers of a freshly built model."""
    from perfsage.graph import read_model
    from perfsage.graph.analysis import analyze

    model = read_model(tflite, details=True)
    cost = analyze(model)
    return Architecture(config, key, tflite, hashlib.sha256(tflite).hexdigest(),
                        int(cost.macs), int(cost.params),
                        tuple(weight_layers(tflite, model)))


def fit_genes(genes: tuple[LayerCompression, ...], layers: int) -> tuple[LayerCompression, ...]:
    """Genes for ``layers`` weighted layers: cut, or padded with dense ones."""
    return tuple(genes[:layers]) + (DENSE,) * max(0, layers - len(genes))


def judge(prediction: Prediction, budgets: tuple[Budget, ...],
          ) -> tuple[dict[str, float | None], float]:
    """Per budget, the value checked (interval's upper end, else the figure), and the excess.

    The excess is the summed relative overshoot (0 within every budget); a metric the
    pipeline gives no figure for counts as 1 (100 % over): nothing says it fits.
    """
    bound: dict[str, float | None] = {}
    violation = 0.0
    for budget in budgets:
        interval = (prediction.interval or {}).get(budget.metric)
        value = interval[1] if interval is not None else prediction.figures.get(budget.metric)
        bound[budget.metric] = value
        if value is None:
            violation += 1.0
        elif value > budget.limit:
            violation += (value - budget.limit) / budget.limit if budget.limit > 0 else value
    return bound, violation


def measured_excess(measured: Mapping[str, float], budgets: tuple[Budget, ...]) -> list[str]:
    """The budgets a measurement breaks, as ``metric measured > limit`` phrases."""
    broken = []
    for budget in budgets:
        value = measured.get(budget.metric)
        if value is None:
            broken.append(f"{budget.metric} not measured")
        elif value > budget.limit:
            broken.append(f"{budget.metric} {value:.4g} > {budget.limit:g}")
    return broken


class Evolution:
    """Regularised evolution over (config, compression genes), batched a population a time.

    Args:
        evaluator: builds, predicts and judges candidates.
        settings: population, generations, seed, whether compression is searched.
        progress: called with (evaluated, total) after each batch.
    """

    def __init__(self, evaluator: Evaluator, settings: Settings,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.evaluator, self.settings = evaluator, settings
        self.rng = np.random.default_rng(np.random.SeedSequence([settings.seed, 2019]))
        self.mutator = Mutator(evaluator.space, self.rng)
        self.progress = progress or (lambda done, total: None)

    def run(self) -> list[Candidate]:
        """Every candidate evaluated, in evaluation order."""
        settings, space = self.settings, self.evaluator.space
        total = settings.population * (settings.generations + 1)
        population: deque[Candidate] = deque()
        for _ in range(4):  # configs a space cannot build are drawn again, a few times
            wanted = settings.population - len(population)
            if wanted <= 0:
                break
            genomes = [(architecture(space.sample(self.rng)), self._initial_genes())
                       for _ in range(wanted)]
            population.extend(c for c in self.evaluator.evaluate(genomes) if c is not None)
        if not population:
            raise UsageError(f"search space {space.name}: none of {4 * settings.population} "
                             "sampled configs could be built")
        self.progress(settings.population, total)
        for generation in range(settings.generations):
            parents = [self._tournament(population) for _ in range(settings.population)]
            children = [c for c in self.evaluator.evaluate(self._mutate(p) for p in parents)
                        if c is not None]
            for child in children:  # aging: each child in, the oldest out
                population.append(child)
                population.popleft()
            self.progress(settings.population * (generation + 2), total)
        return self.evaluator.seen

    def _initial_genes(self) -> tuple[LayerCompression, ...]:
        """Dense layers: compression enters by mutation, where it helps."""
        return ()

    def _tournament(self, population: deque[Candidate]) -> Candidate:
        size = min(self.settings.tournament, len(population))
        drawn = self.rng.choice(len(population), size=size, replace=False)
        return max((population[int(i)] for i in drawn), key=Candidate.rank_key)

    def _mutate(self, parent: Candidate) -> tuple[Config, tuple[LayerCompression, ...]]:
        """The architecture (always, without compression) or one layer's gene."""
        genes = parent.layers
        if not self.settings.compress or not genes or self.rng.random() < ARCH_SHARE:
            return self.mutator.mutate(parent.config, self.rng), genes
        layer = int(self.rng.integers(len(genes)))
        gene = genes[layer]
        if self.rng.random() < 0.5:
            gene = LayerCompression(_step(SPARSITIES, gene.sparsity, self.rng), gene.bits)
        else:
            gene = LayerCompression(gene.sparsity, _step(BITS, gene.bits, self.rng))
        return parent.config, genes[:layer] + (gene,) + genes[layer + 1:]


def _step(options: tuple, current: Any, rng: np.random.Generator) -> Any:
    """The next option up or down from ``current`` (half the time), else any other."""
    index = options.index(current) if current in options else 0
    if rng.random() < 0.5:
        moved = index + (1 if rng.random() < 0.5 else -1)
        if 0 <= moved < len(options):
            return options[moved]
    others = [o for o in options if o != current]
    return others[int(rng.integers(len(others)))]


@dataclass(slots=True)
class SearchResult:
    """What a search found: the verified best candidates, the dropped, and every one seen."""

    space: str
    target: str
    budgets: tuple[Budget, ...]
    objective: Objective
    settings: Settings
    candidates: list[Candidate]
    dropped: list[Candidate]
    evaluated: list[Candidate]
    invalid: int
    unpredictable: int
    timing: Timing
    tool: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when ``count`` candidates were found (and verified, where asked)."""
        return len(self.candidates) >= self.settings.count

    def as_dict(self, files: Mapping[int, str] | None = None) -> dict[str, Any]:
        """JSON form: settings, every reported candidate, counts and timing."""
        from perfsage.udc.objectives import PROXY_WARNING

        files = files or {}
        within = sum(c.within_budget for c in self.evaluated)
        return {
            "space": self.space, "target": self.target,
            "budgets": {b.metric: b.limit for b in self.budgets},
            "objective": {"name": self.objective.name, "proxy": self.objective.proxy,
                          "description": self.objective.description,
                          **({"warning": PROXY_WARNING} if self.objective.proxy else {})},
            "settings": {"count": self.settings.count,
                         "generations": self.settings.generations,
                         "population": self.settings.population, "seed": self.settings.seed,
                         "tournament": self.settings.tournament,
                         "interval_level": self.settings.level,
                         "compress": self.settings.compress, "verify": self.settings.verify},
            "verified_with": self.tool,
            "complete": self.complete,
            "evaluated": len(self.evaluated), "within_budget_predicted": within,
            "invalid_configs": self.invalid, "unpredictable": self.unpredictable,
            "timing": self.timing.as_dict(),
            "candidates": [candidate_dict(c, self.budgets, rank=i + 1, file=files.get(id(c)))
                           for i, c in enumerate(self.candidates)],
            "dropped": [candidate_dict(c, self.budgets) for c in self.dropped],
            "notes": list(self.notes),
        }


def candidate_dict(candidate: Candidate, budgets: tuple[Budget, ...], rank: int | None = None,
                   file: str | None = None) -> dict[str, Any]:
    """One candidate in JSON form."""
    p = candidate.prediction
    return {
        **({"rank": rank} if rank is not None else {}),
        **({"file": file} if file else {}),
        "status": candidate.status, **({"reason": candidate.reason} if candidate.reason else {}),
        "objective": candidate.objective, "sha256": candidate.sha256,
        "macs": candidate.arch.macs, "params": candidate.arch.params,
        "config": candidate.config,
        "compression": [{"op_index": layer.op_index, "tensor": layer.name,
                         "weights": layer.size, "sparsity": g.sparsity, "bits": g.bits}
                        for layer, g in zip(candidate.arch.weight_layers, candidate.layers,
                                            strict=True)],
        "predicted": dict(p.figures),
        "interval": {m: list(v) for m, v in (p.interval or {}).items()},
        "budget_bound": {b.metric: candidate.bound.get(b.metric) for b in budgets},
        "measured": candidate.measured,
        "notes": [n.as_dict() for n in p.notes],
    }


def verify_candidates(ranked: list[Candidate], budgets: tuple[Budget, ...], target: str, count: int,
           timeout_s: float, timing: Timing) -> tuple[list[Candidate], list[Candidate]]:
    """Measure the best candidates until ``count`` hold every budget; (kept, dropped).

    At most ``VERIFY_TRIES_PER_COUNT * count`` are measured, a batch at a time (the
    number still missing), so a predictor that is too optimistic cannot make the search
    measure the whole history.
    """
    from perfsage.targets import MeasurePool

    kept: list[Candidate] = []
    dropped: list[Candidate] = []
    queue = deque(ranked[:VERIFY_TRIES_PER_COUNT * count])
    start = time.perf_counter()
    with MeasurePool([target], workers=1, timeout_s=timeout_s) as pool:
        while queue and len(kept) < count:
            batch = [queue.popleft() for _ in range(min(count - len(kept), len(queue)))]
            results = {r.key: r for r in pool.imap_unordered(
                [(i, c.tflite) for i, c in enumerate(batch)])}
            for i, candidate in enumerate(batch):
                result = results[i]
                timing.measured += 1
                if not result.ok:
                    candidate.status = "dropped"
                    candidate.reason = f"could not be measured ({result.status}: " \
                                       f"{result.message})"
                    dropped.append(candidate)
                    continue
                candidate.measured = dict(result.metrics)
                broken = measured_excess(candidate.measured, budgets)
                if broken:
                    candidate.status, candidate.reason = "dropped", "; ".join(broken)
                    dropped.append(candidate)
                else:
                    candidate.status = "verified"
                    kept.append(candidate)
    kept.sort(key=lambda c: c.rank_key(), reverse=True)
    timing.verify_s += time.perf_counter() - start
    return kept, dropped


def best_within_budget(candidates: Iterable[Candidate]) -> list[Candidate]:
    """The best candidate within budget of each architecture, best objective first.

    One per architecture: the N best would otherwise be one network under N compressions
    that differ in a layer or two, which tells a user nothing the first does not.
    """
    def key(c: Candidate) -> tuple[float, int]:
        return -(c.objective if c.objective is not None else -math.inf), c.order

    best: dict[str, Candidate] = {}
    for c in candidates:
        if c.within_budget and (c.arch.digest not in best or
                                key(c) < key(best[c.arch.digest])):
            best[c.arch.digest] = c
    return sorted(best.values(), key=key)


def search(space: str, target: str, budgets: Mapping[str, float] | Iterable[str], *,
           count: int = 3, objective: str | Callable[[Candidate], float] | None = None,
           generations: int = 30, population: int = 64, seed: int = 0,
           level: float | None = DEFAULT_LEVEL, compress: bool = True, verify: bool = True,
           out: str | PathLike[str] | None = None, weights: str | PathLike[str] | None = None,
           timeout_s: float = 120.0, workers: int = 1,
           progress: Callable[[int, int], None] | None = None) -> SearchResult:
    """Search a space for the ``count`` best models that meet every budget on ``target``.

    See :func:`perfsage.api.search` for the arguments.
    """
    settings = Settings(count=count, generations=generations, population=population,
                        seed=seed, level=level, compress=compress, verify=verify,
                        timeout_s=timeout_s)
    _whole("workers", workers, 1)
    folder = _out_folder(out)
    found_space = get_space(space)
    resolved = resolve(objective)
    evaluator = Evaluator(found_space, target, (), resolved, level, weights, workers)
    checked = parse_budgets(budgets, evaluator.pipeline.metrics, evaluator.pipeline.target)
    evaluator.budgets = checked
    notes = []
    if compress and not evaluator.sees_compression(
            np.random.default_rng(np.random.SeedSequence([seed, 1]))):
        settings = replace(settings, compress=False)
        notes.append(f"the predicted {', '.join(b.metric for b in checked)} on "
                     f"{evaluator.pipeline.target} do not change when weights are pruned or "
                     "clustered, so compression cannot help meet these budgets: the "
                     "architecture alone was searched")
    start = time.perf_counter()
    try:
        evaluated = Evolution(evaluator, settings, progress).run()
    finally:
        evaluator.close()
    evaluator.timing.search_s = time.perf_counter() - start
    ranked = best_within_budget(evaluated)
    if evaluator.pipeline.calibration is None or level is None:
        notes.append("no intervals: budgets were checked on the predicted figures alone")
    tool = None
    if verify and ranked:
        from perfsage.targets import get_target

        tool = get_target(evaluator.pipeline.target).settings.get("tool")
        kept, dropped = verify_candidates(ranked, checked, evaluator.pipeline.target, count,
                                          timeout_s, evaluator.timing)
    else:
        kept, dropped = ranked[:count], []
    result = SearchResult(space, evaluator.pipeline.target, checked, resolved, settings,
                          kept[:count], dropped, evaluated, len(evaluator.invalid),
                          evaluator.unpredictable, evaluator.timing, tool, notes)
    if folder is not None:
        from perfsage.udc.output import write_outputs

        write_outputs(result, folder)
    return result


def _out_folder(out: str | PathLike[str] | None) -> Path | None:
    """The output folder, checked before the search spends its time; None for none."""
    if out is None:
        return None
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"out: {folder} is a file; give a folder (it is created if missing)")
    import importlib.util

    from perfsage.errors import MissingExtraError

    if importlib.util.find_spec("matplotlib") is None:
        raise MissingExtraError("the search's Pareto plot", "train")
    return folder
