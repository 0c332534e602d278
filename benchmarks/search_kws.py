"""The search's worked example: keyword spotters for ethos-u55-128 within issue 16's budgets.

Run: .venv/bin/python benchmarks/search_kws.py [--out DIR] [--write-docs]

Runs the command docs/udc.md shows, exactly as a user types it (latency 0.3 ms, SRAM
64 KiB, flash 120 KiB, 3 candidates, default settings), prints each candidate's predicted
figure, interval upper end and Vela's measurement, and the search's speed; then the same
search with 50 % intervals (``--level 0.5``), to show what the 90 % intervals' headroom
costs. With ``--write-docs`` it puts both into the ``search-example`` section of
docs/udc.md.
Figures are on our own keyword-spotting space, measured with Vela (ethos-u-vela).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_doc import replace_section  # noqa: E402

BUDGETS = {"latency_ms": 0.3, "sram_kib": 64, "flash_kib": 120}
COMMAND = ["search", "--space", "keyword-spotting", "--target", "ethos-u55-128",
           *[x for m, v in BUDGETS.items() for x in ("--budget", f"{m}={v:g}")],
           "--count", "3"]


def run(out: Path, extra: tuple[str, ...] = ()) -> tuple[dict, float]:
    """The search's results.json and its wall time in seconds (the whole command)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "perfsage", *COMMAND, *extra, "--out",
                           str(out), "--json"], capture_output=True, text=True, check=False)
    wall_s = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: fewer candidates than asked, still a result
        sys.exit(f"search failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout), wall_s


def table(record: dict) -> list[str]:
    """Reported and dropped candidates: predicted / interval top / Vela per budget."""
    metrics = list(record["budgets"])
    out = ["| rank | MACs | weights | " + " | ".join(
               f"{m} predicted / interval top / Vela (budget {record['budgets'][m]:g})"
               for m in metrics) + " |",
           "|---|---:|---:|" + "---:|" * len(metrics)]
    rows = [(str(c["rank"]), c) for c in record["candidates"]]
    rows += [("dropped: " + c["reason"], c) for c in record["dropped"]]
    for rank, c in rows:
        cells = [rank, f"{c['macs'] / 1e6:.2f} M", f"{c['params']:,}"]
        cells += [f"{c['predicted'][m]:.4g} / {c['budget_bound'][m]:.4g} / "
                  f"{c['measured'][m]:.4g}" for m in metrics]
        out.append("| " + " | ".join(cells) + " |")
    return out


def lines(record: dict, wall_s: float, loose: dict) -> list[str]:
    """The example as markdown: the command, the candidates, the speed, the 50 % run."""
    t = record["timing"]
    out = ["Written by `.venv/bin/python benchmarks/search_kws.py --write-docs`; our own "
           "keyword-spotting space, predicted by the shipped ethos-u55-128 weights and "
           "measured with Vela (" + (record.get("verified_with") or "") + ").", "",
           "```", "perfsage " + " ".join(COMMAND) + " --out DIR", "```", "",
           *table(record)]
    out += ["", f"{record['evaluated']:,} distinct candidates evaluated "
                f"({record['settings']['population']} x {record['settings']['generations'] + 1}"
                f" generations, seed {record['settings']['seed']}), "
                f"{record['within_budget_predicted']:,} within every budget by their "
                f"{record['settings']['interval_level']:.0%} intervals; "
                f"{len(record['candidates'])} verified, {len(record['dropped'])} dropped by "
                "Vela.", "",
            f"Speed (one process, on a shared 2-core machine): search {t['search_s']:.1f} s, "
            f"{t['candidates_per_s']:.0f} candidates/s end to end; building models "
            f"{t['builds_per_s']:.0f}/s ({t['build_s']:.1f} s), predicting with intervals "
            f"{t['predictions_per_s']:.0f}/s ({t['predict_s']:.1f} s); Vela verification "
            f"{t['verify_s']:.1f} s for {t['measured']} models; the whole command "
            f"{wall_s:.1f} s."]
    for note in record["notes"]:
        out += ["", f"Note printed by the command: {note}."]
    out += ["", "The same search with `--level 0.5` (50 % intervals, far less headroom):", "",
            *table(loose), "",
            f"{loose['within_budget_predicted']:,} of {loose['evaluated']:,} candidates within "
            f"every budget by their 50 % intervals; {len(loose['candidates'])} verified, "
            f"{len(loose['dropped'])} dropped by Vela."]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None,
                        help="keep the search's files here (default: a temporary folder)")
    parser.add_argument("--write-docs", action="store_true",
                        help="write the example into docs/udc.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        record, wall_s = run(args.out or Path(scratch) / "search")
        loose, _ = run(Path(scratch) / "level-0.5", ("--level", "0.5"))
    text = lines(record, wall_s, loose)
    print("\n".join(text))
    if args.write_docs:
        print("wrote", replace_section("search-example", text, ROOT / "docs" / "udc.md"))


if __name__ == "__main__":
    main()
