"""The φ grid's helpers (lmmjax.fitting.phi_profile); the fits it starts are checked against
nlme in tests/results/test_residual_structures.py (BodyWeight reaches nlme's optimum)."""
from lmmjax.fitting.phi_profile import AR1_PHI_GRID, continuation_order


def test_continuation_starts_nearest_the_optimum_and_walks_outwards():
    order = continuation_order(AR1_PHI_GRID, 0.5)  # nearest grid point: 0.55 (index 5)
    assert order[0] == (5, None)
    assert order[1:6] == [(6, 5), (7, 6), (8, 7), (9, 8), (10, 9)]
    assert order[6:] == [(4, 5), (3, 4), (2, 3), (1, 2), (0, 1)]
    assert sorted(i for i, _ in order) == list(range(len(AR1_PHI_GRID)))
    done = set()
    for i, prev in order:  # every start comes from a point already profiled
        assert prev is None or prev in done
        done.add(i)


def test_continuation_from_the_grid_ends():
    assert continuation_order(AR1_PHI_GRID, 0.999)[0] == (10, None)
    assert [i for i, _ in continuation_order(AR1_PHI_GRID, -0.99)] == list(range(len(AR1_PHI_GRID)))
