"""One active set per species (MLIP-3 / pacemaker) with a multi-element SNAP basis: B2 NiAl, random fcc Cu-Ni, W.

gamma keeps its meaning per species: <= 1.001 on every training atom; defects of the ordered alloy
(antisite pair, vacancy) grade above 1; one species gives exactly the single active set of before.
"""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from selection import maxvol as mv
from selection.bases import BasisError, SnapBasis, rows_for
from selection.grading import grade_atoms, training_active_set

A_NIAL = 2.88
TOL = 1.001


def _b2(repeat: int = 3) -> Atoms:
    return bulk("NiAl", "cesiumchloride", a=A_NIAL).repeat((repeat, repeat, repeat))


def _rattled(atoms: Atoms, count: int = 5, sigma: float = 0.02, seed: int = 0) -> list[Atoms]:
    out = []
    for k in range(count):
        image = atoms.copy()
        image.rattle(sigma, seed=seed + k)
        out.append(image)
    return out


def _near(atoms: Atoms, centre: np.ndarray, radius: float) -> np.ndarray:
    vectors = atoms.positions - centre
    fractional = vectors @ np.linalg.inv(atoms.cell[:])
    fractional -= np.round(fractional)
    return np.linalg.norm(fractional @ atoms.cell[:], axis=1) < radius


def _all_gamma(basis, active_set, images) -> dict[str, np.ndarray]:
    by_species: dict[str, list[np.ndarray]] = {}
    for atoms in images:
        _, gamma = grade_atoms(basis, active_set, atoms)
        symbols = np.array(atoms.get_chemical_symbols())
        for name in set(symbols.tolist()):
            by_species.setdefault(name, []).append(gamma[symbols == name])
    return {name: np.concatenate(values) for name, values in by_species.items()}


@pytest.fixture(scope="module")
def nial_basis() -> SnapBasis:
    return SnapBasis(("Ni", "Al"))


@pytest.fixture(scope="module")
def nial_training() -> list[Atoms]:
    return _rattled(_b2(), count=5, sigma=0.02, seed=0)


@pytest.fixture(scope="module")
def nial_sets(nial_basis, nial_training) -> mv.SpeciesActiveSets:
    return training_active_set(nial_basis, nial_training, per_species=True)


# --------------------------------------------------------------------------- the basis


def test_multi_element_snap_rows_depend_on_neighbour_species(nial_basis):
    assert nial_basis.weights == (1.0, 0.5)  # Ni (Z 28) before Al (Z 13)
    assert "sna/atom 4.7 0.99363 6 0.5 0.5 1.0 0.5 rmin0" in nial_basis.compute_command()
    assert SnapBasis(("Cu", "Ni")).weights == (1.0, 0.5)
    assert SnapBasis(("Al", "Ni")).weights == (0.5, 1.0)
    assert SnapBasis("W").weights == (1.0,) and SnapBasis("W").radii == (0.5,)
    assert nial_basis.n_features == 31  # weights, not the chem flag: the row length of one element
    ordered = _b2(2)
    all_ni = ordered.copy()
    all_ni.set_chemical_symbols(["Ni"] * len(all_ni))
    ni = np.array(ordered.get_chemical_symbols()) == "Ni"
    rows_b2, rows_ni = nial_basis.rows(ordered), nial_basis.rows(all_ni)
    # same positions, same central species: the rows of the Ni atoms differ only by their neighbours' species
    difference = np.abs(rows_b2[ni] - rows_ni[ni]).max()
    print(f"max |row(Ni in B2) - row(Ni in all-Ni)| = {difference:.4g}")
    assert difference > 1e-2
    # every site of B2 has 8 nearest neighbours of the other species: Ni and Al rows differ too
    assert np.abs(rows_b2[ni][0] - rows_b2[~ni][0]).max() > 1e-2
    # per-element radii change the pair cutoffs
    wide = SnapBasis(("Ni", "Al"), radii=(0.55, 0.5))
    assert wide.cutoff == pytest.approx(2 * 4.7 * 0.55)
    assert "0.55 0.5 1.0 0.5" in wide.compute_command()
    with pytest.raises(BasisError, match="2 radii for 3 elements"):
        SnapBasis(("Ni", "Al", "Cu"), radii=(0.5, 0.5))


def test_species_the_basis_does_not_know(nial_basis, nial_sets):
    cell = _b2(2)
    cell[0].symbol = "Cu"
    with pytest.raises(BasisError, match=r"set up for Ni, Al; atoms contain Cu"):
        nial_basis.rows(cell)
    with pytest.raises(BasisError, match="atoms contain Al, Ni"):
        SnapBasis("W").rows(_b2(2))
    # a species the basis knows but the training set does not hold: no active set to grade it against
    pure_ni = _b2(3)
    pure_ni.set_chemical_symbols(["Ni"] * len(pure_ni))
    ni_only = training_active_set(nial_basis, _rattled(pure_ni, count=3, sigma=0.05), per_species=True)
    assert ni_only.species == ("Ni",)
    with pytest.raises(mv.UnknownSpeciesError, match="no active set for species Al"):
        grade_atoms(nial_basis, ni_only, _b2(2))
    with pytest.raises(mv.UnknownSpeciesError, match="no active set for species Cu"):
        nial_sets["Cu"]


# --------------------------------------------------------------------------- B2 NiAl


def test_b2_nial_per_species_sets_bound_the_training_set(nial_basis, nial_training, nial_sets):
    assert nial_sets.species == ("Ni", "Al") and nial_sets.size == 31
    for name, aset in nial_sets.sets.items():
        assert aset.size == 31 and np.isfinite(aset.log_abs_det)
        owners = nial_sets.owners[name]
        assert owners.shape == (31, 2)
        # every member is an atom of its own species, and its row is that atom's row
        for (config, atom), row in zip(owners, aset.rows, strict=True):
            assert nial_training[config][atom].symbol == name
            assert np.array_equal(row, nial_basis.rows(nial_training[config])[atom])
    gamma = _all_gamma(nial_basis, nial_sets, nial_training)
    print({name: float(g.max()) for name, g in gamma.items()})
    assert set(gamma) == {"Ni", "Al"}
    assert gamma["Ni"].size == gamma["Al"].size == 5 * 27
    assert gamma["Ni"].max() <= TOL and gamma["Al"].max() <= TOL
    # the perfect ordered crystal lies inside the rattled one's active sets
    perfect = grade_atoms(nial_basis, nial_sets, _b2())[1]
    print(f"perfect B2: gamma_max {perfect.max():.4f}")
    assert perfect.max() <= TOL


def test_b2_antisite_and_vacancy_extrapolate(nial_basis, nial_sets):
    perfect = _b2()
    symbols = np.array(perfect.get_chemical_symbols())
    ni = 0
    aluminium = np.flatnonzero(symbols == "Al")
    distances = perfect.get_distances(ni, aluminium, mic=True)
    al = int(aluminium[np.argmin(distances)])  # a nearest-neighbour Ni-Al pair
    antisite = perfect.copy()
    antisite[ni].symbol, antisite[al].symbol = "Al", "Ni"
    gamma_antisite = grade_atoms(nial_basis, nial_sets, antisite)[1]
    near_antisite = _near(antisite, antisite.positions[ni], 3.0) | _near(antisite, antisite.positions[al], 3.0)

    vacancy = perfect.copy()
    site = vacancy.positions[ni].copy()
    del vacancy[ni]
    gamma_vacancy = grade_atoms(nial_basis, nial_sets, vacancy)[1]
    near_vacancy = _near(vacancy, site, 2.6)  # the 8 Al nearest neighbours (2.49 A) of the Ni vacancy

    print(f"antisite: gamma of the swapped Al/Ni {gamma_antisite[ni]:.4g} / {gamma_antisite[al]:.4g}, "
          f"max near {gamma_antisite[near_antisite].max():.4g}, max far {gamma_antisite[~near_antisite].max():.4g}")
    print(f"vacancy: gamma of the 8 nearest Al {np.round(gamma_vacancy[near_vacancy], 2).tolist()}, "
          f"max over the cell {gamma_vacancy.max():.4g}")
    assert gamma_antisite[ni] > 10 and gamma_antisite[al] > 10
    assert gamma_antisite[near_antisite].max() > 10
    assert near_vacancy.sum() == 8 and np.all(gamma_vacancy[near_vacancy] > 10)
    assert np.argmax(gamma_antisite) in (ni, al)


def test_species_blind_weights_miss_the_antisite(nial_training):
    """Equal weights (the old multi-element default) make the swapped pair look like the ordered crystal."""
    blind = SnapBasis(("Ni", "Al"), weights=(1.0, 1.0))
    sets = training_active_set(blind, nial_training, per_species=True)
    antisite = _b2()
    antisite[0].symbol, antisite[1].symbol = "Al", "Ni"
    gamma = grade_atoms(blind, sets, antisite)[1]
    print(f"equal weights: antisite gamma_max {gamma.max():.4f}")
    assert gamma.max() <= TOL


# --------------------------------------------------------------------------- random fcc Cu-Ni


def test_random_cu_ni_per_species_sets_bound_the_training_set():
    rng = np.random.default_rng(7)
    training = []
    for k in range(4):
        atoms = bulk("Cu", "fcc", a=3.6).repeat((3, 3, 3))
        ni = rng.permutation(len(atoms))[: len(atoms) // 2]
        symbols = np.array(atoms.get_chemical_symbols(), dtype=object)
        symbols[ni] = "Ni"
        atoms.set_chemical_symbols(list(symbols))
        atoms.rattle(0.02, seed=100 + k)
        training.append(atoms)
    basis = SnapBasis(("Cu", "Ni"))
    sets = training_active_set(basis, training, per_species=True)
    assert set(sets.species) == {"Cu", "Ni"}
    gamma = _all_gamma(basis, sets, training)
    print({name: (int(g.size), float(g.max())) for name, g in gamma.items()})
    assert gamma["Cu"].size == 4 * 14 and gamma["Ni"].size == 4 * 13
    assert gamma["Cu"].max() <= TOL and gamma["Ni"].max() <= TOL
    # the species' sets differ: an atom graded against the other species' set extrapolates somewhere
    rows, _ = rows_for(basis, training)
    symbols = np.concatenate([a.get_chemical_symbols() for a in training])
    crossed = mv.grades(sets["Ni"], rows[symbols == "Cu"])
    print(f"Cu rows against the Ni set: gamma_max {crossed.max():.4g}")
    assert crossed.max() > TOL


# --------------------------------------------------------------------------- one species: as before


def test_single_species_is_the_single_active_set():
    perfect = bulk("W", "bcc", a=3.165, cubic=True).repeat(3)
    training = [perfect, *_rattled(perfect, count=4, sigma=0.05, seed=0)]
    basis = SnapBasis("W")
    single = training_active_set(basis, training)
    per_species = training_active_set(basis, training, per_species=True)
    assert isinstance(single, mv.ActiveSet) and per_species.species == ("W",)
    w = per_species["W"]
    assert np.array_equal(w.rows, single.rows) and np.array_equal(w.indices, single.indices)
    assert np.array_equal(w.labels, single.labels) and np.array_equal(w.scale, single.scale)
    assert w.iterations == single.iterations
    # and the same as the bare maxvol functions on the same rows
    rows, _ = rows_for(basis, training)
    bare = mv.build_active_set(rows)
    assert np.array_equal(bare.rows, single.rows)
    vacancy = perfect.copy()
    del vacancy[0]
    _, before = grade_atoms(basis, single, vacancy)
    _, after = grade_atoms(basis, per_species, vacancy)
    print(f"W vacancy gamma_max: single {before.max():.6f}, per species {after.max():.6f}")
    assert np.array_equal(before, after)
    assert np.array_equal(before, mv.grades(bare, basis.rows(vacancy)))
    assert before.max() > 1.0


# --------------------------------------------------------------------------- MTP with two species (motep)


@pytest.fixture(scope="module")
def nial_mtp(tmp_path_factory):
    """A level-8, two-species MTP with motep's random initial coefficients (seeded), not a trained one: the
    moments depend on the radial coefficients, which an untrained template does not have."""
    from motep.io.mlip.mtp import write_mtp

    from mlip.mtp_basis import mtp_template

    data = mtp_template(8, 2)
    data.initialize(np.random.default_rng(0))
    data.scaling = 1.0
    path = tmp_path_factory.mktemp("mtp") / "nial.mtp"
    write_mtp(path, data, legacy=True)
    return path


def test_mtp_two_species_per_species_sets(nial_mtp, nial_training):
    from selection.bases import MtpBasis

    basis = MtpBasis(nial_mtp, species=("Ni", "Al"))
    assert basis.n_features == 11  # 2 species coefficients + 9 scalar moments
    sets = training_active_set(basis, nial_training, per_species=True)
    # each species' rows are zero in the other species' coefficient column: that column is left out of its set
    assert sets.size == 11 and {name: sets[name].size for name in sets.species} == {"Ni": 10, "Al": 10}
    assert sets.columns is not None and 10 not in sets.columns["Ni"].tolist() and 9 not in sets.columns["Al"]
    gamma = _all_gamma(basis, sets, nial_training)
    print("mtp training:", {name: float(g.max()) for name, g in gamma.items()})
    assert gamma["Ni"].max() <= TOL and gamma["Al"].max() <= TOL
    # a Ni row with a value in the Al coefficient column is outside every Ni training row's span
    ni_row = basis.rows(nial_training[0])[:1].copy()
    assert sets.grades(ni_row, ["Ni"])[0] <= TOL
    ni_row[0, 10] = 1.0
    assert sets.grades(ni_row, ["Ni"])[0] == np.inf
    antisite = _b2()
    antisite[0].symbol, antisite[1].symbol = "Al", "Ni"
    swapped = grade_atoms(basis, sets, antisite)[1]
    print(f"mtp antisite: gamma of the swapped Al/Ni {swapped[0]:.4g} / {swapped[1]:.4g}, max {swapped.max():.4g}")
    assert swapped[0] > 1.0 and swapped[1] > 1.0
    with pytest.raises(BasisError, match="atoms contain Cu"):
        basis.rows(bulk("Cu", "fcc", a=3.6))
