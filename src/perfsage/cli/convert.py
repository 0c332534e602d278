"""`perfsage convert`: an ONNX, PyTorch (.pt2), Keras or SavedModel model to an int8 .tflite.

The conversion `predict`, `measure` and `inspect` do on their own, written to a file: the
model they predict is exactly this one. A float32 .tflite is requantised to int8; an int8
one is copied as it is. Needs the optional extra ``perfsage[convert]``;
docs/formats.md lists the converter used for each format.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from perfsage.errors import UsageError


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `perfsage convert`."""
    parser.add_argument("model", type=Path, metavar="MODEL",
                        help=".onnx, .pt2 (torch.export), .keras, .h5, a SavedModel folder or a "
                             "float32 .tflite")
    parser.add_argument("--out", "-o", type=Path, required=True, metavar="FILE",
                        help="where to write the int8 .tflite model")
    parser.add_argument("--calibration", type=Path, metavar="NPY",
                        help="samples for post-training quantisation: .npy of shape (N, ...) "
                             "for one input, .npz with one such array per input (default: "
                             "random samples)")


def run(args: argparse.Namespace) -> int:
    """Convert (or take from the cache) and copy the result to ``--out``."""
    from perfsage.convert import as_tflite, detect

    if detect(args.model) is None and not args.model.exists():
        raise UsageError(f"{args.model}: no such file or folder")
    if args.out.is_dir():
        raise UsageError(f"--out: {args.out} is a folder; give a file name (model.tflite)")
    if args.calibration is not None and not args.calibration.is_file():
        raise UsageError(f"--calibration: {args.calibration}: no such file")
    converted = as_tflite(args.model, calibration=args.calibration, quantize=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(converted, args.out)
    print(f"perfsage: wrote {args.out} ({args.out.stat().st_size:,} bytes)", file=sys.stderr)
    return 0
