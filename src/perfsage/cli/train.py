"""`perfsage train`: fit the PerfSAGE network to a dataset's labels (CPU); resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from perfsage.cli.options import add_target, at_least, folder, one_target


def configure(parser: argparse.ArgumentParser) -> None:
    """Options of `perfsage train`."""
    parser.add_argument("dataset", type=Path, metavar="DATASET",
                        help="dataset folder (perfsage dataset generate)")
    add_target(parser, "target whose labels to learn")
    parser.add_argument("--out", type=folder, required=True, metavar="DIR",
                        help="folder for weights, config and checkpoints")
    parser.add_argument("--holdout-space", metavar="SPACE",
                        help="leave this search space out of training (it becomes the test "
                             "split)")
    parser.add_argument("--epochs", type=at_least(1), default=80, help="most epochs (80)")
    parser.add_argument("--patience", type=at_least(1), default=12,
                        help="stop after this many epochs without a better validation MAPE "
                             "(12)")
    parser.add_argument("--hidden", type=at_least(8), default=128, help="hidden width (128)")
    parser.add_argument("--layers", type=at_least(1), default=4,
                        help="message-passing rounds (4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--readout", choices=("additive", "pool"), default="additive",
                        help="additive: latency, energy and flash as a sum of per-operator "
                             "costs plus an overhead; pool: one MLP over pooled node states")
    parser.add_argument("--peak", action=argparse.BooleanOptionalAction, default=True,
                        help="peak memory (SRAM, arena) as the largest per-operator peak, each "
                             "operator starting from the activation bytes live while it runs")
    parser.add_argument("--type-dropout", type=float, default=0.1, metavar="SHARE",
                        help="share of operator types hidden as 'unknown' per training step, "
                             "so types never trained on are predicted from their shapes (0.1)")
    parser.add_argument("--rates", action=argparse.BooleanOptionalAction, default=True,
                        help="with --readout additive: each operator's cost as rates per MAC, "
                             "per byte and per operator times those quantities")
    parser.add_argument("--align", action=argparse.BooleanOptionalAction, default=True,
                        help="give each operator how far its channel counts are from "
                             "multiples of 8, 16 and 32, the blocks NPUs compute in")
    parser.add_argument("--roofline", action=argparse.BooleanOptionalAction, default=True,
                        help="on Ethos-U targets, give each operator its roofline cycles on "
                             "the target's hardware (Vela's ini) as inputs and as the anchor "
                             "of its additive cost, so the network learns a correction to "
                             "physics")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (0.002)")
    parser.add_argument("--init", type=Path, metavar="WEIGHTS",
                        help="start from these weights (trained with the same options) "
                             "instead of fresh ones, keeping their input and output "
                             "scaling: more epochs, or more data, e.g. at a lower --lr")
    parser.add_argument("--workers", type=at_least(1), default=2,
                        help="processes for featurising (2)")


def run(args: argparse.Namespace) -> int:
    """Train PerfSAGE on a dataset's labels (CPU); running again resumes from the checkpoint."""
    from perfsage.cli.progress import Reporter
    from perfsage.errors import UsageError
    from perfsage.predictors.graphset import load_graphset, split_sets
    from perfsage.predictors.perfsage_gnn.train import Hyper, fit
    from perfsage.targets.registry import target_class

    target = one_target(args)
    target_class(target)
    if not 0 <= args.type_dropout <= 0.95:
        raise UsageError(f"--type-dropout: {args.type_dropout} is outside 0 to 0.95")
    if not 0 < args.lr < 1:
        raise UsageError(f"--lr: {args.lr} is outside 0 to 1")
    dataset, out, epochs = args.dataset, args.out, args.epochs
    hyper = Hyper(epochs=epochs, patience=args.patience, hidden=args.hidden, layers=args.layers,
                  seed=args.seed, readout=args.readout, peak=args.peak,
                  type_dropout=args.type_dropout, rates=args.rates, align=args.align,
                  roofline=args.roofline, lr=args.lr)
    with Reporter("features", "graphs") as progress:
        data = load_graphset(dataset, target, workers=args.workers, progress=progress.update)
    sets = split_sets(data, args.holdout_space)
    info = {"dataset": str(dataset), "holdout_space": args.holdout_space,
            "spaces": sorted(set(data.spaces.tolist()))}
    with Reporter("train", "epochs") as progress:
        def report(s: dict) -> None:
            progress.update(s["epoch"], epochs, f"loss {s['train_loss']:.4f}, val MAPE "
                            f"{s['val_mape']:.2f}% (best {s['best_val_mape']:.2f}% at "
                            f"{s['best_epoch']})")

        state = fit(sets["train"], sets["val"], target, out, hyper, info=info, progress=report,
                    init=args.init)
    print(f"{target}: best validation MAPE {state['best_val_mape']:.2f}% at epoch "
          f"{state['best_epoch']} of {state['epoch']}; {state['wall_s'] / 60:.1f} min training; "
          f"weights in {out}")
    return 0
