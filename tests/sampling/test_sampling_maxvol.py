"""MaxVol active sets, grades and greedy selection on synthetic rows (pure numpy, fast)."""

import io

import numpy as np
import pytest

from selection import maxvol as mv


@pytest.fixture
def training_rows() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.normal(size=(400, 12)) * np.logspace(-3, 3, 12)  # columns of very different scales


def test_every_training_row_has_gamma_at_most_tolerance(training_rows):
    active = mv.build_active_set(training_rows, tolerance=1.001)
    gammas = mv.grades(active, training_rows)
    assert gammas.max() <= 1.001
    # members grade exactly 1 (they are unit vectors in the active-set coordinates)
    np.testing.assert_allclose(gammas[active.indices], 1.0, rtol=1e-9)
    np.testing.assert_array_equal(active.rows, training_rows[active.indices])
    assert list(active.labels) == [f"train:{i}" for i in active.indices]


def test_grades_are_invariant_to_column_scaling_and_chunking(training_rows):
    active = mv.build_active_set(training_rows)
    queries = np.random.default_rng(1).normal(size=(1000, 12)) * np.logspace(-3, 3, 12) * 3
    reference = np.max(np.abs(queries @ np.linalg.inv(active.rows)), axis=1)
    np.testing.assert_allclose(mv.grades(active, queries), reference, rtol=1e-9)
    np.testing.assert_allclose(mv.grades(active, queries, chunk=7), reference, rtol=1e-9)


def test_same_active_set_as_motep_maxvol(training_rows):
    import motep.grade.maxvol as motep_maxvol
    ours = mv.build_active_set(training_rows, tolerance=1.001)
    theirs = motep_maxvol.MaxVol(threshold=1e-3).run(training_rows)
    np.testing.assert_array_equal(ours.indices, theirs.indices)


def test_rank_deficiency_is_reported_with_rank_and_fix():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(200, 10))
    rows[:, 9] = rows[:, 0] + 2.0 * rows[:, 1]  # one dependent column: rank 9
    with pytest.raises(mv.RankDeficientError, match=r"rank 9 but the basis has m = 10") as info:
        mv.build_active_set(rows)
    assert "more diverse training" in str(info.value) and "smaller basis" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(mv.RankDeficientError, match="fewer rows"):
        mv.build_active_set(rows[:5, :])
    rows[:, 3] = 0.0
    with pytest.raises(mv.RankDeficientError, match="columns 3"):
        mv.build_active_set(rows)


def test_select_add_grows_the_determinant_and_covers_the_candidates(training_rows):
    active = mv.build_active_set(training_rows)
    rng = np.random.default_rng(3)
    candidates = rng.normal(size=(300, 12)) * np.logspace(-3, 3, 12) * 4.0
    before = mv.grades(active, candidates)
    assert (before > 2.0).sum() > 5

    determinants = [active.log_abs_det]
    current = active
    picked = []
    for _ in range(4):  # one at a time: |det| grows at every step
        current, selected = mv.select_add(current, candidates, gamma_select=2.0, max_new=len(picked) + 1)
        determinants.append(current.log_abs_det)
        picked = selected
    assert np.all(np.diff(determinants) > np.log(2.0) - 1e-9)

    final, selected = mv.select_add(active, candidates, gamma_select=2.0)
    assert final.log_abs_det > active.log_abs_det
    assert mv.grades(final, candidates).max() <= 2.0 + 1e-9
    assert set(selected) <= set(np.flatnonzero(before > 1.0))
    assert all(label.startswith("added:") for label in final.labels[np.isin(final.indices, selected)])


def test_select_add_picks_diverse_rows_not_duplicates(training_rows):
    active = mv.build_active_set(training_rows)
    rng = np.random.default_rng(11)
    extreme = training_rows[0] * 50.0 + training_rows[1] * 40.0  # gamma ~ 50-90
    other = rng.normal(size=12) * np.logspace(-3, 3, 12) * 6.0
    candidates = np.vstack([extreme] * 5 + [other] + [extreme * 1.0000001] * 3)
    gammas = mv.grades(active, candidates)
    assert gammas[:5].min() > gammas[5] > 2.0  # the duplicates are the "highest"
    new, selected = mv.select_add(active, candidates, gamma_select=2.0, max_new=2)
    duplicates = set(range(5)) | set(range(6, 9))
    assert len(set(selected.tolist()) & duplicates) == 1
    assert 5 in selected.tolist()
    assert mv.grades(new, candidates).max() <= 2.0


def test_select_add_respects_max_new_and_threshold(training_rows):
    active = mv.build_active_set(training_rows)
    candidates = np.random.default_rng(5).normal(size=(200, 12)) * np.logspace(-3, 3, 12) * 5.0
    new, selected = mv.select_add(active, candidates, gamma_select=2.0, max_new=3)
    assert len(selected) == 3
    assert np.isin(selected, new.indices).all()
    inside = training_rows[:50] * 0.5  # interpolation: gamma <= 1
    same, none = mv.select_add(active, inside, gamma_select=2.0)
    assert none.size == 0
    np.testing.assert_array_equal(same.rows, active.rows)


def test_save_and_load_round_trip(training_rows):
    active = mv.build_active_set(training_rows, labels=[f"snap-1:atom-{i}" for i in range(len(training_rows))])
    buffer = io.BytesIO()
    mv.save(active, buffer)
    buffer.seek(0)
    loaded = mv.load(buffer)
    np.testing.assert_array_equal(loaded.rows, active.rows)
    np.testing.assert_array_equal(loaded.indices, active.indices)
    assert list(loaded.labels) == [f"snap-1:atom-{i}" for i in active.indices]
    assert loaded.tolerance == pytest.approx(1.001)
    np.testing.assert_allclose(mv.grades(loaded, training_rows), mv.grades(active, training_rows), rtol=1e-12)
    bad = io.BytesIO()
    np.savez(bad, something=np.zeros(3))
    bad.seek(0)
    with pytest.raises(ValueError, match="not an active-set file"):
        mv.load(bad)


def test_dimension_mismatch_is_explained(training_rows):
    active = mv.build_active_set(training_rows)
    with pytest.raises(ValueError, match="12"):
        mv.grades(active, np.zeros((3, 5)))


def test_log_histogram_and_merge():
    gammas = np.array([0.001, 0.5, 0.95, 1.2, 3.0, 30.0, 1e6])
    histogram = mv.log_histogram(gammas)
    assert sum(histogram["counts"]) == histogram["n"] == 7
    assert histogram["below"] == 1 and histogram["above"] == 1
    assert histogram["gamma_max"] == pytest.approx(1e6)
    edges = np.array(histogram["edges"])
    assert np.allclose(np.diff(np.log10(edges)), 0.1)
    merged = mv.merge_histograms([histogram, mv.log_histogram([2.0, 2.5])])
    assert merged["n"] == 9 and sum(merged["counts"]) == 9 and merged["gamma_max"] == pytest.approx(1e6)
    with pytest.raises(ValueError, match="different edges"):
        mv.merge_histograms([histogram, mv.log_histogram([1.0], bins=5)])
