"""The fast accessor's field slots agree with the generated TFLite schema."""

from __future__ import annotations

import inspect
import re

import pytest
from ai_edge_litert import schema_py_generated as fb

from perfsage.graph.flatbuf import SLOTS


@pytest.mark.parametrize("table", sorted(SLOTS))
def test_slots_match_generated_schema(table):
    cls = getattr(fb, table)
    for field, slot in SLOTS[table].items():
        source = inspect.getsource(getattr(cls, field))
        assert re.search(rf"Offset\({slot}\)", source), f"{table}.{field} is not at slot {slot}"
