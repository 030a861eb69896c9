"""Memory-aware chunks (checked on the CPU with a fake memory budget and fake out-of-memory errors):
a pipeline call is sized from the measured per-sample memory, and an out-of-memory error halves the
call without changing a single vote."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lib.smoothing import Gaussian, Smooth, rows_for_memory


def test_rows_for_memory_fits_the_budget():
    # the case: the full U-Net needs ~3.1 MB per image; 80 GB free, half of it usable
    rows = rows_for_memory(3.1e6, 80e9, fraction=0.5)
    assert rows == int(0.5 * 80e9 // 3.1e6) and rows * 3.1e6 <= 0.5 * 80e9 < (rows + 1) * 3.1e6
    assert rows_for_memory(1e12, 1e9) == 1  # never zero
    for bad in [(0, 1e9), (1e6, 0), (float("nan"), 1e9)]:
        with pytest.raises(ValueError, match="positive"):
            rows_for_memory(*bad)


class TinyMemoryClassifier(nn.Module):
    """A linear model that raises torch.OutOfMemoryError on calls larger than ``limit`` rows."""

    def __init__(self, limit: int):
        super().__init__()
        torch.manual_seed(0)
        self.lin, self.limit, self.calls = nn.Linear(8, 3), limit, []

    def forward(self, x):
        self.calls.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"fake: {x.shape[0]} rows > {self.limit}")
        return self.lin(x)


def test_out_of_memory_halves_the_call_and_keeps_every_vote():
    xs = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    roomy = Smooth(TinyMemoryClassifier(limit=10**9), 3, Gaussian(0.5))
    tight_clf = TinyMemoryClassifier(limit=37)
    tight = Smooth(tight_clf, 3, Gaussian(0.5))
    a = roomy.sample_counts(xs, 500, batch_size=400, generator=torch.Generator().manual_seed(2))
    with pytest.warns(UserWarning, match="out of memory"):
        b = tight.sample_counts(xs, 500, batch_size=400, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)  # same draws, same votes: memory never changes a log
    assert max(c for c in tight_clf.calls[-5:]) <= 37  # later calls fit
    assert tight._max_rows <= 37


def test_out_of_memory_at_one_row_is_raised():
    s = Smooth(TinyMemoryClassifier(limit=0), 3, Gaussian(0.5))
    with pytest.raises(torch.OutOfMemoryError), pytest.warns(UserWarning):
        s._votes_fitting(torch.zeros(4, 8))


def test_memory_batch_size_on_the_cpu_is_the_default():
    s = Smooth(nn.Linear(8, 3), 3, Gaussian(0.5))
    from lib.smoothing import default_batch_size
    assert s.memory_batch_size(torch.zeros(8)) == default_batch_size(8, torch.device("cpu"))
