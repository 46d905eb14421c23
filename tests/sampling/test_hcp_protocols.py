"""The loading protocols on hcp Mg (issue #18): the perfect crystal gives no candidates, a vacancy exactly its 12
nearest neighbours, and the tension along c deforms the crystal at zero lateral stress."""

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from sampling.builders import add_vacancies, bulk_crystal
from sampling.defects import cna_cutoff
from sampling.protocols import execute, parameters, program_for


def _run(atoms, potential, a, kind, **fields):
    program = program_for(parameters(kind, **fields), atoms, potential, element="Mg", lattice="hcp",
                          lattice_constant=a)
    return list(execute(program, potential))


def test_perfect_hcp_has_no_candidates_and_a_vacancy_its_12_neighbours(mg, mg_relaxed):
    a, ratio, energy = mg_relaxed
    perfect = bulk_crystal("Mg", "hcp", a, (5, 3, 3), c_over_a=ratio)
    (minimised,) = _run(perfect, mg, a, "minimize")
    assert len(minimised.defect_indices) == 0 and minimised.counts["hcp"] == len(perfect) == 180
    assert minimised.atoms.info["energy"] / len(perfect) == pytest.approx(energy, abs=1e-6)

    atoms = add_vacancies(perfect, 1, seed=5)
    distances = np.linalg.norm(perfect.positions[:, None, :] - atoms.positions[None, :, :], axis=2).min(axis=1)
    vacancy = int(np.argmax(distances))
    i, j = neighbor_list("ij", perfect, cna_cutoff("hcp", a))
    neighbours = np.sort(j[i == vacancy])
    neighbours = np.where(neighbours > vacancy, neighbours - 1, neighbours)
    assert len(neighbours) == 12
    snapshots = _run(atoms, mg, a, "anneal", temperatures=[300.0], steps_per_temperature=200, snapshot_every=100)
    assert np.array_equal(snapshots[0].defect_indices, neighbours)  # the minimised start
    for snapshot in snapshots[1:]:  # at 300 K too: thermal motion is not a defect
        assert set(snapshot.defect_indices.tolist()) == set(neighbours.tolist())


def test_tension_along_c_stretches_the_hcp_box(mg, mg_relaxed):
    a, ratio, _ = mg_relaxed
    atoms = bulk_crystal("Mg", "hcp", a, (5, 3, 3), c_over_a=ratio)
    snapshots = _run(atoms, mg, a, "uniaxial", axis="z", strain_rate=1e9, max_strain=0.02, snapshot_every=10000,
                     temperature=100.0)
    first, last = snapshots[0].atoms, snapshots[-1].atoms
    assert (first.info["strain"], last.info["strain"]) == (0.0, pytest.approx(0.02))
    assert last.cell.lengths()[2] / first.cell.lengths()[2] == pytest.approx(1.02, abs=1e-6)
    assert last.info["stress"][2] > 5e-4  # eV/A^3 (ASE sign: tensile stress positive), about 0.1 GPa and more
    assert abs(last.info["stress"][0]) < last.info["stress"][2] / 3  # the lateral axes relax (npt)
    assert snapshots[-1].counts["hcp"] > 0.95 * len(atoms)
