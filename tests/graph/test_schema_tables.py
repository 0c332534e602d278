"""The written schema tables against the installed schema and its generated object API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from perfsage.graph import read_model, schema, schema_tables

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "models").glob("*.tflite"))


def test_written_tables_are_the_installed_schemas():
    derived = schema.derive_tables()
    written = {name: getattr(schema_tables, name) for name in derived}
    # The written module holds tuples and lists as pprint wrote them; compare as data.
    assert _plain(written) == _plain(derived), "run scripts/write_schema_tables.py"


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _object_api_options(data: bytes) -> list[dict]:
    """Each main-subgraph operator's options as the generated object API decodes them."""
    from perfsage.graph.reader import _named_fields

    fb = schema.fb
    model = fb.ModelT.InitFromPackedBuf(bytearray(data), 0)
    out = []
    for op in model.subgraphs[0].operators:
        fields = {}
        for options in (op.builtinOptions, op.builtinOptions2):
            if options is not None:
                fields.update(_named_fields(options))
        out.append(fields)
    return out


def _space_models() -> list[bytes]:
    from perfsage.spaces import get_space

    found = []
    for name in ("zoo", "random-graphs", "super-resolution", "keyword-spotting"):
        space = get_space(name)
        found += [space.build(space.sample_seeded(0, i)) for i in range(4)]
    return found


@pytest.mark.parametrize("source", ["examples", "spaces"])
def test_options_decode_as_the_object_api(source):
    models = [p.read_bytes() for p in EXAMPLES] if source == "examples" else _space_models()
    checked = 0
    for data in models:
        ours = [op.options for op in read_model(data).main.operators]
        assert ours == _object_api_options(data)
        checked += sum(1 for o in ours if o)
    assert checked > 20


def test_predicting_does_not_import_the_generated_schema():
    code = ("import sys, perfsage; perfsage.predict(sys.argv[1], 'ethos-u55-128'); "
            "print('ai_edge_litert.schema_py_generated' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(EXAMPLES[0])], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "False"
