"""The roofline: block padding, constants in flash, SRAM spill, and Vela's own figures."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from perfsage.builder import ModelBuilder
from perfsage.graph import read_model
from perfsage.predictors.features import featurize
from perfsage.predictors.roofline import ROOFLINE_COLUMNS, estimate, node_columns
from perfsage.targets.hardware import hardware

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"
TARGETS = ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256")


def _conv(channels_in: int, channels_out: int, size: int = 32) -> bytes:
    b = ModelBuilder(seed=0)
    x = b.input((1, size, size, channels_in))
    return b.build([b.conv2d(x, channels_out, 3, activation="relu")])


def _compute(data: bytes, target: str = "ethos-u55-128") -> float:
    return float(estimate(read_model(data), hardware(target)).compute_cycles.sum())


def test_channel_sawtooth():
    """Output channels pad to 8 and input channels to the 8-wide dot product."""
    assert _compute(_conv(16, 17)) == _compute(_conv(16, 24)) > _compute(_conv(16, 16))
    assert _compute(_conv(17, 16)) == _compute(_conv(24, 16)) == 1.5 * _compute(_conv(16, 16))
    # 16 channels in and out on a 32x32 map: 32*32*16*9*16 MACs at 128 per cycle.
    assert _compute(_conv(16, 16)) == 32 * 32 * 16 * 9 * 16 / 128
    assert _compute(_conv(16, 16), "ethos-u65-256") == 32 * 32 * 16 * 9 * 16 / 256


def _vela(data: bytes, target: str):
    from perfsage.targets.registry import target_class
    from perfsage.targets.vela_run import run_vela
    from perfsage.targets.vela_summary import parse_summary

    out = run_vela(data, target_class(target).options, target=target)
    return parse_summary(out.summary_csv, out.console, target=target)


@pytest.mark.parametrize("target", TARGETS)
def test_below_vela_on_real_models(target):
    """On real models the roofline is below Vela's estimate, and not far below."""
    hw = hardware(target)
    for name in ("ds_cnn_s_kws_int8", "mobilenet_v2_0.35_96_int8"):
        data = (EXAMPLES / f"{name}.tflite").read_bytes()
        vela_ms = _vela(data, target).inference_time_s * 1e3
        roof = estimate(read_model(data), hw)
        assert roof.total_ms <= vela_ms <= 5 * roof.total_ms, (name, roof.total_ms, vela_ms)
        assert np.all(roof.op_cycles >= roof.compute_cycles)
        assert roof.compute_cycles.sum() <= roof.floor_cycles <= roof.total_cycles


def _batch_norm(size: int) -> bytes:
    """A BatchNorm the converter could not fold: MUL and ADD by per-channel constants."""
    b = ModelBuilder(seed=0)
    x = b.input((1, size, size, 64))
    return b.build([b.batch_norm(b.conv2d(x, 64, 1, activation="relu"))])


def test_broadcast_constants_stream_from_flash():
    """On U55 a per-channel MUL/ADD re-reads its constant from flash per output element."""
    from perfsage.predictors.block.vela_layers import per_operator

    data = _batch_norm(32)
    model = read_model(data)
    u55 = estimate(model, hardware("ethos-u55-128"))
    mul = [op.index for op in model.main.operators if op.opcode in ("MUL", "ADD")]
    assert u55.bound_by()[mul[0]] == "OffChipFlash"
    # 32*32*64 one-byte elements, each 16-byte transfer paying a 128-byte flash burst.
    assert u55.memory_cycles["OffChipFlash"][mul].tolist() == [32 * 32 * 64 * 8] * 2
    layers = per_operator(data, "ethos-u55-128")[:, 0]
    assert np.allclose(u55.op_cycles[mul], layers[mul], rtol=0.02)
    assert _vela(data, "ethos-u55-128").traffic["off_chip_flash"].feature_map_read > 0
    # Ethos-U85 reads the constant once.
    u85 = estimate(model, hardware("ethos-u85-256"))
    assert u85.weight_cycles[mul].max() < 100


def _chain(size: int) -> bytes:
    """Three 3x3 convolutions, 32 channels: two feature maps between them."""
    b = ModelBuilder(seed=0)
    x = b.input((1, size, size, 32))
    for _ in range(3):
        x = b.conv2d(x, 32, 3, activation="relu")
    return b.build([x])


def test_feature_maps_spill_beyond_the_sram_cache():
    """Live activations beyond U85's 384 KiB cache send their excess share to DRAM."""
    hw = hardware("ethos-u85-256")
    unlimited = dataclasses.replace(hw, arena_cache_bytes=2**40)
    small, large = read_model(_chain(32)), read_model(_chain(160))
    r = estimate(small, hw)
    assert r.sram_overflow_bytes == 0
    assert r.feature_map_cycles.sum() == estimate(small, unlimited).feature_map_cycles.sum()
    r, free = estimate(large, hw), estimate(large, unlimited)
    # Two 160x160x32 maps live at once: 1.6 MB, four times the cache.
    assert r.sram_overflow_bytes == pytest.approx(2 * 160 * 160 * 32 - 384 * 1024, rel=1e-5)
    assert r.memory_cycles["Dram"].sum() > 2 * free.memory_cycles["Dram"].sum()
    assert r.feature_map_cycles.sum() > 1.5 * free.feature_map_cycles.sum()
    # Vela too moves the inner feature maps through DRAM, not only the graph's input and output.
    dram = _vela(_chain(160), "ethos-u85-256").traffic["dram"]
    assert dram.feature_map_read + dram.feature_map_write > 3 * 160 * 160 * 32


def test_shared_sram_keeps_feature_maps_in_sram():
    """With the arena in SRAM (U55 Shared_Sram) nothing spills: flash is read-only."""
    r = estimate(read_model(_chain(160)), hardware("ethos-u55-128"))
    assert set(r.memory_cycles) == {"Sram", "OffChipFlash"}
    assert r.feature_map_cycles.sum() == r.memory_cycles["Sram"].sum()
    assert r.sram_overflow_bytes == 0  # Vela's Shared_Sram allows the whole address space


def test_fused_activation_and_cpu_operators_cost_nothing():
    b = ModelBuilder(seed=0)
    x = b.input((1, 16, 16, 8))
    y = b.conv2d(x, 16, 3)
    data = b.build([b.relu(y)])
    model = read_model(data)
    hw = hardware("ethos-u55-128")
    r = estimate(model, hw)
    assert [op.opcode for op in model.main.operators] == ["CONV_2D", "RELU"]
    assert r.op_cycles[0] > 0 and r.op_cycles[1] == 0
    off = estimate(model, hw, on_npu=np.array([False, True]))
    assert off.total_cycles == 0


def test_node_columns():
    g = featurize(read_model((EXAMPLES / "mobilenet_v2_0.35_96_int8.tflite").read_bytes()))
    cols = node_columns(g, hardware("ethos-u65-256"))
    assert cols.shape == (len(g.op_types), len(ROOFLINE_COLUMNS))
    assert cols.dtype == np.float32 and np.isfinite(cols).all() and (cols >= 0).all()
    assert (cols[:, 0] > 0).sum() > len(g.op_types) // 2
    assert np.all(cols[:, 3] >= cols[:, 0])  # an operator's roofline covers its compute


def test_vela_lowerings():
    """A global MEAN pays the write-back floor; BATCH_MATMUL is a MUL per MAC on U55."""
    from perfsage.predictors.block.vela_layers import per_operator

    b = ModelBuilder(seed=0)
    x = b.input((1, 16, 16, 32))
    data = b.build([b.mean(b.conv2d(x, 32, 1, activation="relu"))])
    model = read_model(data)
    mean = [op.opcode for op in model.main.operators].index("MEAN")
    r = estimate(model, hardware("ethos-u55-128"))
    # 4 groups of 8 channels x 64 steps of 4 positions x 32 write-back cycles.
    assert r.compute_cycles[mean] == 4 * 64 * 32
    vela = per_operator(data, "ethos-u55-128")[mean, 0]
    assert r.op_cycles[mean] <= vela <= 1.5 * r.op_cycles[mean]

    b = ModelBuilder(seed=0)
    q, k = b.input((1, 4, 64, 32)), b.input((1, 4, 32, 64))
    model = read_model(b.build([b.batch_matmul(q, k)]))
    macs = 4 * 64 * 64 * 32
    assert estimate(model, hardware("ethos-u55-128")).compute_cycles[0] == macs * 0.75
    assert estimate(model, hardware("ethos-u85-256")).compute_cycles[0] == macs / 256


def test_u85_chains_a_residual_add():
    b = ModelBuilder(seed=0)
    x = b.input((1, 32, 32, 16))
    data = b.build([b.add(b.conv2d(x, 16, 3), x)])
    model = read_model(data)
    assert [op.opcode for op in model.main.operators] == ["CONV_2D", "ADD"]
    u85 = estimate(model, hardware("ethos-u85-256"))
    assert u85.op_cycles[1] == 0 < u85.op_cycles[0]
    assert estimate(model, hardware("ethos-u55-128")).op_cycles[1] > 0
    assert u85.total_ms <= _vela(data, "ethos-u85-256").inference_time_s * 1e3
    assert u85.op_ms.sum() == pytest.approx(u85.total_ms)


def test_entropy_coded_weights_below_velas_encoding():
    """Vela stores weights compressed; their zeroth-order entropy is below that size."""
    import csv
    import io

    from perfsage.predictors.roofline import entropy_weight_bytes
    from perfsage.targets.registry import target_class
    from perfsage.targets.vela_run import run_vela

    data = (EXAMPLES / "mobilenet_v2_0.35_96_int8.tflite").read_bytes()
    model = read_model(data)
    coded = entropy_weight_bytes(model)
    raw = np.array([sum(model.main.tensors[t].nbytes for t in dict.fromkeys(op.inputs)
                        if t >= 0 and model.main.tensors[t].is_constant)
                    for op in model.main.operators])
    weighted = coded > 0
    assert weighted.sum() == 35 + 17 + 1  # convolutions, depthwise, fully connected
    assert np.all(coded[weighted] < raw[weighted])
    out = run_vela(data, target_class("ethos-u55-128").options)
    header, row = list(csv.reader(io.StringIO(out.summary_csv)))[:2]
    encoded = float(dict(zip(header, row, strict=True))["total_npu_encoded_weights"])
    weights_only = coded.sum() - sum(  # Vela's figure counts weights, not biases
        model.main.tensors[op.inputs[2]].nbytes for op in model.main.operators
        if len(op.inputs) > 2 and op.inputs[2] >= 0 and op.opcode != "TRANSPOSE_CONV")
    assert weights_only <= encoded
    hw = hardware("ethos-u55-128")
    assert (estimate(model, hw, compressed_weights=True).total_cycles
            <= estimate(model, hw).total_cycles)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("shape", [(1, 10), (1, 96, 96, 2), (1, 828, 91)])
def test_softmax_is_priced_per_element_and_per_row_below_vela(target, shape):
    """A classifier's, a segmentation head's and a detection head's SOFTMAX inside a
    network (between two element-wise operators, its input and output in SRAM): a lower
    bound on Vela's cycles for it, and within 3x of them."""
    from perfsage.predictors.block.vela_layers import per_operator

    b = ModelBuilder(seed=0)
    bias = np.full(shape[-1], 0.1, np.float32)
    x = b.softmax(b.add_const(b.input(shape), bias))
    data = b.build([b.add_const(x, bias)])
    roof = estimate(read_model(data), hardware(target)).op_cycles[1]
    vela = per_operator(data, target)[1, 0]
    assert roof <= vela <= 3 * roof, (roof, vela)


@pytest.mark.parametrize("target", TARGETS)
def test_a_grouped_convolution_runs_per_group_with_its_activation_apart(target):
    """Vela splits a grouped CONV_2D into one convolution per group and runs the fused ReLU
    as a pass of its own: the roofline charges that pass, and stays below Vela."""
    def net(groups: int, activation: str | None) -> bytes:
        b = ModelBuilder(seed=0)
        x = b.conv2d(b.input((1, 32, 32, 16)), 24, 1, activation="relu")
        x = b.grouped_conv2d(x, 24, groups, 3, activation=activation)
        return b.build([b.conv2d(x, 16, 1, activation="relu")])

    hw = hardware(target)
    relu, plain = (estimate(read_model(net(3, a)), hw) for a in ("relu", None))
    grouped = 1  # the grouped convolution is the second operator
    simple = 32 * 32 * 24 * (0.5 if target == "ethos-u55-128" else 0.25)
    assert relu.compute_cycles[grouped] == plain.compute_cycles[grouped] + simple
    data = net(3, "relu")
    assert estimate(read_model(data), hw).total_ms <= _vela(data, target).inference_time_s * 1e3


@pytest.mark.parametrize("target", TARGETS)
def test_each_group_of_a_convolution_pays_its_own_set_up(target):
    """A RegNetX stage's grouped convolution (46 groups of 8 channels on a 4x4 map): Vela
    charges each group a set-up the MACs do not show; the roofline charges the least of it,
    so it comes within 2x of Vela's cycles for the layer (its MACs alone: 5-14x below)."""
    from perfsage.predictors.block.vela_layers import per_operator

    b = ModelBuilder(seed=0)
    x = b.conv2d(b.input((1, 4, 4, 16)), 368, 1, activation="relu")
    x = b.grouped_conv2d(x, 368, 46, 3, activation="relu", native=True)
    data = b.build([b.conv2d(x, 16, 1, activation="relu")])
    grouped = 1
    vela = per_operator(data, target)[grouped, 0]
    roof = estimate(read_model(data), hardware(target)).op_cycles[grouped]
    assert vela / 2 <= roof <= vela, (roof, vela)


@pytest.mark.parametrize("target", TARGETS)
def test_a_narrow_image_in_dram_moves_in_short_transfers(target):
    """With the arena in DRAM (Ethos-U65, U85) a convolution reads a 3-channel image in
    transfers far shorter than a burst, and Vela charges it several times the image's
    bytes: the roofline charges the short transfers, and stays below Vela. Ethos-U55's
    image is in SRAM: raw bytes."""
    b = ModelBuilder(seed=0)
    x = b.conv2d(b.input((1, 96, 96, 3)), 16, 3, stride=2, activation="relu")
    data = b.build([b.conv2d(x, 16, 1, activation="relu")])
    hw = hardware(target)
    roof = estimate(read_model(data), hw)
    image = 96 * 96 * 3 / hw.bytes_per_cycle(hw.feature_map_memory)
    read = roof.memory_cycles[hw.feature_map_memory][0]
    if hw.spilling:
        assert read >= 10 * image
        assert roof.op_cycles[0] > 5 * roof.compute_cycles[0]
    else:  # the image and the 48x48x16 output at their raw bytes
        assert read == image + 48 * 48 * 16 / hw.bytes_per_cycle(hw.feature_map_memory)
    assert roof.total_ms <= _vela(data, target).inference_time_s * 1e3


@pytest.mark.parametrize(("target", "kernel", "stride", "channels"), [
    ("ethos-u65-256", 7, 2, 32), ("ethos-u65-256", 3, 1, 32), ("ethos-u65-256", 3, 2, 16),
    ("ethos-u85-256", 3, 1, 16), ("ethos-u85-256", 7, 2, 64), ("ethos-u85-256", 1, 1, 8)])
def test_a_first_convolution_reads_its_image_again_per_output_block(target, kernel, stride,
                                                                   channels):
    """A ResNet's 7x7 stride-2 stem on 32 channels cost Ethos-U65 3.5x the image's single
    read, a U-Net's 3x3 first layer Ethos-U85 2.9x: the roofline counts the re-reads of
    window edges and of output-channel blocks, and stays below Vela within 2x."""
    from perfsage.predictors.block.vela_layers import per_operator

    b = ModelBuilder(seed=0)
    x = b.conv2d(b.input((1, 96, 96, 3)), channels, kernel, stride=stride, activation="relu")
    data = b.build([b.conv2d(x, 16, 1, activation="relu")])
    vela = per_operator(data, target)[0, 0]
    roof = estimate(read_model(data), hardware(target)).op_cycles[0]
    assert vela / 2 <= roof <= vela, (roof, vela)


def test_a_wider_narrow_image_counts_its_elements_not_its_bytes():
    """The short transfers are per element: an int16 image of the same bytes holds half
    the elements, so on Ethos-U65 its first convolution pays 16 bytes, times the 3x3
    stride-2 window's re-reads at the edges of its 24x24 output blocks, for each of half as
    many (the features hold bit widths / 32)."""
    from perfsage.predictors.features import NODE_FEATURES
    from perfsage.predictors.roofline import estimate_features

    b = ModelBuilder(seed=0)
    x = b.conv2d(b.input((1, 96, 96, 3)), 16, 3, stride=2, activation="relu")
    g = featurize(read_model(b.build([b.conv2d(x, 16, 1, activation="relu")])))
    hw = hardware("ethos-u65-256")
    wide = dataclasses.replace(g, nodes=g.nodes.copy())
    wide.nodes[0, NODE_FEATURES.index("in_bits")] = 16 / 32
    on_npu = np.ones(len(g.op_types), dtype=bool)
    memory = hw.feature_map_memory
    int8, int16 = (estimate_features(f, hw, on_npu).memory_cycles[memory][0] for f in (g, wide))
    image = 96 * 96 * 3
    overlap = ((23 * 2 + 3) / 48) ** 2
    assert int8 - int16 == pytest.approx(8 * overlap * image / hw.bytes_per_cycle(memory))


def _unet(skip: int, size: int = 96) -> bytes:
    """A U-Net's last level: a skip of ``skip`` channels concatenated with the upsampled
    decoder's 24, then a 3x3 convolution over the concatenation and a 1x1 head."""
    b = ModelBuilder(seed=0)
    s = b.conv2d(b.conv2d(b.input((1, size, size, 8)), 16, 3, activation="relu"), skip, 3,
                 activation="relu")
    d = b.conv2d(b.max_pool(s, 2), 48, 3, activation="relu")
    up = b.conv2d(b.resize(d, (size, size)), 24, 1, activation="relu")
    x = b.conv2d(b.concat([s, up]), 24, 3, activation="relu")
    return b.build([b.conv2d(x, 2, 1)])


@pytest.mark.parametrize("target", TARGETS)
def test_a_spilled_misaligned_concatenation_is_read_in_short_transfers(target):
    """Ethos-U85 keeps a concatenation with a channel offset off the 16-channel brick in
    NHWC; larger than its 384 KiB cache, it lives in DRAM, and the 3x3 convolution reading
    it fetches each 16-byte slice as a burst of its own per 16 output channels: Vela charges
    it ~8x the aligned U-Net's traffic (3.4 M cycles for 96x96x48 against 0.5 M). The
    roofline charges at least 28 bytes of DRAM per byte and pass, stays below Vela on the
    operator and the model, and within 1.7x of Vela's cycles for the operator. An aligned
    skip (16 + 24 = offset 16), or another target, reads it at its raw bytes."""
    from perfsage.predictors.block.vela_layers import per_operator

    hw = hardware(target)
    data, aligned = _unet(24), _unet(16)
    model = read_model(data)
    reader = len(model.main.operators) - 2
    assert model.main.operators[reader - 1].opcode == "CONCATENATION"
    roof, plain = estimate(model, hw), estimate(read_model(aligned), hw)
    vela = per_operator(data, target)[reader, 0]
    assert roof.op_cycles[reader] <= vela
    assert roof.total_ms <= _vela(data, target).inference_time_s * 1e3
    unlimited = estimate(model, dataclasses.replace(hw, arena_cache_bytes=2**40))
    if target == "ethos-u85-256":
        # 96x96x48 bytes x 28 per byte x 2 passes (24 outputs), over DRAM's 12 bytes/cycle.
        extra = 96 * 96 * 48 * (28 * 2 - 1) / hw.bytes_per_cycle("Dram")
        assert roof.memory_cycles["Dram"][reader] >= extra
        assert vela <= 1.7 * roof.op_cycles[reader], (vela, roof.op_cycles[reader])
        assert plain.op_cycles[reader] < vela / 5  # aligned: no short transfers
        assert per_operator(aligned, target)[reader, 0] < vela / 5  # nor in Vela
        assert unlimited.op_cycles[reader] < vela / 5  # unspilled: none either
    else:  # no short transfers in Vela either: within 2x of the raw bytes' roofline
        assert np.array_equal(roof.op_cycles, unlimited.op_cycles)
        assert vela <= 2 * roof.op_cycles[reader], (vela, roof.op_cycles[reader])
