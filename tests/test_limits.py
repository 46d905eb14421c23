"""Limits the server owns, checked by arithmetic before anything is built (schemas.limits)."""

from __future__ import annotations

import copy
import time

import pytest
from support import TINY_SPEC

from schemas import SpecError, parse_spec
from schemas.limits import Limits, effective_budget
from schemas.sampling import MINIMIZE_MAX_ITERATIONS

SERVER = Limits(max_structure_atoms=2_000_000, max_md_atom_steps=10**11, max_snapshots=10_000, max_dft_jobs=1000)


def _errors(data, limits: Limits | None = SERVER) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse_spec(data, limits)
    return {e.field: e.message for e in info.value.errors}


def _one_protocol(protocol: dict, **spec) -> dict:
    data = copy.deepcopy(TINY_SPEC) | spec
    data["sampling"]["protocols"] = [protocol]
    return data


def test_sixteen_million_atoms_are_refused_by_arithmetic_whatever_the_budget():
    bulk = {"kind": "minimize", "structure": {"kind": "bulk", "supercell": [200, 200, 200]}}
    for budget in ({}, {"max_md_atom_steps": 10**18, "max_structure_atoms": 10**12, "max_snapshots": 10**9}):
        start = time.perf_counter()
        errors = _errors(_one_protocol(bulk, budget=budget))
        assert time.perf_counter() - start < 0.1
        message = errors["sampling.protocols.0.structure"]
        assert "about 16,000,000 atoms" in message and "DG_MAX_STRUCTURE_ATOMS = 2,000,000" in message
        assert "34.3 GiB" in message  # 16e6 atoms x 2,300 bytes per atom of a LAMMPS EAM run


def test_structure_atoms_from_the_spec_budget_below_the_servers():
    errors = _errors(copy.deepcopy(TINY_SPEC) | {"budget": {"max_structure_atoms": 200}})
    assert "about 250 atoms, above budget.max_structure_atoms = 200" in errors["sampling.protocols.0.structure"]


def test_the_budget_lowers_a_server_limit_never_raises_it():
    raised = parse_spec(copy.deepcopy(TINY_SPEC) | {"budget": {"max_dft_jobs": 10**6, "max_snapshots": 10**6,
                                                                "max_md_atom_steps": 10**15}})
    budget = effective_budget(raised, SERVER).budget
    assert (budget.max_dft_jobs, budget.max_snapshots, budget.max_md_atom_steps) == (1000, 10_000, 10**11)
    assert budget.max_structure_atoms == 2_000_000
    lowered = parse_spec(copy.deepcopy(TINY_SPEC) | {"budget": {"max_dft_jobs": 3}})
    assert effective_budget(lowered, SERVER).budget.max_dft_jobs == 3

    # the server's limit applies when the budget asks for more, naming the setting
    data = copy.deepcopy(TINY_SPEC) | {"budget": {"max_md_atom_steps": 10**15, "max_snapshots": 10**6}}
    # each protocol alone (3e5 atom-steps) is over the limit: the field is the (first) largest
    message = _errors(data, Limits(max_md_atom_steps=100_000))["sampling.protocols.0"]
    assert "6e+05 atom-steps" in message and "DG_MAX_MD_ATOM_STEPS = 1e+05" in message and "cannot raise" in message
    message = _errors(data, Limits(max_snapshots=5))["sampling.protocols"]
    assert "6 snapshots, above the server's limit DG_MAX_SNAPSHOTS = 5" in message and "cannot raise" in message


def test_a_minimisation_counts_atom_steps():
    # 40^3 bcc cells: 128,000 atoms; no MD step, two minimisations (box, then positions) of at most 1,000 iterations
    minimize = {"kind": "minimize", "structure": {"kind": "bulk", "supercell": [40, 40, 40]}}
    spec = parse_spec(_one_protocol(minimize))
    protocol = spec.sampling.protocols[0]
    assert (protocol.md_steps(), protocol.minimization_steps()) == (0, 2 * MINIMIZE_MAX_ITERATIONS)
    message = _errors(_one_protocol(minimize, budget={"max_md_atom_steps": 10**8}))["budget.max_md_atom_steps"]
    assert "2.56e+08 atom-steps" in message
    assert "128,000 atoms x (0 MD steps + 2,000 minimisation iterations)" in message
    fixed_box = _one_protocol(minimize | {"box_relax": False}, budget={"max_md_atom_steps": 10**8})
    assert "1.28e+08 atom-steps" in _errors(fixed_box)["budget.max_md_atom_steps"]
    # a quasi-static crack: one minimisation per strain increment, after the first
    crack = {"kind": "crack_opening", "increments": 10}
    assert parse_spec(_one_protocol(crack)).sampling.protocols[0].minimization_steps() == 11 * MINIMIZE_MAX_ITERATIONS


def _programs():
    """(protocol spec, LAMMPS program) of every protocol kind on a small W structure."""
    from sampling.builders import bulk_crystal, slab
    from sampling.protocols import program_for
    from workers.stages.common import resolve_potential

    potential = resolve_potential("W_zhou.eam.alloy")
    common = {"element": "W", "lattice": "bcc", "lattice_constant": 3.165}
    bulk = bulk_crystal("W", "bcc", 3.165, (5, 5, 5))
    plate = slab("W", "bcc", 3.165, thickness=20.0, lateral_size=(5, 5))
    cases = [
        ({"kind": "minimize"}, bulk), ({"kind": "minimize", "box_relax": False}, bulk),
        ({"kind": "anneal", "temperatures": [300, 600], "steps_per_temperature": 250, "snapshot_every": 100}, bulk),
        ({"kind": "anneal", "ensemble": "npt", "steps_per_temperature": 300, "snapshot_every": 100}, bulk),
        ({"kind": "uniaxial", "max_strain": 0.001, "snapshot_every": 300, "equilibration_steps": 10}, bulk),
        ({"kind": "uniaxial", "max_strain": 0.001, "snapshot_every": 1000, "equilibration_steps": 0}, bulk),
        ({"kind": "shear", "max_shear": 0.0012, "snapshot_every": 400, "equilibration_steps": 10}, bulk),
        ({"kind": "nanoindent", "structure": {"kind": "slab"}, "depth": 1.0, "snapshot_every": 128}, plate),
        ({"kind": "crack_opening", "crack_length": 8.0, "increments": 3}, bulk),
        ({"kind": "crack_opening", "crack_length": 8.0, "increments": 3, "temperature": 300,
          "steps_per_increment": 10, "equilibration_steps": 5}, bulk),
    ]
    for data, atoms in cases:
        protocol = parse_spec(_one_protocol(data)).sampling.protocols[0]
        yield protocol, program_for(protocol.kind, atoms, potential, **common, **protocol.protocol_params())


def test_minimisation_iterations_and_snapshots_are_those_of_the_lammps_programs():
    from sampling.protocols import _MINIMIZE, SnapshotPoint, snapshot_count

    assert int(_MINIMIZE.split()[3]) == MINIMIZE_MAX_ITERATIONS  # minimize etol ftol maxiter maxeval
    for protocol, program in _programs():
        minimizations = sum(1 for item in program.items if isinstance(item, str) and item.startswith("minimize "))
        runs = sum(int(item.split()[1]) for item in program.items if isinstance(item, str) and item.startswith("run "))
        snapshots = sum(1 for item in program.items if isinstance(item, SnapshotPoint))
        assert protocol.minimization_steps() == minimizations * MINIMIZE_MAX_ITERATIONS, protocol
        assert protocol.md_steps() == runs, protocol
        expected = snapshot_count(protocol.kind, **protocol.protocol_params())
        assert protocol.snapshots() == snapshots == expected, protocol


@pytest.mark.parametrize("structure", [
    {"kind": "bulk", "supercell": [7, 8, 9], "interstitials": 2},
    {"kind": "single_crystal", "orientation": [[1, 1, 1], [1, -1, 0], [1, 1, -2]], "min_lengths": [40, 41, 42]},
    {"kind": "single_crystal", "orientation": [[3, 1, 0], [-1, 3, 0], [0, 0, 1]], "min_lengths": [30, 30, 30]},
    {"kind": "polycrystal", "box": [60, 60, 60], "n_grains": 4},
    {"kind": "slab", "normal": [1, 1, 0], "thickness": 30, "lateral_min_lengths": [50, 50]},
    {"kind": "slab", "normal": [3, 2, 1], "thickness": 30, "lateral_min_lengths": [30, 30]},
    {"kind": "bicrystal"},
    {"kind": "bicrystal", "boundary": "twin", "min_lengths": [30, 30, 60]},
    {"kind": "bicrystal", "tilt_axis": [0, 0, 1], "boundary_plane": [5, 1, 0], "min_lengths": [20, 20, 60]},
    {"kind": "dislocation", "line_repeats": 6},
    {"kind": "dislocation", "character": "edge", "radius": 30, "line_repeats": 3},
    {"kind": "dislocation_loop", "supercell": [16, 16, 16]},
], ids=lambda s: s["kind"])
def test_atom_estimates_match_the_built_structures(structure):
    """The estimate (no structure built) is within 3 % of the structure check_spec builds, above rather than below."""
    from pydantic import TypeAdapter

    from sampling.material import Material
    from sampling.structures import build_structure
    from schemas.sampling import Structure
    from workers.stages.common import resolve_potential

    model = TypeAdapter(Structure).validate_python(structure)
    built = len(build_structure(model, Material(("W",), "bcc", 3.165), resolve_potential("W_zhou.eam.alloy")))
    assert 0.999 < model.estimated_atoms("bcc", 3.165) / built < 1.03


def test_runs_that_would_never_end_are_refused_not_overflowed():
    endless = {"kind": "uniaxial", "strain_rate": 1e-300}
    assert "above budget.max_md_atom_steps" in _errors(_one_protocol(endless))["budget.max_md_atom_steps"]
    slow = {"kind": "nanoindent", "structure": {"kind": "slab"}, "speed": 1e-300}
    assert "budget.max_md_atom_steps" in _errors(_one_protocol(slow))
    many = _one_protocol({"kind": "anneal", "steps_per_temperature": 10**9, "snapshot_every": 1})
    errors = _errors(many)
    assert "1e+09 MD steps" not in errors["budget.max_md_atom_steps"]  # counted with thousands separators
    assert "1,000,000,001 snapshots, above the server's limit DG_MAX_SNAPSHOTS" in errors["sampling.protocols"]


def test_text_with_control_characters_and_non_finite_numbers_name_the_field():
    data = copy.deepcopy(TINY_SPEC) | {"name": "w\x00defects"}
    assert "U+0000" in _errors(data)["name"]
    data = copy.deepcopy(TINY_SPEC) | {"labelling": {"launcher": "slurm",
                                                     "slurm": {"extra_lines": ["#SBATCH -N1\nrm"]}}}
    assert "U+000A" in _errors(data)["labelling.slurm.extra_lines"]
    data = copy.deepcopy(TINY_SPEC)
    data["sampling"]["protocols"][0]["name"] = "bulk\x1b[2J"
    assert "U+001B" in _errors(data)["sampling.protocols.0.name"]
    data["sampling"]["protocols"][0]["name"] = "bulk"
    data["sampling"]["protocols"][0]["temperatures"] = [float("nan")]
    assert "finite" in _errors(data)["sampling.protocols.0.temperatures.0"]
    assert "finite" in _errors(copy.deepcopy(TINY_SPEC) | {"lattice_constant": float("inf")})["lattice_constant"]
    assert "lattice_constant" in _errors(copy.deepcopy(TINY_SPEC) | {"lattice_constant": 1e-300})
    data = copy.deepcopy(TINY_SPEC)
    data["sampling"]["protocols"][0]["structure"] = {"kind": "single_crystal", "orientation": [[1000, 0, 0], [0, 1, 0],
                                                                                             [0, 0, 1]]}
    assert "sampling.protocols.0.structure.orientation.0.0" in _errors(data)
