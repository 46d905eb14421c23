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
from .properties import elastic_constants


def build_structure(structure: Structure, element: str, lattice: str, a: float, potential: Potential) -> Atoms:
    """The structure with its point defects; periodic edges are checked against the potential cutoff."""
    match structure:
        case BulkStructure():
            atoms = bulk_crystal(element, lattice, a, structure.supercell)
        case SingleCrystalStructure():
            atoms = single_crystal(element, lattice, a, orientation=structure.orientation,
                                   min_lengths=structure.min_lengths)
        case PolycrystalStructure():
            atoms = polycrystal(element, lattice, a, structure.box, structure.n_grains, seed=structure.seed)
        case SlabStructure():
            atoms = slab(element, lattice, a, normal=structure.normal, thickness=structure.thickness,
                         lateral_min_lengths=structure.lateral_min_lengths, vacuum=structure.vacuum)
        case BicrystalStructure():
            atoms = bicrystal(element, lattice, a, kind=structure.boundary, tilt_axis=structure.tilt_axis,
                              boundary_plane=structure.boundary_plane, min_lengths=structure.min_lengths)
        case DislocationStructure():
            constants = elastic_constants(potential, element, lattice, a)
            build = screw_dislocation if structure.character == "screw" else edge_dislocation
            atoms = build(element, lattice, a, constants["C11"], constants["C12"], constants["C44"],
                          radius=structure.radius, line_repeats=structure.line_repeats)
        case DislocationLoopStructure():
            atoms = dislocation_loop(bulk_crystal(element, lattice, a, structure.supercell),
                                     burgers=structure.burgers, radius=structure.loop_radius,
                                     nature=structure.nature)
        case _:
            raise ValueError(f"structure.kind: unknown structure {structure!r}")
    if structure.vacancies:
        atoms = add_vacancies(atoms, structure.vacancies, seed=structure.seed)
    for k in range(structure.interstitials):
        atoms = add_interstitial(atoms, "<111>", seed=structure.seed + k)
    check_box_for_cutoff(atoms, potential)
    return atoms
