"""Starting structures of the sampling protocols, built from the spec's structure section."""

from __future__ import annotations

from ase import Atoms

from md.potentials import Potential
from schemas.sampling import (
    BicrystalStructure,
    BulkStructure,
    DislocationLoopStructure,
    DislocationStructure,
    PolycrystalStructure,
    SingleCrystalStructure,
    SlabStructure,
    Structure,
)

from .builders import (
    add_interstitial,
    add_vacancies,
    bicrystal,
    bulk_crystal,
    check_box_for_cutoff,
    dislocation_loop,
    edge_dislocation,
    polycrystal,
    screw_dislocation,
    single_crystal,
    slab,
)
from .hcp import basal_edge_dislocation, basal_screw_dislocation, hcp_twin_bicrystal
from .material import Material
from .properties import elastic_constants


def build_structure(structure: Structure, material: Material, potential: Potential) -> Atoms:
    """The structure of ``material`` with its point defects; periodic edges are checked against the potential
    cutoff. Sites are built for ``material.element`` and then occupied by the material's species (an alloy's
    random occupation drawn from the structure's seed)."""
    lattice = material.lattice
    if lattice == "hcp":
        atoms = _hcp_structure(structure, material)
    else:
        atoms = _cubic_structure(structure, material, potential)
    atoms = material.occupy(atoms, seed=structure.seed, kind=structure.kind)
    if structure.vacancies:
        atoms = add_vacancies(atoms, structure.vacancies, seed=structure.seed)
    for k in range(structure.interstitials):
        if lattice == "hcp":
            raise ValueError("interstitials: self-interstitials are placed in bcc and fcc crystals only; "
                             "set interstitials to 0 for hcp")
        atoms = add_interstitial(atoms, "<111>", seed=structure.seed + k)
    check_box_for_cutoff(atoms, potential)
    return atoms


def _cubic_structure(structure: Structure, material: Material, potential: Potential) -> Atoms:
    element, lattice, a = material.element, material.lattice, material.a
    match structure:
        case BulkStructure():
            return bulk_crystal(element, lattice, a, structure.supercell)
        case SingleCrystalStructure():
            return single_crystal(element, lattice, a, orientation=structure.orientation,
                                  min_lengths=structure.min_lengths)
        case PolycrystalStructure():
            return polycrystal(element, lattice, a, structure.box, structure.n_grains, seed=structure.seed)
        case SlabStructure():
            if structure.surface is not None:
                raise ValueError(f"surface: for hcp slabs only (basal or prismatic); a {lattice} slab takes its "
                                 "surface from normal (Miller indices), so remove surface")
            return slab(element, lattice, a, normal=structure.normal, thickness=structure.thickness,
                        lateral_min_lengths=structure.lateral_min_lengths, vacuum=structure.vacuum)
        case BicrystalStructure():
            return bicrystal(element, lattice, a, kind=structure.boundary, tilt_axis=structure.tilt_axis,
                             boundary_plane=structure.boundary_plane, min_lengths=structure.min_lengths)
        case DislocationStructure():
            # an alloy's constants are those of its occupied crystal (positions relaxed in each strained cell)
            constants = elastic_constants(potential, element, lattice, a,
                                          occupy=lambda crystal: material.occupy(crystal, seed=structure.seed))
            build = screw_dislocation if structure.character == "screw" else edge_dislocation
            return build(element, lattice, a, constants["C11"], constants["C12"], constants["C44"],
                         radius=structure.radius, line_repeats=structure.line_repeats)
        case DislocationLoopStructure():
            return dislocation_loop(bulk_crystal(element, lattice, a, structure.supercell),
                                    burgers=structure.burgers, radius=structure.loop_radius,
                                    nature=structure.nature)
    raise ValueError(f"structure.kind: unknown structure {structure!r}")


def _hcp_structure(structure: Structure, material: Material) -> Atoms:
    """hcp: bulk (orthohexagonal supercell), slab (basal or prismatic surface), polycrystal, the {10-12} twin
    bicrystal, basal screw and edge dislocations (sampling.hcp); other kinds are refused naming the field."""
    element, a, ratio = material.element, material.a, material.c_over_a
    match structure:
        case BulkStructure():
            return bulk_crystal(element, "hcp", a, structure.supercell, c_over_a=ratio)
        case SlabStructure():
            if tuple(structure.normal) != (0, 0, 1):
                raise ValueError("normal: an hcp slab takes surface (basal or prismatic), not Miller indices; "
                                 "remove normal and give surface")
            return slab(element, "hcp", a, surface=structure.surface or "basal", thickness=structure.thickness,
                        lateral_min_lengths=structure.lateral_min_lengths, vacuum=structure.vacuum, c_over_a=ratio)
        case PolycrystalStructure():
            return polycrystal(element, "hcp", a, structure.box, structure.n_grains, seed=structure.seed,
                               c_over_a=ratio)
        case BicrystalStructure() if structure.boundary == "twin":
            if structure.tilt_axis is not None or structure.boundary_plane is not None:
                raise ValueError("tilt_axis, boundary_plane: the hcp twin is the {10-12} twin (axis [2-1-10]); "
                                 "leave both unset for hcp")
            return hcp_twin_bicrystal(element, a, ratio, min_lengths=structure.min_lengths)
        case DislocationStructure():
            build = basal_screw_dislocation if structure.character == "screw" else basal_edge_dislocation
            return build(element, a, ratio, radius=structure.radius, line_repeats=structure.line_repeats)
    name = "bicrystal with boundary symmetric_tilt" if structure.kind == "bicrystal" else structure.kind
    raise ValueError(f"kind: {name} is not built for hcp; for hcp use bulk, slab (surface basal or prismatic), "
                     "polycrystal, bicrystal (boundary twin) or dislocation (basal screw or edge)")
