"""Which operators Vela leaves on the host CPU, and what that means for a prediction.

Vela 5.2.0 compiles every Ethos-U target with its C++ core (Regor). The Python checks in
``ethosu.vela.tflite_supported_operators`` belong to the deprecated legacy core: they do
not decide placement, and reading a MobileNetV2-224 with Vela's reader and running them
costs ~0.2 s (the weight-sum check walks every weight in Python), about half a whole
compilation (0.3-0.4 s). A prediction must cost a few milliseconds, so Regor's checks are
restated over our IR in :mod:`perfsage.targets.vela_checks` (about 0.5 ms per target on a
MobileNetV2-224); the operator types each accelerator runs still come from Vela itself.

``cpu_ops`` here equals the ``CPU operators = N`` of Vela's summary on every model
``benchmarks/vela_support_speed.py`` checks (examples, every search space in int8 and
float32, Keras-converted models), and a refusal is predicted where Vela refuses;
``tests/targets/test_vela_support.py`` pins a dozen models against the real Vela.

    from perfsage.targets.vela_support import cpu_placement, model_notes
    placement = cpu_placement(model, "ethos-u55-128")   # .cpu_ops, .operators, .rejected
    notes = model_notes(model, ["ethos-u55-128"])       # [ModelNote(kind, message, target)]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import cache

from perfsage.errors import UsageError
from perfsage.graph.analysis import operator_macs
from perfsage.graph.ir import Model, Operator, Subgraph
from perfsage.graph.reader import Source, read_model
from perfsage.targets.vela_checks import Arch, arch_for, rejection, unsupported_reason

#: Ethos-U targets whose CPU fallback this module computes.
ETHOS_U_TARGETS = ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256")

#: Share of operators or of MACs on the CPU above which a model counts as mostly on the CPU.
MOSTLY_CPU_SHARE = 0.5

_FLOAT_DTYPES = frozenset({"float32", "float16", "bfloat16", "float64"})
_BOUNDARY_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})


@dataclass(frozen=True, slots=True)
class CpuOperator:
    """One operator Vela places on the CPU, and the reason its check gives."""

    subgraph: int  # 0 for the main graph, else a WHILE/IF body
    index: int  # position in its subgraph
    opcode: str  # builtin name, or the custom code
    ofm: str  # name of its first output, as Vela's warning names it
    reason: str
    macs: int


@dataclass(frozen=True, slots=True)
class CpuPlacement:
    """Vela's placement of one model (every subgraph) on one Ethos-U target."""

    target: str
    operators: tuple[CpuOperator, ...]  # those left on the CPU, subgraph by subgraph
    total_ops: int  # operators in all subgraphs
    total_macs: int  # MACs of all operators (a WHILE body counted once)
    rejected: str | None = None  # why Vela refuses the model outright, else None

    @property
    def cpu_ops(self) -> int:
        """The ``CPU operators = N`` of Vela's summary (WHILE and IF bodies included)."""
        return len(self.operators)

    @property
    def cpu_op_share(self) -> float:
        """Share of all operators left on the CPU (0 for an empty model)."""
        return self.cpu_ops / self.total_ops if self.total_ops else 0.0

    @property
    def cpu_mac_share(self) -> float:
        """Share of all MACs spent in operators left on the CPU."""
        cpu = sum(op.macs for op in self.operators)
        return cpu / self.total_macs if self.total_macs else 0.0

    @property
    def mostly_cpu(self) -> bool:
        """True when more than :data:`MOSTLY_CPU_SHARE` of the operators or MACs is on the CPU."""
        return max(self.cpu_op_share, self.cpu_mac_share) > MOSTLY_CPU_SHARE

    def as_dict(self) -> dict[str, object]:
        """The placement as plain JSON data, derived figures included."""
        return {"target": self.target, "cpu_ops": self.cpu_ops, "total_ops": self.total_ops,
                "cpu_op_share": self.cpu_op_share, "cpu_mac_share": self.cpu_mac_share,
                "mostly_cpu": self.mostly_cpu, "rejected": self.rejected,
                "operators": [asdict(op) for op in self.operators]}


@dataclass(frozen=True, slots=True)
class ModelNote:
    """A fact about a model that qualifies its prediction, for the user to read.

    ``kind`` is one of ``float32`` (float activations and weights: Vela runs none of it on
    the NPU as it is), ``hybrid`` (int8 weights, float activations), ``custom-ops``,
    ``vela-rejects`` (Vela refuses the model), ``mostly-cpu`` and ``cpu-ops`` (some
    operators stay on the CPU; the NPU figures leave their time out).
    """

    kind: str
    message: str
    target: str | None = None  # the target the note is about, None for the model itself

    def as_dict(self) -> dict[str, str | None]:
        """The note as plain JSON data."""
        return asdict(self)


def _accelerator(target: str) -> str | None:
    """A registered target's Vela ``--accelerator-config``; None if Vela is not its tool."""
    from perfsage.targets.registry import target_class

    options = getattr(target_class(target), "options", None)
    return getattr(options, "accelerator_config", None)


@cache
def _arch(target: str) -> Arch:
    accelerator = _accelerator(target)
    if accelerator is None:
        raise UsageError(f"target {target!r} is not compiled by Vela; choose from: "
                         f"{', '.join(ETHOS_U_TARGETS)}")
    return arch_for(accelerator)


def _model(model: Model | Source) -> Model:
    """The IR of ``model``, read with details (Vela's checks need quantisation and names).

    Raises:
        UsageError: ``model`` is an IR read with ``details=False``.
    """
    if not isinstance(model, Model):
        return read_model(model)
    tensors = [t for sg in model.subgraphs for t in sg.tensors]
    if tensors and not any(t.name for t in tensors) and any(
            t.quantization is None and t.dtype in ("int8", "uint8", "int16") for t in tensors):
        raise UsageError("the model IR has no tensor names or quantisation (read with "
                         "details=False); read it with details=True to place it with Vela's "
                         "checks")
    return model


def cpu_placement(model: Model | Source, target: str) -> CpuPlacement:
    """The operators Vela leaves on the CPU when compiling ``model`` for ``target``.

    Args:
        model: our IR (:func:`perfsage.graph.read_model`), or a path or the bytes.
        target: an Ethos-U target name, e.g. "ethos-u55-128".

    Raises:
        ModelFileError: ``model`` is a path or bytes that are not a valid TFLite model.
        UnknownTargetError: no target has that name.
        UsageError: the target is not compiled by Vela, or ``model`` is an IR read with
            ``details=False``.
    """
    return cpu_placements(model, (target,))[target]


def cpu_placements(model: Model | Source,
                   targets: Iterable[str] = ETHOS_U_TARGETS) -> dict[str, CpuPlacement]:
    """:func:`cpu_placement` for several targets; what they share is worked out once."""
    archs = {target: _arch(target) for target in targets}
    model = _model(model)
    rejected = rejection(model)
    macs = [[operator_macs(sg, op) for op in sg.operators] for sg in model.subgraphs]
    total_ops, total_macs = sum(map(len, macs)), sum(map(sum, macs))
    placed = {}
    for target, arch in archs.items():
        found = [] if rejected is not None else _cpu_operators(model, arch, macs)
        placed[target] = CpuPlacement(target, tuple(found), total_ops, total_macs, rejected)
    return placed


def _cpu_operators(model: Model, arch: Arch, macs: list[list[int]]) -> list[CpuOperator]:
    found = []
    for sg, sg_macs in zip(model.subgraphs, macs, strict=True):
        reasons = [unsupported_reason(op, sg, arch) for op in sg.operators]
        removed = _removed_shape_ops(sg, reasons)
        for op, reason in zip(sg.operators, reasons, strict=True):
            if reason is not None and op.index not in removed:
                ofm = sg.tensors[op.outputs[0]].name if op.outputs else ""
                found.append(CpuOperator(sg.index, op.index, op.name, ofm, reason,
                                         sg_macs[op.index]))
    return found


def _removed_shape_ops(sg: Subgraph, reasons: list[str | None]) -> set[int]:
    """Operators Vela deletes: those that only compute the shape of an NPU RESHAPE.

    A RESHAPE the NPU runs takes its output shape from its output tensor, so Vela drops
    its shape input (the SHAPE -> STRIDED_SLICE -> PACK chain Keras writes for Flatten)
    and the operators left without a reader.
    """
    dropped = {(op.index, op.inputs[1]) for op, reason in zip(sg.operators, reasons, strict=True)
               if op.opcode == "RESHAPE" and reason is None and len(op.inputs) > 1
               and op.inputs[1] >= 0 and sg.tensors[op.inputs[1]].data is None}
    if not dropped:
        return set()
    outputs = set(sg.outputs)
    removed: set[int] = set()
    for op in reversed(sg.operators):  # readers come after writers
        if any(t in outputs for t in op.outputs):
            continue
        readers = [(c, t) for t in op.outputs if t >= 0 for c in sg.consumers.get(t, ())]
        if readers and all(c in removed or (c, t) in dropped for c, t in readers):
            removed.add(op.index)
    return removed


def _reads_or_writes_float(sg: Subgraph, tensors: Iterable[int]) -> bool:
    return any(t >= 0 and sg.tensors[t].data is None and sg.tensors[t].dtype in _FLOAT_DTYPES
               for t in tensors)


def _precision_note(model: Model) -> ModelNote | None:
    """float32 or hybrid, when most operators compute on float feature maps.

    A few float operators in an int8 model (one the converter could not quantise, a
    float input's QUANTIZE) make no precision note: the CPU-operator note names them.
    """
    ops = [(sg, op) for sg in model.subgraphs for op in sg.operators]
    compute = [(sg, op) for sg, op in ops if op.opcode not in _BOUNDARY_OPS]
    float_ops = [(sg, op) for sg, op in compute
                 if _reads_or_writes_float(sg, (*op.inputs, *op.outputs))]
    if not compute or len(float_ops) <= MOSTLY_CPU_SHARE * len(compute):
        return None
    share = f"{len(float_ops)} of {len(compute)} operators compute in float"
    if any(_constant_of(sg, op, ("int8", "int4")) for sg, op in float_ops):
        return ModelNote("hybrid", f"hybrid model: int8 weights with float activations "
                                   f"({share}); the Ethos-U runs only fully int8/int16 "
                                   f"operators, so quantise the activations too "
                                   f"(full-integer post-training quantisation)")
    half = any(_constant_of(sg, op, ("float16",)) for sg, op in ops
               if op.opcode == "DEQUANTIZE")
    weights = " with float16 weights" if half else ""
    return ModelNote("float32", f"float model{weights} ({share}): the Ethos-U runs only "
                                f"int8/int16 operators, so Vela leaves these on the CPU; "
                                f"quantise it to int8 to run it on the NPU")


def _constant_of(sg: Subgraph, op: Operator, dtypes: tuple[str, ...]) -> bool:
    """True when ``op`` reads a constant tensor of one of ``dtypes``."""
    return any(t >= 0 and sg.tensors[t].data is not None and sg.tensors[t].dtype in dtypes
               for t in op.inputs)


def _custom_note(model: Model) -> ModelNote | None:
    names = sorted({op.name for sg in model.subgraphs for op in sg.operators
                    if op.opcode == "CUSTOM"})
    if not names:
        return None
    return ModelNote("custom-ops", f"custom operators ({', '.join(names)}) run on the CPU: "
                                   f"no NPU or interpreter kernel is known for them")


def _placement_note(p: CpuPlacement) -> ModelNote | None:
    if p.rejected is not None:
        return ModelNote("vela-rejects", f"Vela refuses this model: {p.rejected}", p.target)
    if not p.operators:
        return None
    kinds = sorted({op.opcode for op in p.operators})
    shown = ", ".join(kinds[:6]) + (", ..." if len(kinds) > 6 else "")
    counts = (f"Vela leaves {p.cpu_ops} of {p.total_ops} operators "
              f"({p.cpu_mac_share:.0%} of the MACs) on the CPU ({shown})")
    if p.mostly_cpu:
        return ModelNote("mostly-cpu", f"{counts}: the model runs mostly on the CPU, and "
                                       f"an NPU latency would not describe it", p.target)
    return ModelNote("cpu-ops", f"{counts}; the NPU figures leave their time out", p.target)


def model_notes(model: Model | Source, targets: Iterable[str] = (), *,
                placements: Iterable[CpuPlacement] = ()) -> list[ModelNote]:
    """Notes that qualify a prediction: precision, custom operators, CPU fallback per target.

    Args:
        model: our IR, or a path or the bytes of a TFLite model.
        targets: the targets predicted for; those that are not Ethos-U get no CPU notes.
        placements: placements of ``model`` already computed (the prediction pipeline has
            them); their targets are not placed again.

    Raises:
        ModelFileError: ``model`` is a path or bytes that are not a valid TFLite model.
        UnknownTargetError: a target name is not registered.
    """
    model = _model(model)
    notes = [n for n in (_precision_note(model), _custom_note(model)) if n is not None]
    known = {p.target: p for p in placements}
    vela_targets = [t for t in targets if t not in known and _accelerator(t) is not None]
    placed = cpu_placements(model, vela_targets).values() if vela_targets else ()
    for placement in [*known.values(), *placed]:
        note = _placement_note(placement)
        if note is not None:
            notes.append(note)
    return notes
