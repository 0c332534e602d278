"""`perfsage dataset`: generate models from search spaces, label, summarise and export them."""

from __future__ import annotations

import argparse
from pathlib import Path

from perfsage.cli import format as fmt
from perfsage.cli.options import at_least, folder, output_file

#: Subcommand -> one-line help; each is a function of this module taking the parsed args.
SUBCOMMANDS = {
    "generate": "generate COUNT unique models; running again resumes where a run stopped",
    "spaces": "list the search spaces and the model families they follow",
    "info": "counts per space, label coverage per target, histograms of MACs, params, ops",
    "export": "write one row per model, labels as <target>/<metric> columns, to Parquet",
    "import": "recreate a dataset (configs and labels) from Parquet exports, e.g. data/",
    "annotate": "label every model lacking a label for the targets; running again resumes",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """The subcommands of `perfsage dataset` and their options."""
    sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    p = {name: sub.add_parser(name, help=text, description=text)
         for name, text in SUBCOMMANDS.items()}
    for name in ("info", "export", "annotate"):
        p[name].add_argument("folder", type=Path, metavar="FOLDER", help="dataset folder")
    g = p["generate"]
    g.add_argument("--space", required=True, help="search space (see `perfsage dataset spaces`)")
    g.add_argument("--count", type=at_least(1), required=True,
                   help="unique models wanted for this space and seed")
    g.add_argument("--out", type=folder, required=True, metavar="FOLDER",
                   help="dataset folder (created if missing)")
    g.add_argument("--seed", type=at_least(0), default=0, help="dataset seed (0)")
    g.add_argument("--workers", type=at_least(1), default=1, help="worker processes (1)")
    g.add_argument("--keep-files", action=argparse.BooleanOptionalAction, default=False,
                   help="also keep each .tflite file")
    e = p["export"]
    e.add_argument("--parquet", type=output_file, required=True, help="Parquet file to write")
    e.add_argument("--space", action="append",
                   help="only this search space (repeat for more); default: every space")
    i = p["import"]
    i.add_argument("parquet", type=Path, nargs="+", metavar="PARQUET",
                   help="Parquet files from `dataset export` (exports of disjoint spaces merge)")
    i.add_argument("--out", type=folder, required=True, metavar="FOLDER", help="new dataset folder")
    a = p["annotate"]
    a.add_argument("-t", "--target", action="append", required=True, metavar="TARGET",
                   help="target to label (repeatable)")
    a.add_argument("--workers", type=at_least(1), default=2, help="measuring processes (2)")
    a.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds per model per target (60)")
    a.add_argument("--limit", type=at_least(1), help="at most this many models")


def run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand."""
    return globals()[args.subcommand.replace("import", "import_")](args) or 0


def generate(args: argparse.Namespace) -> None:
    """Generate COUNT unique models; running again resumes where a run stopped."""
    from perfsage.cli.progress import Reporter
    from perfsage.dataset.generate import generate as run

    space, count = args.space, args.count
    with Reporter(f"generate {space}", "models") as progress:
        summary = run(args.out, space, count, seed=args.seed, workers=args.workers,
                      keep_files=args.keep_files,
                      progress=lambda s: progress.update(
                          s.stored, count, f"{s.duplicates} duplicates, {s.failures} failed"))
    print(f"{space}: {summary.stored} models stored (+{summary.added} this run), "
          f"{summary.duplicates} duplicates skipped, {summary.failures} failed")
    for message in summary.failure_messages:
        print(f"  failure: {message}")


def spaces(args: argparse.Namespace) -> None:
    """List the search spaces and the model families they follow."""
    from perfsage.spaces import get_space, space_names

    for name in space_names():
        print(f"{name:22s} {get_space(name).family}")


def info(args: argparse.Namespace) -> None:
    """Counts per space, label coverage per target, and histograms of MACs, params, ops."""
    from rich.table import Table

    from perfsage.dataset.store import Store
    from perfsage.dataset.summary import histogram, label_coverage, label_metrics, model_columns

    folder = args.folder
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


def export(args: argparse.Namespace) -> None:
    """Write one row per model, labels as `<target>/<metric>` columns, to Parquet."""
    from perfsage.dataset.export import export_parquet
    from perfsage.dataset.store import Store
    from perfsage.spaces import get_space

    for name in args.space or []:
        get_space(name)  # an unknown name: one clear line
    with Store(args.folder) as store:
        rows = export_parquet(store, args.parquet, args.space)
    print(f"{rows} models written to {args.parquet}")


def import_(args: argparse.Namespace) -> None:
    """Recreate a dataset (configs and labels) from Parquet exports, e.g. those in data/."""
    from perfsage.dataset.export import import_parquet

    done = import_parquet(args.parquet, args.out)
    print(f"{done.models} models imported into {args.out}"
          + (f" ({done.duplicates} later copies of a graph skipped)" if done.duplicates else ""))


def annotate(args: argparse.Namespace) -> None:
    """Label every model lacking a label for the targets; running again resumes."""
    from perfsage.cli.progress import Reporter
    from perfsage.dataset.annotate import annotate as run

    def note(s) -> str:
        failed = sum(n for per in s.by_status.values() for st, n in per.items() if st != "ok")
        return f"{failed} not ok"

    from perfsage.errors import UsageError

    if not args.timeout > 0:
        raise UsageError(f"--timeout: {args.timeout} is not a positive number of seconds")
    with Reporter("annotate", "labels") as progress:
        summary = run(args.folder, list(dict.fromkeys(args.target)), workers=args.workers,
                      timeout_s=args.timeout, limit=args.limit,
                      progress=lambda s: progress.update(s.done, s.total, note(s)))
    for name, per in sorted(summary.by_status.items()):
        counts = ", ".join(f"{n} {status}" for status, n in sorted(per.items()))
        mean = summary.wall_s[name] / max(1, sum(per.values()))
        print(f"{name}: {counts}; {mean * 1000:.0f} ms per model")
        if name in summary.examples:
            print(f"  e.g. {summary.examples[name]}")
    if summary.elsewhere:
        print(f"{summary.elsewhere} (model, target) pairs were left to other runs measuring "
              "this dataset now")
    elif summary.total == 0:
        print("nothing to do: every model already has these labels")
