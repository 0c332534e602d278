"""Run built models in LiteRT, TFLite Micro and Vela: the checks every builder test shares."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from perfsage.graph import analyze, read_model

VELA = Path(sys.executable).with_name("vela")
ACCELERATOR = "ethos-u55-128"


def random_inputs(data: bytes, seed: int = 0) -> list[np.ndarray]:
    """One random input per model input: uniform in [-1, 1] (quantised for int8 inputs).

    The same seed gives the same real values whatever the model's input types.
    """
    rng = np.random.default_rng(seed)
    model = read_model(data)
    out = []
    for t in model.inputs:
        x = rng.uniform(-1, 1, t.shape)
        if t.dtype == "int8":
            q = t.quantization
            x = np.clip(np.rint(x / q.scale[0] + q.zero_point[0]), -128, 127).astype(np.int8)
        out.append(x.astype(np.float32) if t.dtype == "float32" else x)
    return out


def litert(data: bytes, inputs: list[np.ndarray], reference: bool = False) -> list[np.ndarray]:
    """Outputs of LiteRT's interpreter: XNNPACK applied, as by default, or, with
    ``reference``, TFLite's reference kernels (which TFLite Micro's match bit for bit).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    it = Interpreter(model_content=data, experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs, strict=True):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def xnnpack_partitions(data: bytes) -> list[tuple[int, int]]:
    """(inputs, outputs) of each XNNPACK delegate node: what XNNPACK took over."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    it.allocate_tensors()
    return [(len(op["inputs"]), len(op["outputs"])) for op in it._get_ops_details()
            if op["op_name"] == "DELEGATE"]


def reference(data: bytes, inputs: list[np.ndarray]) -> list[np.ndarray] | None:
    """Outputs of TFLite's reference kernels, or None where they lack an operator.

    (The reference resolver has no int8 DEPTH_TO_SPACE, version 2, the converter's.)
    """
    try:
        return litert(data, inputs, reference=True)
    except ValueError as exc:
        assert "Didn't find op for builtin opcode 'DEPTH_TO_SPACE'" in str(exc), exc
        return None


def assert_tflm_matches(data: bytes, inputs: list[np.ndarray], xnnpack: list[np.ndarray],
                        tolerance: int = 2) -> None:
    """TFLite Micro gives the reference kernels' outputs (within 1 where its kernels round
    a little differently), and XNNPACK's within ``tolerance`` where there is no reference.
    """
    micro = tflm(data, inputs)
    ref = reference(data, inputs)
    for i, m in enumerate(micro):
        if ref is not None and m.dtype == np.int8:
            assert np.abs(m.astype(int) - ref[i].astype(int)).max() <= 1
        elif ref is not None:
            np.testing.assert_allclose(m, ref[i], rtol=1e-5, atol=1e-5)
        elif m.dtype == np.int8:
            assert np.abs(m.astype(int) - xnnpack[i].astype(int)).max() <= tolerance
        else:
            np.testing.assert_allclose(m, xnnpack[i], rtol=1e-4, atol=1e-4)


def tflm(data: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Outputs of TensorFlow Lite Micro's interpreter, given an arena big enough."""
    from tflite_micro.python.tflite_micro import runtime

    cost = analyze(read_model(data))
    arena = 10 * len(data) + 4 * cost.activation_bytes + (1 << 16)
    it = runtime.Interpreter.from_bytes(data, arena_size=arena)
    for i, x in enumerate(inputs):
        it.set_input(x, i)
    it.invoke()
    return [it.get_output(i).copy() for i in range(len(read_model(data).outputs))]


@dataclass
class VelaResult:
    """What Vela made of a model: cycles and the operators it left on the CPU, with why."""

    cycles: float
    cpu_operators: int
    reasons: list[str]  # "OPERATOR: reason" for each rejected operator
    log: str


def vela(data: bytes, folder: Path, name: str = "model") -> VelaResult:
    """Compile with Vela for an Ethos-U55-128 and read its summary."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.tflite"
    path.write_bytes(data)
    out = folder / f"{name}_vela"
    proc = subprocess.run([str(VELA), "--accelerator-config", ACCELERATOR, str(path),
                           "--output-dir", str(out)], capture_output=True, text=True, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    (summary,) = out.glob(f"{name}_summary_*.csv")
    with summary.open() as f:
        row = next(csv.DictReader(f))
    reasons = [f"{op}: {why}" for op, why in
               re.findall(r"operator: (\w+), ofm: .*\n\s*Reason: (.*)", log)]
    cpu = int(re.search(r"CPU operators = (\d+)", log).group(1))
    return VelaResult(float(row["cycles_total"]), cpu, reasons, log)


def dequantized(outputs: list[np.ndarray], data: bytes) -> list[np.ndarray]:
    """Real values of int8 outputs (float outputs unchanged)."""
    model = read_model(data)
    real = []
    for out, t in zip(outputs, model.outputs, strict=True):
        if t.dtype == "int8":
            q = t.quantization
            out = (out.astype(np.float64) - q.zero_point[0]) * q.scale[0]
        real.append(out)
    return real


def assert_close_to_float(int8: list[np.ndarray], int8_data: bytes,
                          real: list[np.ndarray]) -> None:
    """The int8 model computes what the float32 one does, up to quantisation error.

    A collapsed scale, saturation or a wrong zero point all show up as a large error; the
    float outputs must also vary (a constant output would hide them).
    """
    model = read_model(int8_data)
    for q, f, t in zip(dequantized(int8, int8_data), real, model.outputs, strict=True):
        assert np.unique(f).size > 1, f"{t.name}: every output value is {f.flat[0]}"
        assert np.isfinite(f).all()
        error = float(np.sqrt(np.mean((q - f) ** 2)))
        allowed = 0.1 * float(np.std(f)) + float(t.quantization.scale[0])
        assert error <= allowed, f"{t.name}: rms error {error:.4g} > {allowed:.4g}"
