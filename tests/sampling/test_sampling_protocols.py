import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from sampling.builders import add_vacancies, bulk_crystal
from sampling.protocols import Snapshot, anneal, anneal_snapshot_count, parameters
from schemas.sampling import AnnealProtocol

A0 = 3.165  # W Zhou, rounded: CNA cutoff and starting structures
A0_RELAXED = 3.164849  # zero pressure (relax_lattice_constant)


def run_anneal(atoms, potential, **overrides):
    options = dict(element="W", lattice="bcc", lattice_constant=A0, temperatures=[300.0],
                   steps_per_temperature=300, snapshot_every=100)
    options.update(overrides)
    context = {key: options.pop(key) for key in ("element", "lattice", "lattice_constant", "threads") if key in options}
    return list(anneal(atoms, potential, parameters("anneal", **options), **context))


def count(temperatures, steps_per_temperature, snapshot_every):
    return anneal_snapshot_count(AnnealProtocol(temperatures=temperatures, steps_per_temperature=steps_per_temperature,
                                                snapshot_every=snapshot_every))


def test_perfect_bcc_stays_bcc_at_300k(w_zhou):
    atoms = bulk_crystal("W", "bcc", A0_RELAXED, (6, 6, 6))
    snapshots = run_anneal(atoms, w_zhou, temperatures=[300.0], steps_per_temperature=600, snapshot_every=100)
    assert len(snapshots) == count([300.0], 600, 100) == 7
    assert [s.step for s in snapshots] == [0, 100, 200, 300, 400, 500, 600]
    for snapshot in snapshots:
        assert isinstance(snapshot, Snapshot)
        assert snapshot.counts["bcc"] / len(atoms) > 0.99
        structure_type = snapshot.atoms.arrays["structure_type"]
        assert structure_type.shape == (len(atoms),) and len(snapshot.defect_indices) == np.sum(structure_type != 3)
        info = snapshot.atoms.info
        assert info["protocol"] == "anneal" and info["step"] == snapshot.step
        assert info["stress"].shape == (6,)
        assert snapshot.time_ps == pytest.approx(snapshot.step * 1e-3)
    first, last = snapshots[0].atoms.info, snapshots[-1].atoms.info
    assert first["temperature"] == 0.0 and first["energy"] / len(atoms) == pytest.approx(-8.760, abs=1e-3)
    assert np.abs(first["stress"]).max() < 1e-6  # eV/A^3: minimised perfect crystal at its a0
    assert 200.0 < last["temperature"] < 400.0
    # equipartition: half of 3 kT goes to potential energy
    assert last["energy"] / len(atoms) + 8.760 == pytest.approx(1.5 * 8.617e-5 * 300.0, rel=0.35)


def test_vacancy_defect_atoms_are_its_14_neighbours(w_zhou):
    perfect = bulk_crystal("W", "bcc", A0, (5, 5, 5))
    atoms = add_vacancies(perfect, 1, seed=11)
    # the removed site: the only perfect-lattice position missing from atoms
    distances = np.linalg.norm(perfect.positions[:, None, :] - atoms.positions[None, :, :], axis=2).min(axis=1)
    vacancy = int(np.argmax(distances))
    i, j = neighbor_list("ij", perfect, 0.5 * (1 + 2**0.5) * A0)
    neighbours = np.sort(j[i == vacancy])
    neighbours = np.where(neighbours > vacancy, neighbours - 1, neighbours)  # indices in atoms
    assert len(neighbours) == 14  # 8 first + 6 second neighbours

    minimised = next(anneal(atoms, w_zhou, AnnealProtocol(temperatures=[300.0], steps_per_temperature=10,
                                                          snapshot_every=10),
                            element="W", lattice="bcc", lattice_constant=A0))
    assert np.array_equal(minimised.defect_indices, neighbours)
    # 13 neighbours instead of 14: LAMMPS cna/atom calls them 5 ("other"), not 0 ("unknown")
    assert minimised.counts == {"unknown": 0, "fcc": 0, "hcp": 0, "bcc": 235, "ico": 0, "other": 14}
    # vacancy formation energy of EAM-Zhou W: E(N-1) - (N-1)/N E(N), about 3.6 eV in the literature
    formation = minimised.atoms.info["energy"] + (len(atoms)) * 8.759994
    assert formation == pytest.approx(3.577, abs=0.01)


def test_same_seed_same_snapshots_and_other_seed_differs(w_zhou):
    atoms = add_vacancies(bulk_crystal("W", "bcc", A0, (4, 4, 4)), 1, seed=1)
    kwargs = dict(temperatures=[300.0, 600.0], steps_per_temperature=100, snapshot_every=50)
    one = run_anneal(atoms, w_zhou, seed=7, **kwargs)
    two = run_anneal(atoms, w_zhou, seed=7, **kwargs)
    other = run_anneal(atoms, w_zhou, seed=8, **kwargs)
    assert len(one) == len(two) == count([300.0, 600.0], 100, 50) == 5
    for a, b in zip(one, two):
        assert np.array_equal(a.atoms.positions, b.atoms.positions)
        assert a.atoms.info["energy"] == b.atoms.info["energy"]
    assert np.abs(one[-1].atoms.positions - other[-1].atoms.positions).max() > 1e-3


def test_same_seed_reproducible_with_two_threads(w_zhou):
    atoms = bulk_crystal("W", "bcc", A0, (4, 4, 4))
    one = run_anneal(atoms, w_zhou, threads=2, steps_per_temperature=100)
    two = run_anneal(atoms, w_zhou, threads=2, steps_per_temperature=100)
    assert np.array_equal(one[-1].atoms.positions, two[-1].atoms.positions)


def test_snapshot_count_with_uneven_stages(w_zhou):
    assert count([300.0, 500.0], 150, 100) == 4
    snapshots = run_anneal(bulk_crystal("W", "bcc", A0, (3, 3, 3)), w_zhou,
                           temperatures=[300.0, 500.0], steps_per_temperature=150, snapshot_every=100)
    assert [s.step for s in snapshots] == [0, 100, 200, 300]
    assert [s.index for s in snapshots] == [0, 1, 2, 3]


def test_npt_relaxes_box_towards_zero_pressure(w_zhou):
    atoms = bulk_crystal("W", "bcc", 3.18, (4, 4, 4))  # too large: the minimisation shrinks the box
    snapshots = run_anneal(atoms, w_zhou, ensemble="npt", steps_per_temperature=200)
    assert snapshots[0].atoms.cell[0, 0] == pytest.approx(4 * A0_RELAXED, abs=0.002)
    assert np.abs(snapshots[0].atoms.info["stress"]).max() < 1e-4
    assert all(s.counts["bcc"] == len(atoms) for s in snapshots)


def test_closing_early_frees_lammps(w_zhou):
    generator = anneal(bulk_crystal("W", "bcc", A0, (3, 3, 3)), w_zhou,
                       AnnealProtocol(temperatures=[300.0], steps_per_temperature=1000, snapshot_every=10),
                       element="W", lattice="bcc", lattice_constant=A0)
    next(generator)
    next(generator)
    system = generator.gi_frame.f_locals["system"]
    assert system.lmp is not None
    generator.close()
    assert system.lmp is None


@pytest.mark.parametrize(
    "overrides, name",
    [
        (dict(temperatures=[300.0, 0.0]), "temperatures"),
        (dict(temperatures=[]), "temperatures"),
        (dict(steps_per_temperature=0), "steps_per_temperature"),
        (dict(snapshot_every=-5), "snapshot_every"),
        (dict(snapshot_every=2.5), "snapshot_every"),
        (dict(ensemble="nve"), "ensemble"),
        (dict(element="Fe"), "Fe"),
    ],
)
def test_bad_parameters_are_named(w_zhou, overrides, name):
    with pytest.raises(ValueError, match=name):
        run_anneal(bulk_crystal("W", "bcc", A0, (2, 2, 2)), w_zhou, **overrides)


def test_dislocation_cylinder_outer_shell_is_held_and_never_a_candidate(w_zhou):
    """The cylinder's fixed shell is the elastic far field: it neither moves nor counts as a defect."""
    from sampling.builders import screw_dislocation

    cylinder = screw_dislocation("W", "bcc", A0, 522.5, 204.2, 160.8, radius=22.0, fixed_width=8.0, line_repeats=2)
    held = np.flatnonzero(cylinder.arrays["fixed"])
    assert 0 < len(held) < len(cylinder)
    snapshots = run_anneal(cylinder, w_zhou, steps_per_temperature=200, snapshot_every=100)
    start = cylinder.positions[held]
    for snapshot in snapshots:
        moved = snapshot.atoms.positions[held] - start
        assert np.abs(moved).max() < 1e-9  # minimisation and MD leave the shell where it was built
        assert not np.isin(snapshot.defect_indices, held).any()
    # the free surface lies in the held shell, so the candidates are the core's: near the line
    last = snapshots[-1]
    core = np.asarray(cylinder.info["core_position"])[:2]
    radial = np.linalg.norm(last.atoms.positions[last.defect_indices, :2] - core, axis=1)
    assert len(radial) > 0 and np.median(radial) < 6.0
