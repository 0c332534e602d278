"""The NumPy model of Vela's weight encoder against the encoder and Vela themselves."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from perfsage.graph import read_model
from perfsage.graph.weight_stats import weight_tensors
from perfsage.targets import weight_encoding as we
from perfsage.udc.compress import compress

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"


def _reference_stream(opcode: str, values: np.ndarray) -> np.ndarray:
    """The stream Vela's own (Python) encoder builds: reorder, encode, decode."""
    from ethosu import mlw_codec

    w = np.ascontiguousarray(we.ohwi(opcode, values.astype(np.int16)))
    walk = we.traversal(opcode, values.shape)
    encoded, _ = mlw_codec.reorder_encode(we.UBLOCK, we.UBLOCK, w, we.OFM_BLOCK,
                                          walk == "depthwise", walk == "part", 8, 8, 8)
    return np.array(mlw_codec.decode(bytearray(encoded)), dtype=np.int16)


@pytest.mark.parametrize(("opcode", "shape"), [
    ("CONV_2D", (16, 3, 3, 8)),  # part-kernel first (8 inputs)
    ("CONV_2D", (24, 1, 1, 100)),  # depth first, inputs padded to 128
    ("CONV_2D", (10, 3, 3, 12)),  # outputs padded to 16
    ("CONV_2D", (20, 10, 4, 1)),  # a kernel taller than 8: two sub-kernels
    ("DEPTHWISE_CONV_2D", (1, 3, 3, 40)),
    ("DEPTHWISE_CONV_2D", (1, 5, 5, 8)),
    ("FULLY_CONNECTED", (12, 64)),
    ("TRANSPOSE_CONV", (8, 3, 3, 16)),
])
def test_the_stream_is_vela_reorder(opcode, shape):
    rng = np.random.default_rng(1)
    values = rng.integers(-127, 128, shape).astype(np.int8)
    values[rng.random(shape) < 0.3] = 0
    assert np.array_equal(we.weight_stream(opcode, values), _reference_stream(opcode, values))
    assert we.stream_length(we.ohwi(opcode, values).shape, we.traversal(opcode, shape)) == \
        we.weight_stream(opcode, values).size


@pytest.mark.parametrize(("opcode", "shape"), [
    ("DEPTHWISE_CONV_2D", (1, 3, 3, 40)), ("TRANSPOSE_CONV", (8, 3, 3, 16)),
    ("CONV_2D", (20, 10, 4, 3)), ("FULLY_CONNECTED", (12, 64)),
])
def test_statistics_read_the_stored_layout_as_the_stream(opcode, shape):
    rng = np.random.default_rng(4)
    values = np.where(rng.random(shape) < 0.5, 0, rng.integers(-127, 128, shape)).astype(np.int8)
    stream = we.weight_stream(opcode, values)
    stats = we.stream_stats(opcode, values)
    runs = np.diff(np.concatenate([[-1], np.flatnonzero(stream), [stream.size]])) - 1
    assert np.array_equal(stats.runs, np.bincount(runs))
    assert np.array_equal(stats.hist, np.bincount(stream.astype(np.int64) + 256, minlength=512))
    assert we.code(stats).nbytes == we.encoded_bytes(stream)


def test_sampled_statistics_match_the_whole_stream():
    rng = np.random.default_rng(2)
    values = rng.integers(-127, 128, (256, 1, 1, 512)).astype(np.int8)
    values[rng.random(values.shape) < 0.6] = 0
    stream = we.weight_stream("CONV_2D", values)
    assert stream.size > we.SAMPLE_VALUES  # the statistics are sampled
    exact = we.encoded_bytes(stream)
    sampled = we.code(we.stream_stats("CONV_2D", values)).nbytes
    assert abs(sampled - exact) <= 0.02 * exact


def test_the_coding_follows_the_values():
    rng = np.random.default_rng(3)
    dense = rng.integers(-127, 128, (64, 3, 3, 64)).astype(np.int8)
    sparse = np.where(rng.random(dense.shape) < 0.9, 0, dense).astype(np.int8)
    four = rng.choice(np.array([-50, -10, 10, 50], np.int8), dense.shape)
    codes = {name: we.code(we.stream_stats("CONV_2D", v))
             for name, v in (("dense", dense), ("sparse", sparse), ("four", four))}
    assert not codes["dense"].zero_runs and codes["dense"].palette_size == 0
    assert codes["sparse"].zero_runs
    assert codes["four"].palette_size == 4
    assert codes["dense"].nbytes > 4 * codes["sparse"].nbytes
    assert codes["dense"].nbytes > 3 * codes["four"].nbytes


def _vela_weight_bytes(data: bytes) -> float:
    from perfsage.targets.ethos_u import EthosU55_128
    from perfsage.targets.vela_run import run_vela

    out = run_vela(data, EthosU55_128.options)
    return float(next(csv.DictReader(io.StringIO(out.summary_csv)))["total_npu_encoded_weights"])


def _estimated_weight_bytes(data: bytes) -> float:
    return sum(we.code(we.stream_stats(w.opcode, w.values, w.zero_points, w.axis)).nbytes
               for w in weight_tensors(read_model(data)))


@pytest.mark.vela
@pytest.mark.parametrize("name", ["ds_cnn_s_kws_int8", "mobilenet_v2_0.35_96_int8"])
def test_what_compression_saves_is_what_vela_saves(name):
    # Vela adds weights of its own (an average pool's, a MEAN's): the same in both models,
    # so the bytes compression saves are compared.
    dense = (EXAMPLES / f"{name}.tflite").read_bytes()
    vela_dense, ours_dense = _vela_weight_bytes(dense), _estimated_weight_bytes(dense)
    assert abs(ours_dense - vela_dense) <= 0.05 * vela_dense
    for sparsity, bits in ((0.5, 8), (0.75, 4), (0.9, 2)):
        small = compress(dense, sparsity, bits)
        saved_by_vela = vela_dense - _vela_weight_bytes(small)
        saved_by_us = ours_dense - _estimated_weight_bytes(small)
        assert saved_by_vela > 0
        assert abs(saved_by_us - saved_by_vela) <= 0.02 * saved_by_vela


def test_layers_coded_together_take_the_bytes_of_each_alone():
    rng = np.random.default_rng(3)
    normal = np.clip(np.rint(rng.standard_normal((32, 3, 3, 24)) * 40), -127, 127)
    sparse = np.where(rng.random((64, 1, 1, 48)) < 0.9, 0, rng.integers(-127, 128, (64, 1, 1, 48)))
    layers = [
        ("CONV_2D", normal.astype(np.int8), 0, 0),
        ("CONV_2D", sparse.astype(np.int8), 0, 0),
        ("CONV_2D", np.zeros((16, 3, 3, 8), np.int8), 0, 0),  # pruned away: zero runs only
        ("CONV_2D", np.full((16, 1, 1, 16), 5, np.int8), 0, 0),  # one value
        ("DEPTHWISE_CONV_2D", rng.integers(-4, 4, (1, 3, 3, 40)).astype(np.int8), 0, 0),
        ("FULLY_CONNECTED", rng.integers(-127, 128, (200, 300)).astype(np.int8), 0, 0),
        ("CONV_2D", rng.integers(-20, 60, (8, 5, 5, 3)).astype(np.int8),
         rng.integers(-3, 4, 8), 0),  # zero points that differ per channel
        ("TRANSPOSE_CONV", rng.integers(-127, 128, (12, 4, 4, 20)).astype(np.int8), 0, 0),
    ]
    alone = [we.layer_bytes(*layer) for layer in layers]
    assert we.layers_bytes(layers).tolist() == alone
    assert we.layers_bytes([]).size == 0


@pytest.mark.parametrize("size", [0, 1, 4097, (1 << 16) - 1, 1 << 16, (1 << 16) + 1, 300_001])
def test_bytes_counted_in_pairs_are_counted_right(size):
    from perfsage.targets.weight_encoding import _byte_counts

    data = np.random.default_rng(size).integers(0, 256, size + 1, dtype=np.uint8)
    for part in (data[:size], data[1:]):  # even and odd starts in memory
        assert (_byte_counts(part) == np.bincount(part, minlength=256)).all()
