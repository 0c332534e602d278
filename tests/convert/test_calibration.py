"""Calibration samples: random by default, the user's own in any sensible stacking."""

from __future__ import annotations

import numpy as np
import pytest

from perfsage.convert.calibration import InputSpec, digest_bytes, fixed_shape, load, samples
from perfsage.errors import UsageError

IMAGE = InputSpec("image", (1, 8, 8, 3))


def test_random_samples_are_seeded_and_shaped():
    first, again = samples([IMAGE], count=3, seed=5), samples([IMAGE], count=3, seed=5)
    assert len(first) == 3 and first[0][0].shape == (1, 8, 8, 3)
    assert first[0][0].dtype == np.float32
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0][0], first[1][0])


@pytest.mark.parametrize("stacked", [(5, 8, 8, 3), (5, 1, 8, 8, 3)])
def test_user_samples_stacked_on_a_leading_axis(stacked):
    data = np.arange(np.prod(stacked), dtype=np.float64).reshape(stacked)
    found = samples([IMAGE], [data])
    assert len(found) == 5
    assert found[2][0].shape == (1, 8, 8, 3) and found[2][0].dtype == np.float32
    assert found[2][0].ravel()[0] == data.reshape(5, -1)[2, 0]


def test_one_sample_and_npz_for_several_inputs(tmp_path):
    one = np.ones((1, 8, 8, 3), np.float32)
    assert len(samples([IMAGE], [one])) == 1
    np.savez(tmp_path / "two.npz", np.zeros((4, 3)), np.ones((4, 2)))
    specs = [InputSpec("a", (1, 3)), InputSpec("b", (1, 2))]
    found = samples(specs, load(tmp_path / "two.npz"))
    assert len(found) == 4 and [a.shape for a in found[0]] == [(1, 3), (1, 2)]


def test_mismatches_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match=r"shape \(5, 7\).*'image'.*\(N, 8, 8, 3\)"):
        samples([IMAGE], [np.zeros((5, 7))])
    with pytest.raises(UsageError, match="1 array.*2 input"):
        samples([IMAGE, IMAGE], [np.zeros((1, 8, 8, 3))])
    (tmp_path / "bad.npy").write_text("not numpy")
    with pytest.raises(UsageError, match="bad.npy"):
        load(tmp_path / "bad.npy")


def test_fixed_shape_and_digest():
    assert fixed_shape([None, -1, 0, 7]) == (1, 1, 1, 7)
    assert digest_bytes(None) is None
    assert digest_bytes([np.zeros(2)]) != digest_bytes([np.zeros(3)])
