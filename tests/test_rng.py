from collections import Counter

import pytest

from engine import _core


def test_seeded_draws_repeat():
    _core.seed_router_rng(42)
    first = [_core.router_rng_below(101) for _ in range(50)]
    _core.seed_router_rng(42)
    assert [_core.router_rng_below(101) for _ in range(50)] == first


def test_draws_cover_range_uniformly():
    _core.seed_router_rng(7)
    n = 101 * 400
    counts = Counter(_core.router_rng_below(101) for _ in range(n))
    assert set(counts) == set(range(101))
    expected = n / 101
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    # 100 degrees of freedom: p(chi2 > 170) < 1e-5 for a uniform source
    assert chi2 < 170


def test_bound_must_be_positive():
    with pytest.raises(ValueError):
        _core.router_rng_below(0)
