"""How Vela's cost per MAC depends on channel counts: the case for ``features.channel_alignment``.

Run: .venv/bin/python benchmarks/channel_alignment.py [--target ethos-u55-128] [--side 96]

One 3x3 convolution (ReLU, 'same') on a SIDE x SIDE map is compiled for the target for a
sweep of input channels (32 outputs), of output channels (32 inputs) and of depthwise
channels; each line prints NPU cycles per MAC relative to the 32-channel layer. Then
360 x 360 maps with 24, 32 and 33 channels in and out, whose latencies show the padding.
"""

from __future__ import annotations

import argparse

from perfsage.builder import ModelBuilder
from perfsage.targets import get_target

SWEEP = (1, 2, 3, 4, 7, 8, 9, 12, 15, 16, 17, 20, 24, 31, 33, 40, 48, 64)


def layer(side: int, cin: int, cout: int, depthwise: bool = False) -> bytes:
    """A one-layer int8 model."""
    b = ModelBuilder(seed=0)
    x = b.input((1, side, side, cin))
    x = (b.depthwise_conv2d(x, kernel=3, activation="relu") if depthwise
         else b.conv2d(x, cout, kernel=3, activation="relu"))
    return b.build([x])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="ethos-u55-128")
    parser.add_argument("--side", type=int, default=96)
    args = parser.parse_args()
    tool, side = get_target(args.target), args.side

    def per_mac(cin: int, cout: int, depthwise: bool = False) -> float:
        macs = side * side * 9 * (cin if depthwise else cin * cout)
        return tool.measure(layer(side, cin, cout, depthwise))["npu_cycles"] / macs

    base, base_dw = per_mac(32, 32), per_mac(32, 32, True)
    print(f"{args.target}, 3x3 convolution on {side}x{side}: cycles per MAC / that of 32 channels")
    print("input channels (32 out): " + " ".join(f"{c}:{per_mac(c, 32) / base:.2f}" for c in SWEEP))
    print("output channels (32 in): " + " ".join(f"{c}:{per_mac(32, c) / base:.2f}" for c in SWEEP))
    print("depthwise channels:      " + " ".join(
        f"{c}:{per_mac(c, c, True) / base_dw:.2f}" for c in SWEEP if c != 2))
    for c in (24, 32, 33):
        figures = tool.measure(layer(360, c, c))
        print(f"360x360, {c} -> {c} channels: {figures['latency_ms']:.3f} ms")


if __name__ == "__main__":
    main()
