"""Recompute the golden digests that pin the prediction path's numbers.

    .venv/bin/python scripts/golden_digests.py           # print them, and which changed
    .venv/bin/python scripts/golden_digests.py --write   # rewrite DIGESTS in the test

The digests live in tests/predictors/test_prediction_numbers.py and are computed by that
module's own functions, so the script and the test cannot disagree on what a digest is. A
changed featurisation digest means trained weights no longer see the inputs they were
trained on: bump FEATURE_VERSION and retrain rather than only rewriting the digest.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

TEST = Path(__file__).resolve().parents[1] / "tests" / "predictors" / "test_prediction_numbers.py"


def _test_module():
    spec = importlib.util.spec_from_file_location("golden", TEST)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry(key, digests: tuple[str, ...]) -> str:
    """One ``key: (ir, cost, features),`` line in the test's style, wrapped at 100."""
    def quoted(value) -> str:
        return repr(value).replace("'", '"')

    line = f"    {quoted(key)}: {quoted(digests)},\n"
    if len(line) <= 101:
        return line
    indent = " " * (len(quoted(key)) + 7)
    return (f"    {quoted(key)}: ({quoted(digests[0])}, {quoted(digests[1])},\n"
            f"{indent}{quoted(digests[2])}),\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite DIGESTS in the test file")
    args = parser.parse_args()
    golden = _test_module()
    fresh = {}
    for key in golden.DIGESTS:
        model = golden.read_model(golden._model_bytes(key))
        fresh[key] = (golden._ir_digest(model), golden._cost_digest(golden.analyze(model)),
                      golden._features_digest(golden.featurize(model)))
        status = "same" if fresh[key] == golden.DIGESTS[key] else "CHANGED (IR, cost, features)"
        print(f"{key!s:40} {status}: {fresh[key]}")
    if args.write:
        text = TEST.read_text()
        block = "DIGESTS = {\n" + "".join(_entry(k, v) for k, v in fresh.items()) + "}\n"
        updated, n = re.subn(r"^DIGESTS = \{.*?^\}\n", block, text, flags=re.S | re.M)
        if n != 1:
            print(f"{TEST}: found no DIGESTS block to replace", file=sys.stderr)
            return 2
        TEST.write_text(updated)
        print(f"written to {TEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
