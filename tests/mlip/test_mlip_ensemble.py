"""Ensemble force uncertainty sigma_F (paper Eq. 1): three level-6 MTPs from different seeds on the same
EAM-labelled W set (real motep training); zero spread for identical models and for perfect bulk (forces
vanish by symmetry for every model), larger at a vacancy and in a rattled cell; dashboard histogram."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.eam import EAM
from ase.calculators.singlepoint import SinglePointCalculator

from md.potentials import load_potential
from mlip.ensemble import (
    DEFAULT_SIGMA_EDGES,
    ensemble_report,
    force_spread,
    predict_forces,
    sigma_histogram,
    train_ensemble,
)
from mlip.train import TrainingInputError
from selection.maxvol import merge_histograms

A = 3.165


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    calculator = EAM(potential=str(load_potential("W_zhou.eam.alloy").files[0]))
    images = []
    for k in range(6):  # rattled, strained 16-atom bcc W cells, EAM-Zhou labels
        atoms = bulk("W", "bcc", a=A, cubic=True).repeat((2, 2, 2))
        atoms.set_cell(atoms.cell * (1 + 0.01 * (k % 3 - 1)), scale_atoms=True)
        atoms.rattle(0.05 + 0.01 * k, seed=k)
        atoms.calc = calculator
        results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
        atoms.calc = SinglePointCalculator(atoms, **results)
        images.append(atoms)
    return train_ensemble(images, 3, tmp_path_factory.mktemp("ensemble"), level=6, max_iter=5)


def _structures():
    perfect = bulk("W", "bcc", a=A, cubic=True).repeat((3, 3, 3))
    vacancy = perfect.copy()
    del vacancy[0]  # vacancy at the origin
    rattled = perfect.copy()
    rattled.rattle(0.1, seed=5)
    return perfect, vacancy, rattled


def test_eq1_on_known_forces():
    # two members whose forces differ by d on one atom: sigma of each component is |d_i| / 2 (ddof 0)
    forces = np.zeros((2, 3, 3))
    forces[1, 1] = [0.3, -0.4, 0.0]
    np.testing.assert_allclose(force_spread(forces), [0.0, 0.25, 0.0], atol=1e-15)
    np.testing.assert_allclose(force_spread(forces, ddof=1), [0.0, 0.25 * np.sqrt(2), 0.0], atol=1e-15)
    rng = np.random.default_rng(0)
    forces = rng.normal(size=(5, 7, 3))
    expected = np.sqrt(np.mean(np.sum((forces - forces.mean(axis=0)) ** 2, axis=2), axis=0))
    np.testing.assert_allclose(force_spread(forces), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        force_spread(np.zeros((3, 4)))


def test_identical_models_have_zero_spread(members):
    _, vacancy, rattled = _structures()
    for atoms in (vacancy, rattled):
        forces = predict_forces([members[0]] * 3, atoms)
        assert np.abs(forces).max() > 1e-3  # real, non-zero forces ...
        assert force_spread(forces).max() == pytest.approx(0.0, abs=1e-12)  # ... identical for every member


def test_spread_is_larger_at_a_vacancy_and_in_a_rattled_cell_than_in_perfect_bulk(members):
    perfect, vacancy, rattled = _structures()
    sigma = {name: force_spread(predict_forces(members, atoms))
             for name, atoms in (("perfect", perfect), ("vacancy", vacancy), ("rattled", rattled))}
    print({name: (float(s.max()), float(s.mean())) for name, s in sigma.items()})
    assert sigma["perfect"].max() < 1e-9  # every member's forces vanish by symmetry
    assert sigma["vacancy"].max() > 1e-4 and sigma["vacancy"].max() > 1e3 * sigma["perfect"].max()
    assert sigma["rattled"].mean() > sigma["vacancy"].mean() > sigma["perfect"].mean()
    # the members disagree most next to the vacancy: first-shell atoms (2.74 A) against the rest
    lengths = vacancy.cell.lengths()
    d = np.linalg.norm(vacancy.positions - np.round(vacancy.positions / lengths) * lengths, axis=1)
    first_shell = d < 2.9
    assert first_shell.sum() == 8
    assert sigma["vacancy"][first_shell].mean() > sigma["vacancy"][~first_shell].mean()


def test_histogram_counts_every_atom_on_log_bins(members):
    perfect, vacancy, rattled = _structures()
    histograms = []
    for atoms in (perfect, vacancy, rattled):
        sigma = force_spread(predict_forces(members, atoms))
        histogram = sigma_histogram(sigma)
        json.dumps(histogram)  # JSON-ready for the dashboard
        assert sum(histogram["counts"]) == histogram["n"] == len(atoms)
        assert histogram["sigma_max"] == pytest.approx(sigma.max())
        assert histogram["units"] == "eV/A"
        ratios = np.diff(np.log10(histogram["edges"]))
        np.testing.assert_allclose(ratios, 0.1)  # 10 bins per decade
        histograms.append(histogram)
    # perfect bulk: zero spread, every atom below the first edge, counted in the first bin
    assert histograms[0]["below"] == len(perfect) and histograms[0]["counts"][0] == len(perfect)
    merged = merge_histograms(histograms)
    assert merged["n"] == sum(sum(h["counts"]) for h in histograms) == len(perfect) + len(vacancy) + len(rattled)
    assert len(DEFAULT_SIGMA_EDGES) == 61


def test_report_counts_only_the_masked_atoms(members):
    perfect, vacancy, _rattled = _structures()
    lengths = vacancy.cell.lengths()
    near = np.linalg.norm(vacancy.positions - np.round(vacancy.positions / lengths) * lengths, axis=1) < 2.9
    report = ensemble_report(members, [perfect, vacancy], masks=[np.ones(len(perfect), bool), near])
    json.dumps(report)
    assert [row["n"] for row in report["per_configuration"]] == [len(perfect), 8]
    assert sum(report["histogram"]["counts"]) == len(perfect) + 8
    full = force_spread(predict_forces(members, vacancy))
    assert report["per_configuration"][1]["sigma_max"] == pytest.approx(full[near].max())
    assert report["histogram"]["sigma_max"] == pytest.approx(full[near].max())
    assert report["k"] == 3


def test_bad_ensemble_input(members):
    with pytest.raises(TrainingInputError, match="k"):
        train_ensemble([], 1, "unused")
    with pytest.raises(TrainingInputError, match="seeds"):
        train_ensemble([], 2, "unused", seeds=[1, 1])
    with pytest.raises(ValueError, match="negative"):
        sigma_histogram([-1.0])
    # members really differ (different seeds): their trained coefficients are not identical
    assert len({m.path.read_text() for m in members}) == 3
