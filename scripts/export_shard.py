"""Export the newly finished rows of a dataset being labelled as one more Parquet shard.

A long labelling job should lose nothing when its machine goes, so its labels are kept in
the repository as they are made: each call writes ``<prefix>-NN.parquet`` with the models
that have a label (a figure or a recorded failure) for every target asked for and are in
no earlier shard. Shards are disjoint, so ``perfsage dataset import`` takes them together.

    python scripts/export_shard.py /work/zoo-ds data/zoo/zoo-shard --space zoo \\
        --target ethos-u55-128 --target ethos-u65-256 --target ethos-u85-256 \\
        --target cortex-m-tflm
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from perfsage.dataset.export import export_parquet
from perfsage.dataset.store import Store


def new_shard(folder: Path, prefix: Path, spaces: list[str], targets: list[str]) -> Path | None:
    """Write the next shard; returns its path, or None when no new row is complete."""
    earlier = sorted(prefix.parent.glob(f"{prefix.name}-*.parquet"))
    done: set[int] = set()
    for path in earlier:
        done.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "all.parquet"
        with Store(folder) as store:
            export_parquet(store, full, spaces)
        table = pq.read_table(full)
    complete = pc.invert(pc.is_in(table.column("id"), value_set=pa.array(sorted(done),
                                                                          pa.int64())))
    for target in targets:
        column = f"{target}/status"
        if column not in table.column_names:
            return None
        complete = pc.and_(complete, pc.is_valid(table.column(column)))
    rows = table.filter(complete)
    if rows.num_rows == 0:
        return None
    path = prefix.parent / f"{prefix.name}-{len(earlier):02d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows, path, compression="zstd")
    return path


def main() -> None:
    """Parse arguments, write a shard, print its path and row count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="dataset folder being labelled")
    parser.add_argument("prefix", type=Path, help="shard path prefix, e.g. data/zoo/zoo-shard")
    parser.add_argument("--space", action="append", required=True)
    parser.add_argument("--target", action="append", required=True)
    args = parser.parse_args()
    path = new_shard(args.folder, args.prefix, args.space, args.target)
    if path is None:
        print("no new complete rows")
    else:
        print(f"{path}: {pq.read_metadata(path).num_rows} rows")


if __name__ == "__main__":
    main()
