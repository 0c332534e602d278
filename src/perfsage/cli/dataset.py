"""`perfsage dataset`: generate models from search spaces, summarise and export them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from perfsage.cli import format as fmt

app = typer.Typer(help="Generate, summarise and export datasets of models.", no_args_is_help=True)

Folder = Annotated[Path, typer.Argument(help="Dataset folder.", show_default=False)]


@app.command()
def generate(
    space: Annotated[str, typer.Option(help="Search space name (see `perfsage dataset spaces`).")],
    count: Annotated[int, typer.Option(min=1, help="Unique models wanted for this space/seed.")],
    out: Annotated[Path, typer.Option(help="Dataset folder (created if missing).")],
    seed: Annotated[int, typer.Option(min=0, help="Dataset seed.")] = 0,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    keep_files: Annotated[bool, typer.Option(help="Also keep each .tflite file.")] = False,
) -> None:
    """Generate COUNT unique models; running again resumes where a run stopped."""
    from perfsage.cli.progress import Reporter
    from perfsage.dataset.generate import generate as run

    with Reporter(f"generate {space}", "models") as progress:
        summary = run(out, space, count, seed=seed, workers=workers, keep_files=keep_files,
                      progress=lambda s: progress.update(
                          s.stored, count, f"{s.duplicates} duplicates, {s.failures} failed"))
    print(f"{space}: {summary.stored} models stored (+{summary.added} this run), "
          f"{summary.duplicates} duplicates skipped, {summary.failures} failed")
    for message in summary.failure_messages:
        print(f"  failure: {message}")


@app.command()
def spaces() -> None:
    """List the search spaces and the model families they follow."""
    from perfsage.spaces import get_space, space_names

    for name in space_names():
        print(f"{name:22s} {get_space(name).family}")


@app.command()
def info(folder: Folder) -> None:
    """Counts per space, label coverage per target, and histograms of MACs, params, ops."""
    from perfsage.dataset.store import Store
    from perfsage.dataset.summary import histogram, label_coverage, label_metrics, model_columns

    out = fmt.console()
    with Store(folder) as store:
        counts = store.counts_by_space()
        columns = model_columns(store)
        coverage = label_coverage(store)
        metrics = label_metrics(store)
    table = Table(title=f"{folder}", title_justify="left")
    for name in ("space", "models", "duplicates", "failures", "MACs min", "MACs median",
                 "MACs max", "params median", "ops median"):
        table.add_column(name, justify="left" if name == "space" else "right")
    for space, c in sorted(counts.items()):
        cols = columns.get(space)
        stats = ["-"] * 5
        if cols is not None:
            stats = [fmt.count(cols["macs"].min()), fmt.count(float(_median(cols["macs"]))),
                     fmt.count(cols["macs"].max()), fmt.count(float(_median(cols["params"]))),
                     f"{_median(cols['ops']):.0f}"]
        table.add_row(space, str(c["models"]), str(c["duplicates"]), str(c["failures"]), *stats)
    out.print(table)
    if coverage:
        labels = Table(title="labels per target", title_justify="left")
        for name in ("target", "ok", "error", "timeout"):
            labels.add_column(name, justify="left" if name == "target" else "right")
        for target, by_status in sorted(coverage.items()):
            labels.add_row(target, *(str(by_status.get(s, 0)) for s in ("ok", "error", "timeout")))
        out.print(labels)
        ranges = Table(title="label ranges (ok labels)", title_justify="left")
        for name in ("target", "metric", "min", "median", "max"):
            ranges.add_column(name, justify="left" if name in ("target", "metric") else "right")
        for target, per in sorted(metrics.items()):
            for metric, values in per.items():
                ranges.add_row(target, metric, *(f"{v:.4g}" for v in (
                    values.min(), _median(values), values.max())))
        out.print(ranges)
    if "all" in columns:
        for key, log, title in (("macs", True, "MACs"), ("params", True, "parameters"),
                                ("ops", False, "operators")):
            out.print(f"\n{title} (all spaces, {len(columns['all'][key])} models)")
            for line in histogram(columns["all"][key], log=log).lines():
                out.print(line, markup=False, highlight=False)


def _median(values) -> float:
    import numpy as np

    return float(np.median(values))


@app.command()
def export(
    folder: Folder,
    parquet: Annotated[Path, typer.Option(help="Parquet file to write.")],
    space: Annotated[list[str] | None, typer.Option(
        help="Only this search space (repeat for more); default: every space.")] = None,
) -> None:
    """Write one row per model, labels as `<target>/<metric>` columns, to Parquet."""
    from perfsage.dataset.export import export_parquet
    from perfsage.dataset.store import Store
    from perfsage.spaces import get_space

    for name in space or []:
        get_space(name)  # an unknown name: one clear line
    with Store(folder) as store:
        rows = export_parquet(store, parquet, space)
    print(f"{rows} models written to {parquet}")


@app.command("import")
def import_(
    parquet: Annotated[list[Path], typer.Argument(
        help="Parquet files from `dataset export` (exports of disjoint spaces merge).",
        show_default=False)],
    out: Annotated[Path, typer.Option(help="New dataset folder.")],
) -> None:
    """Recreate a dataset (configs and labels) from Parquet exports, e.g. those in data/."""
    from perfsage.dataset.export import import_parquet

    print(f"{import_parquet(parquet, out)} models imported into {out}")


@app.command()
def annotate(
    folder: Folder,
    target: Annotated[list[str], typer.Option(help="Target to label (repeatable).")],
    workers: Annotated[int, typer.Option(min=1, help="Measuring processes.")] = 2,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds per model per target.")] = 60.0,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many models.")] = None,
) -> None:
    """Label every model lacking a label for the targets; running again resumes."""
    from perfsage.cli.progress import Reporter
    from perfsage.dataset.annotate import annotate as run

    def note(s) -> str:
        failed = sum(n for per in s.by_status.values() for st, n in per.items() if st != "ok")
        return f"{failed} not ok"

    with Reporter("annotate", "labels") as progress:
        summary = run(folder, target, workers=workers, timeout_s=timeout, limit=limit,
                      progress=lambda s: progress.update(s.done, s.total, note(s)))
    for name, per in sorted(summary.by_status.items()):
        counts = ", ".join(f"{n} {status}" for status, n in sorted(per.items()))
        mean = summary.wall_s[name] / max(1, sum(per.values()))
        print(f"{name}: {counts}; {mean * 1000:.0f} ms per model")
        if name in summary.examples:
            print(f"  e.g. {summary.examples[name]}")
    if summary.total == 0:
        print("nothing to do: every model already has these labels")
