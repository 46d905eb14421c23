import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.eam import EAM
from ase.neighborlist import neighbor_list

from md.engine import (
    LammpsError,
    LammpsSystem,
    ensure_mpi_loaded,
    lammps_version,
    open_lammps,
)
from md.potentials import PotentialError
from sampling.builders import add_vacancies, bulk_crystal


def test_mpi_loading_is_idempotent_and_version_is_known():
    ensure_mpi_loaded()
    ensure_mpi_loaded()
    assert "2025" in lammps_version()
    lmp = open_lammps(threads=2)
    try:
        assert lmp.has_package("OPENMP")
    finally:
        lmp.close()


def test_orthogonal_cell_round_trips_exactly_and_unwraps_atoms_outside(w_zhou):
    atoms = bulk_crystal("W", "bcc", 3.165, (3, 3, 3))
    atoms.rattle(0.05, seed=1)
    atoms.positions[0] += 2 * atoms.cell[0]  # outside the cell: LAMMPS wraps it, we undo that
    atoms.positions[1] -= atoms.cell[2]
    with LammpsSystem(atoms, w_zhou) as system:
        back = system.get_atoms()
        assert system.natoms == len(atoms)
    assert np.array_equal(back.cell[:], atoms.cell[:])
    assert np.abs(back.positions - atoms.positions).max() < 1e-12
    assert back.get_chemical_symbols() == atoms.get_chemical_symbols() and back.pbc.all()


def test_triclinic_rotated_cell_energy_stress_and_frame_match_ase_eam(w_zhou):
    # A sheared primitive cell in a general orientation: LAMMPS needs a rotated frame.
    atoms = bulk("W", "bcc", a=3.18).repeat((4, 4, 4))
    atoms.set_cell(atoms.cell[:] @ np.array([[1.0, 0.01, 0.0], [0.0, 0.99, 0.02], [0.0, 0.0, 1.0]]), scale_atoms=True)
    atoms.rattle(0.03, seed=2)
    with LammpsSystem(atoms, w_zhou) as system:
        assert system.triclinic
        energy, stress, back = system.potential_energy(), system.stress(), system.get_atoms()
    reference = atoms.copy()
    reference.calc = EAM(potential=str(w_zhou.files[0]))
    assert energy == pytest.approx(reference.get_potential_energy(), abs=1e-6)
    assert np.abs(stress - reference.get_stress()).max() < 1e-6  # eV/A^3, ASE sign and frame
    assert np.abs(back.positions - atoms.positions).max() < 1e-9
    assert np.abs(back.cell[:] - atoms.cell[:]).max() < 1e-9


def test_compressed_crystal_has_negative_ase_stress(w_zhou):
    with LammpsSystem(bulk_crystal("W", "bcc", 3.10, (3, 3, 3)), w_zhou) as system:
        stress = system.stress()
    assert np.all(stress[:3] < -0.05) and np.allclose(stress[3:], 0.0, atol=1e-8)  # ~ -35 GPa


def test_per_atom_values_follow_input_order_after_spatial_sorting(w_zhou):
    perfect = bulk_crystal("W", "bcc", 3.165, (5, 5, 5))
    atoms = add_vacancies(perfect, 1, seed=7)
    atoms.positions = atoms.positions[::-1].copy()  # input order unlike any spatial order
    with LammpsSystem(atoms, w_zhou) as system:
        # re-neighbour (and so sort atoms spatially) on every step
        system.commands(["atom_modify sort 1 1.6", "neigh_modify every 1 delay 0 check no",
                         "fix integrate all nve", "compute pe all pe/atom"])
        system.run(2)
        lammps_ids = system.lmp.numpy.extract_atom("id")[: system.natoms]
        pe = system.per_atom_compute("pe")
        moved = system.positions()
    assert not np.all(np.diff(lammps_ids) > 0)  # LAMMPS order is not the input order
    assert np.abs(moved - atoms.positions).max() < 0.01
    i, _ = neighbor_list("ij", atoms, 3.82)
    near_vacancy = np.bincount(i, minlength=len(atoms)) == 13  # its 8 first + 6 second neighbours
    assert near_vacancy.sum() == 14
    assert pe[near_vacancy].min() > pe[~near_vacancy].max() + 0.2  # ~ -8.49 vs ~ -8.76 eV


def test_bad_input_gives_clear_errors(w_zhou):
    with pytest.raises(PotentialError, match="not Fe"):
        LammpsSystem(bulk_crystal("Fe", "bcc", 2.86, (2, 2, 2)), w_zhou)
    with LammpsSystem(bulk_crystal("W", "bcc", 3.165, (2, 2, 2)), w_zhou) as system:
        with pytest.raises(LammpsError, match="fix broken all nonsense"):
            system.command("fix broken all nonsense")
        with pytest.raises(LammpsError, match="define it first"):
            system.per_atom_compute("missing")
    assert system.lmp is None
    cluster = bulk_crystal("W", "bcc", 3.165, (2, 2, 2))
    cluster.set_cell(np.zeros((3, 3)))
    cluster.pbc = False
    with pytest.raises(ValueError, match="vacuum"):
        LammpsSystem(cluster, w_zhou)


def test_cluster_with_free_boundaries_keeps_its_frame(w_zhou):
    cluster = bulk_crystal("W", "bcc", 3.165, (2, 2, 2))
    cluster.pbc = False
    cluster.center(vacuum=6.0)
    with LammpsSystem(cluster, w_zhou) as system:
        system.command("minimize 0 1e-6 1000 10000")
        back = system.get_atoms()
    assert not back.pbc.any() and np.array_equal(back.cell[:], cluster.cell[:])
    assert np.abs(back.get_center_of_mass() - cluster.get_center_of_mass()).max() < 1e-6
    assert np.abs(back.positions - cluster.positions).max() < 0.5
