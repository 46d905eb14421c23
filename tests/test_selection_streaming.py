"""Selection over chunks read one at a time (selection.grading.select_streaming): a bounded pool of candidate rows.

Without overflow the result is select_environments' on all chunks at once; with overflow it is still a greedy
D-optimal selection, and the rows held (counted, and measured with tracemalloc) do not grow with the chunks.
"""

import tracemalloc

import numpy as np
import pytest

from selection import maxvol
from selection.grading import Chunk, default_pool_size, select_environments, select_streaming

M = 12
GAMMA_SELECT = 2.0


def _start(seed: int = 0) -> maxvol.ActiveSet:
    return maxvol.build_active_set(np.random.default_rng(seed).normal(0.0, 1.0, (200, M)))


def _rows(k: int, size: int) -> np.ndarray:
    """Chunk k: unit-normal rows, a fifth of them stretched 4x (so above gamma_select against the start set)."""
    rng = np.random.default_rng(1000 + k)
    return rng.normal(0.0, 1.0, (size, M)) * np.where(rng.random((size, 1)) < 0.2, 4.0, 1.0)


def _chunks(start, n: int, size: int = 150, species=None):
    for k in range(n):
        rows = _rows(k, size)
        symbols = None if species is None else np.array(species)[np.arange(size) % len(species)]
        gamma = maxvol.grades(start, rows) if symbols is None else start.grades(rows, symbols)
        yield Chunk(rows, gamma, np.column_stack([np.full(size, k), np.arange(size)]), symbols)


def _in_memory(start, n: int, size: int = 150, species=None):
    chunks = list(_chunks(start, n, size, species))
    return select_environments(start, [c.rows for c in chunks], [c.gamma for c in chunks], gamma_select=GAMMA_SELECT,
                               max_new=8, species=None if species is None else [c.species for c in chunks]), chunks


def _same_set(a, b) -> None:
    sets_a = a.sets if isinstance(a, maxvol.SpeciesActiveSets) else {"": a}
    sets_b = b.sets if isinstance(b, maxvol.SpeciesActiveSets) else {"": b}
    assert list(sets_a) == list(sets_b)
    for name in sets_a:
        assert np.array_equal(sets_a[name].rows, sets_b[name].rows)
        assert list(sets_a[name].labels) == list(sets_b[name].labels)


def test_without_overflow_the_streaming_selection_is_the_in_memory_one():
    start = _start()
    reference, chunks = _in_memory(start, 10)
    selection = select_streaming(start, _chunks(start, 10), gamma_select=GAMMA_SELECT, max_new=8, pool_size=10_000)
    assert selection.reductions == 0 and selection.candidates == sum(int((c.gamma > 2.0).sum()) for c in chunks)
    assert len(reference.chosen) == 8 and selection.chosen == reference.chosen
    _same_set(selection.active_set, reference.active_set)
    assert np.array_equal(selection.rows, np.vstack([chunks[k].rows[a] for k, a in reference.chosen]))


def test_without_overflow_per_species_sets_give_the_in_memory_selection():
    rng = np.random.default_rng(3)
    start = maxvol.build_species_active_sets(rng.normal(0.0, 1.0, (300, M)), ["Ni", "Al"] * 150)
    reference, _ = _in_memory(start, 8, species=["Ni", "Al", "Al"])
    selection = select_streaming(start, _chunks(start, 8, species=["Ni", "Al", "Al"]), gamma_select=GAMMA_SELECT,
                                 max_new=8, pool_size=10_000)
    assert selection.reductions == 0 and len(reference.chosen) == 8 and selection.chosen == reference.chosen
    _same_set(selection.active_set, reference.active_set)


@pytest.mark.parametrize("species", [None, ["Ni", "Al", "Al"]])
def test_with_overflow_the_selection_is_still_greedy_d_optimal_and_the_pool_bounded(species):
    rng = np.random.default_rng(3)
    start = (_start() if species is None else
             maxvol.build_species_active_sets(rng.normal(0.0, 1.0, (300, M)), ["Ni", "Al"] * 150))
    reference, chunks = _in_memory(start, 30, species=species)
    selection = select_streaming(start, _chunks(start, 30, species=species), gamma_select=GAMMA_SELECT, max_new=8,
                                 pool_size=100)
    largest_chunk = max(int((c.gamma > GAMMA_SELECT).sum()) for c in chunks)
    assert selection.reductions > 5 and selection.largest_pool <= 100 + largest_chunk
    assert selection.candidates == sum(int((c.gamma > GAMMA_SELECT).sum()) for c in chunks)
    assert 0 < len(selection.chosen) <= 8 and len(set(selection.chosen)) == len(selection.chosen)
    assert all(chunks[k].gamma[a] > GAMMA_SELECT for k, a in selection.chosen)  # against the start set
    assert np.array_equal(selection.rows, np.vstack([chunks[k].rows[a] for k, a in selection.chosen]))
    # the chosen rows are members of the new active set, which gained volume
    sets = selection.active_set.sets if species else {"": selection.active_set}
    labels = {label for aset in sets.values() for label in aset.labels}
    assert {f"config-{k}:atom-{a}" for k, a in selection.chosen} <= labels
    gain = selection.active_set.log_abs_det - start.log_abs_det
    assert gain > 0.8 * (reference.active_set.log_abs_det - start.log_abs_det)
    if species:  # max_new shared as among all candidates: twice the Al candidates, about twice the Al choices
        assert sorted(selection.species) == sorted(reference.species)


def test_the_default_pool_is_ten_rows_per_possible_pick_and_at_least_2000():
    start = _start()  # m = 12: at most 12 rows can be chosen
    assert default_pool_size(start, None) == default_pool_size(start, 200) == 2000
    big = maxvol.build_active_set(np.random.default_rng(0).normal(0.0, 1.0, (900, 300)))
    assert default_pool_size(big, 250) == 2500 and default_pool_size(big, None) == 3000


def test_memory_does_not_grow_with_the_number_of_chunks():
    """tracemalloc peak of the selection (chunks made on the fly) at 10 and 50 chunks; select_environments on
    lists held in memory grows, which shows the measurement sees the rows."""
    start = _start()

    def peak(run) -> int:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            run()
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()

    def streaming(n):
        return peak(lambda: select_streaming(start, _chunks(start, n, size=600), gamma_select=GAMMA_SELECT,
                                             max_new=8, pool_size=300))

    def in_memory(n):
        return peak(lambda: _in_memory(start, n, size=600))

    small, large = streaming(10), streaming(50)
    assert large < 1.3 * small, (small, large)
    assert in_memory(50) > 3 * in_memory(10)
