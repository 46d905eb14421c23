"""A campaign's material (issue #18): constants relaxed with the potential in the occupied crystal, structures
occupied by the species, set B of an alloy or hcp metal, and the per-species active sets the stages keep."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydantic import TypeAdapter

from md.engine import LammpsSystem
from md.potentials import load_potential
from sampling.datasets import alloy_dataset, generated_dataset
from sampling.defects import classify_atoms
from sampling.material import Material, relax_material
from sampling.structures import build_structure
from schemas.sampling import Structure


def _structure(**fields) -> Structure:
    return TypeAdapter(Structure).validate_python(fields)


def _energy_and_stress(atoms, potential) -> tuple[float, np.ndarray]:
    with LammpsSystem(atoms, potential) as system:
        system.commands(["min_style cg", "minimize 0.0 1e-8 1000 10000"])
        return system.potential_energy() / len(atoms), system.stress()


def test_random_cu_ni_is_relaxed_in_its_occupied_crystal(cuni):
    material, energy = relax_material(cuni, ("Cu", "Ni"), "fcc", composition=(0.5, 0.5), a_guess=3.56)
    cu, _ = relax_material(cuni, ("Cu",), "fcc")
    ni, _ = relax_material(cuni, ("Ni",), "fcc")
    # between the elements' own constants (3.615 and 3.520 A for this potential's Cu and Ni), 0.015 A above
    # Vegard's mean (measured: 3.5821 A)
    assert ni.a < material.a < cu.a and material.a == pytest.approx(3.5821, abs=5e-4)
    assert material.composition == (0.5, 0.5) and material.c_over_a is None
    # zero pressure at a: the crystal it was relaxed in (seed 1), positions relaxed, stress below 0.01 GPa
    crystal = material.crystal((4, 4, 4))
    e, stress = _energy_and_stress(crystal, cuni)
    assert e == pytest.approx(energy, abs=1e-6) and np.abs(stress[:3].mean()) < 0.01 / 160.2
    # one element on a cubic lattice: exactly relax_lattice_constant, as before alloys
    from sampling.properties import relax_lattice_constant

    assert cu.a == relax_lattice_constant(cuni, "Cu", "fcc")[0]


def test_b2_constant_and_d0_19_c_over_a_from_the_box_relaxation(nial):
    material, energy = relax_material(nial, ("Ni", "Al"), "bcc", prototype="B2", a_guess=2.9)
    assert material.a == pytest.approx(2.863, abs=0.002)
    crystal = material.crystal((3, 3, 3))
    assert crystal.get_chemical_formula() == "Al27Ni27"
    for scale in (0.995, 1.005):  # the minimum of E(a) on the B2 crystal
        strained = crystal.copy()
        strained.set_cell(crystal.cell[:] * scale, scale_atoms=True)
        assert _energy_and_stress(strained, nial)[0] > energy
    mg = load_potential("Mg_mm.eam.fs")
    hcp, _ = relax_material(mg, ("Mg",), "hcp", a_guess=3.2)
    from sampling.builders import relax_hcp

    assert (hcp.a, hcp.c_over_a) == pytest.approx(relax_hcp(mg, "Mg", 3.2)[:2])


def test_structures_are_occupied_by_seed_and_prototype(cuni, nial):
    random = Material(("Cu", "Ni"), "fcc", 3.582, composition=(0.5, 0.5))
    bulk = _structure(kind="bulk", supercell=[4, 4, 4], seed=5)
    first, again = build_structure(bulk, random, cuni), build_structure(bulk, random, cuni)
    assert first.get_chemical_formula() == "Cu128Ni128"
    assert first.get_chemical_symbols() == again.get_chemical_symbols()  # the structure's seed
    other = build_structure(_structure(kind="bulk", supercell=[4, 4, 4], seed=6), random, cuni)
    assert other.get_chemical_symbols() != first.get_chemical_symbols()
    poly = build_structure(_structure(kind="polycrystal", box=[20, 20, 20], n_grains=2, seed=2), random, cuni)
    assert abs(poly.get_chemical_symbols().count("Cu") - len(poly) / 2) <= 0.5

    b2 = Material(("Ni", "Al"), "bcc", 2.863, prototype="B2")
    slab = build_structure(_structure(kind="slab", normal=[1, 1, 0], thickness=12, lateral_min_lengths=[17, 17]),
                           b2, nial)
    # every Ni has 8 Al nearest neighbours inside the slab, as in B2 (the (110) plane holds both species)
    from ase.neighborlist import neighbor_list

    i, j = neighbor_list("ij", slab, 0.5 * (3**0.5 / 2 * 2.863 + 2.863))
    symbols = np.array(slab.get_chemical_symbols())
    full = np.bincount(i, minlength=len(slab)) == 8
    unlike = np.bincount(i[symbols[i] != symbols[j]], minlength=len(slab))
    assert full.sum() > len(slab) / 3 and np.all(unlike[full] == 8)
    assert abs(slab.get_chemical_symbols().count("Ni") - slab.get_chemical_symbols().count("Al")) == 0
    # a B2 polycrystal: each grain ordered from its seed; inside the grains (bcc by CNA) an atom's 8 nearest
    # neighbours are the other species (measured: 985 of 996, the rest beside a boundary)
    poly = build_structure(_structure(kind="polycrystal", box=[30, 30, 30], n_grains=3, seed=4), b2, nial)
    i, j = neighbor_list("ij", poly, 0.5 * (3**0.5 / 2 * 2.863 + 2.863))
    symbols = np.array(poly.get_chemical_symbols())
    inside = classify_atoms(poly, lattice="bcc") == 3
    unlike = np.bincount(i[symbols[i] != symbols[j]], minlength=len(poly))
    assert np.mean(unlike[inside] == 8) > 0.97
    assert abs(np.mean(symbols == "Ni") - 0.5) < 0.02
    # B2 bicrystals: grain 1 is grain 0 turned about z through a site, both ordered; every atom inside the
    # grains has 8 unlike nearest neighbours (measured: all 1200 of 1440)
    for fields in ({"boundary": "symmetric_tilt", "min_lengths": [17, 17, 40]},
                   {"boundary": "twin", "min_lengths": [17, 17.5, 40]}):
        grains = build_structure(_structure(kind="bicrystal", **fields), b2, nial)
        i, j = neighbor_list("ij", grains, 0.5 * (3**0.5 / 2 * 2.863 + 2.863))
        symbols = np.array(grains.get_chemical_symbols())
        inside = classify_atoms(grains, lattice="bcc") == 3
        unlike = np.bincount(i[symbols[i] != symbols[j]], minlength=len(grains))
        assert inside.sum() > 0.8 * len(grains) and np.all(unlike[inside] == 8)
        assert grains.get_chemical_formula() == "Al720Ni720"
    # 17 A along y rounds up to 7 periods a sqrt(3)/2 of [11-1], each half a B2 translation: the error says how long
    with pytest.raises(ValueError, match=r"not a whole number of B2 periods along y.*longer than 17\.36 A along y"):
        build_structure(_structure(kind="bicrystal", boundary="twin", min_lengths=[17, 17, 40]), b2, nial)
    with pytest.raises(ValueError, match="kind: an ordered B2 alloy is built only as bulk, single_crystal, slab, "
                                         "polycrystal, bicrystal so far, not dislocation"):
        build_structure(_structure(kind="dislocation", radius=15, line_repeats=4), b2, nial)


HCP_KINDS = {
    "bulk": {"kind": "bulk", "supercell": [5, 3, 3]},
    "prismatic": {"kind": "slab", "surface": "prismatic", "thickness": 16, "lateral_min_lengths": [16, 16]},
    "basal": {"kind": "slab", "surface": "basal", "thickness": 16, "lateral_min_lengths": [16, 16]},
    "twin": {"kind": "bicrystal", "boundary": "twin", "min_lengths": [16, 16, 40]},
    "screw": {"kind": "dislocation", "character": "screw", "radius": 15, "line_repeats": 5},
    "polycrystal": {"kind": "polycrystal", "box": [25, 25, 25], "n_grains": 3},
}


def test_hcp_kinds_come_from_the_spec_and_the_others_are_named():
    mg = load_potential("Mg_mm.eam.fs")
    material = Material(("Mg",), "hcp", 3.184, 1.628)
    built = {kind: build_structure(_structure(**fields), material, mg) for kind, fields in HCP_KINDS.items()}
    assert len(built["bulk"]) == 180 and np.all(classify_atoms(built["bulk"], lattice="hcp") == 2)
    assert not built["prismatic"].pbc[2] and not built["basal"].pbc[2] and built["twin"].pbc.all()
    for kind, fields in HCP_KINDS.items():  # the limits' estimate (nothing built): exact for whole periods
        ratio = _structure(**fields).estimated_atoms("hcp", 3.184, 1.628) / len(built[kind])
        assert 0.97 < ratio < 1.1, kind  # measured: 1 (crystals), 0.979 (the cylinder), 1.080 (grains)
    with pytest.raises(ValueError, match="normal: an hcp slab takes surface"):  # never silently ignored
        build_structure(_structure(kind="slab", normal=[1, 1, 0]), material, mg)
    with pytest.raises(ValueError, match="surface: for hcp slabs only"):
        build_structure(_structure(kind="slab", surface="basal"), Material(("W",), "bcc", 3.165),
                        load_potential("W_zhou.eam.alloy"))
    with pytest.raises(ValueError, match="kind: single_crystal is not built for hcp"):
        build_structure(_structure(kind="single_crystal"), material, mg)
    with pytest.raises(ValueError, match="interstitials: self-interstitials are placed in bcc and fcc"):
        build_structure(_structure(kind="bulk", supercell=[5, 3, 3], interstitials=1), material, mg)


def test_set_b_of_an_alloy_and_of_hcp(cuni, nial):
    random = Material(("Cu", "Ni"), "fcc", 3.582, composition=(0.5, 0.5))
    images = alloy_dataset(random, cuni)
    sources = [a.info["source"] for a in images]
    assert sources[:2] == ["basic:bulk", "basic:bulk-occupation-1"]
    assert {"basic:vacancy-Cu", "basic:vacancy-Ni", "basic:antisite", "basic:surface-001", "basic:surface-111"} \
        <= set(sources)
    assert images[0].get_chemical_formula() == "Cu16Ni16" and max(len(a) for a in images) <= 130
    assert images[0].get_chemical_symbols() != images[1].get_chemical_symbols()
    vacancy = images[sources.index("basic:vacancy-Ni")]
    assert vacancy.get_chemical_formula() == "Cu16Ni15"

    b2 = Material(("Ni", "Al"), "bcc", 2.863, prototype="B2")
    ordered = {a.info["source"]: a for a in alloy_dataset(b2, nial)}
    bulk = ordered["basic:bulk"]
    assert bulk.get_chemical_formula() == "Al27Ni27" and "basic:bulk-occupation-1" not in ordered
    antisite = ordered["basic:antisite"]
    assert antisite.get_chemical_formula() == "Al27Ni27"
    assert np.count_nonzero(antisite.numbers != bulk.numbers) == 2  # one Ni-Al pair swapped
    # one element on bcc or fcc keeps the set it always had
    w = Material(("W",), "bcc", 3.165)
    assert [a.info["source"] for a in generated_dataset(w)][:2] == ["basic:bulk", "basic:bulk-hydrostatic-0.020"]


def test_species_active_sets_are_saved_loaded_and_selected_per_species():
    from ase.build import bulk

    from selection import maxvol
    from selection.bases import SnapBasis
    from selection.grading import select_environments, training_active_set

    basis = SnapBasis(("Ni", "Al"))
    b2 = bulk("NiAl", "cesiumchloride", a=2.88).repeat((3, 3, 3))
    training = []
    for k in range(4):
        image = b2.copy()
        image.rattle(0.02, seed=k)
        training.append(image)
    sets = training_active_set(basis, training, per_species=True)
    buffer = io.BytesIO()
    maxvol.save(sets, buffer)
    buffer.seek(0)
    loaded = maxvol.load(buffer)
    assert isinstance(loaded, maxvol.SpeciesActiveSets) and loaded.species == ("Ni", "Al")
    probe = b2.copy()
    probe.rattle(0.1, seed=9)
    rows = basis.rows(probe)
    symbols = probe.get_chemical_symbols()
    assert np.array_equal(loaded.grades(rows, symbols), sets.grades(rows, symbols))
    assert loaded.log_abs_det == pytest.approx(sets.log_abs_det)

    # a strongly rattled crystal: both species extrapolate; max_new 4 is shared in proportion to those above
    gamma = sets.grades(rows, symbols)
    above = {name: int(np.sum((gamma > 1.5) & (np.array(symbols) == name))) for name in ("Ni", "Al")}
    selection = select_environments(sets, [rows], [gamma], gamma_select=1.5, max_new=4, species=[symbols])
    picked = [symbols[atom] for _, atom in selection.chosen]
    assert above == {"Ni": 27, "Al": 27}  # every atom of the 0.1 A rattle is above 1.5
    assert picked == ["Ni", "Ni", "Al", "Al"]  # 4 shared 2 + 2, species in set order
    updated = selection.active_set
    assert isinstance(updated, maxvol.SpeciesActiveSets)
    assert updated.log_abs_det > sets.log_abs_det  # the volume grew
    regraded = updated.grades(rows, symbols)
    assert np.all(regraded[[atom for _, atom in selection.chosen]] <= 1.0 + 1e-6)  # the picked are now members
    with pytest.raises(ValueError, match="species: per-species active sets need the species"):
        select_environments(sets, [rows], [gamma], gamma_select=1.5)
