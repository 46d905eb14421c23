"""Limits the server owns (atoms per structure, MD atom-steps, snapshots, DFT jobs) and their cheap checks.

The operator sets them (DG_MAX_STRUCTURE_ATOMS, DG_MAX_MD_ATOM_STEPS, DG_MAX_SNAPSHOTS, DG_MAX_DFT_JOBS); a
spec's ``budget`` may lower them, never raise them: the effective limit is the smaller of the two. The checks
here are arithmetic on the spec (atom counts from the geometry and the lattice density, step counts from the
protocol parameters): they run before any structure is built, in microseconds, whatever the spec asks for.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schemas.campaign import CampaignSpec

# Resident memory of a LAMMPS EAM run per atom, with the snapshots the sampling stage takes (CNA, ase.Atoms
# copies, extxyz): the slope of peak RSS over bulk bcc W anneals of 128,000 / 432,000 / 1,024,000 atoms
# (`ru_maxrss` of a fresh process running sampling.protocols.anneal, 20 steps, 2 snapshots: 2,257 and 2,234
# bytes per atom between successive sizes; 51 MB fixed). Building the structure alone (check_spec) takes
# 40-330 bytes per atom at its peak (bulk 42, polycrystal 294, dislocation loop 323).
RUN_BYTES_PER_ATOM = 2300
BUILD_BYTES_PER_ATOM = 330

SETTING_NAMES = {
    "max_structure_atoms": "DG_MAX_STRUCTURE_ATOMS",
    "max_md_atom_steps": "DG_MAX_MD_ATOM_STEPS",
    "max_snapshots": "DG_MAX_SNAPSHOTS",
    "max_dft_jobs": "DG_MAX_DFT_JOBS",
}


@dataclass(frozen=True)
class Limits:
    """Upper bounds of one campaign; None: no bound from this source."""

    max_structure_atoms: int | None = None
    max_md_atom_steps: int | None = None
    max_snapshots: int | None = None
    max_dft_jobs: int | None = None

    @classmethod
    def of(cls, settings: Any) -> Limits:
        """The server's limits from core.settings.Settings (or anything with the same attributes)."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Bound:
    value: float  # math.inf when neither source bounds it
    source: str  # what sets it, for messages: "budget.max_snapshots" or "DG_MAX_SNAPSHOTS"
    from_budget: bool


def effective(spec: CampaignSpec, server: Limits | None) -> dict[str, Bound]:
    """Each limit as the smaller of the server's and the spec budget's (the server's on a tie)."""
    bounds = {}
    for name, setting in SETTING_NAMES.items():
        ours = getattr(server, name, None) if server is not None else None
        theirs = getattr(spec.budget, name)
        if theirs is not None and (ours is None or theirs < ours):
            bounds[name] = Bound(theirs, f"budget.{name}", True)
        elif ours is not None:
            bounds[name] = Bound(ours, f"the server's limit {setting}", False)
        else:
            bounds[name] = Bound(float("inf"), "", False)
    return bounds


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.3g} MiB"


def structure_message(atoms: float, bound: Bound, estimated: bool = True) -> str:
    message = f"{'about ' if estimated else ''}{atoms:,.0f} atoms, above {bound.source} = {bound.value:,.0f}"
    if bound.from_budget:
        message += ("; raise budget.max_structure_atoms (the server's DG_MAX_STRUCTURE_ATOMS caps it) or use a smaller "
                    "structure")
    else:
        message += "; use a smaller structure (a spec's budget can lower this limit, never raise it)"
    return (f"{message}. A LAMMPS EAM run of it would need about {_gib(atoms * RUN_BYTES_PER_ATOM)} of memory "
            f"({RUN_BYTES_PER_ATOM} bytes per atom, measured), building it up to {_gib(atoms * BUILD_BYTES_PER_ATOM)}")


def _structures(spec: CampaignSpec) -> list[tuple[str, Any]]:
    """(field, structure) of every structure the campaign builds."""
    found = [(f"sampling.protocols.{i}.structure", p.structure) for i, p in enumerate(spec.sampling.protocols)]
    if spec.refinement is not None:
        found += [(f"refinement.otf.targets.{i}.structure", t.structure)
                  for i, t in enumerate(spec.refinement.otf.targets)]
    return found


def estimated_atoms(spec: CampaignSpec) -> float:
    """Atoms of all the structures the campaign builds (check_spec builds each once)."""
    a, c_over_a = spec.estimated_lattice_constant(), spec.estimated_c_over_a()
    return sum(structure.estimated_atoms(spec.lattice, a, c_over_a) for _, structure in _structures(spec))


def limit_errors(spec: CampaignSpec, server: Limits | None = None) -> list[tuple[str, str]]:
    """(field, message) for each limit the spec goes over, from arithmetic alone (nothing is built)."""
    bounds = effective(spec, server)
    a = spec.estimated_lattice_constant()
    lattice = spec.lattice
    errors: list[tuple[str, str]] = []

    atoms = {field: structure.estimated_atoms(lattice, a, spec.estimated_c_over_a())
             for field, structure in _structures(spec)}
    bound = bounds["max_structure_atoms"]
    errors += [(field, structure_message(n, bound)) for field, n in atoms.items() if n > bound.value]

    # atom-steps: MD steps plus minimisation iterations of every protocol, and the OTF runs of every iteration
    work = []
    cap = spec.sampling.minimization.max_iterations
    for i, protocol in enumerate(spec.sampling.protocols):
        n = atoms[f"sampling.protocols.{i}.structure"]
        minimization = protocol.minimization_steps(cap)
        work.append((f"sampling.protocols.{i}", n * (protocol.md_steps() + minimization),
                     f"{n:,.0f} atoms x ({protocol.md_steps():,} MD steps + {minimization:,} "
                     "minimisation iterations)"))
    if spec.refinement is not None:
        otf = spec.refinement.otf
        for i, target in enumerate(otf.targets):
            n = atoms[f"refinement.otf.targets.{i}.structure"]
            work.append((f"refinement.otf.targets.{i}", n * target.steps * otf.max_iterations,
                         f"{n:,.0f} atoms x {target.steps:,} MD steps x {otf.max_iterations} iterations"))
    total = sum(w for _, w, _ in work)
    bound = bounds["max_md_atom_steps"]
    if total > bound.value:
        field, largest, how = max(work, key=lambda w: w[1])
        if bound.from_budget:
            field = "budget.max_md_atom_steps"
            fix = "raise the cap (at most the server's DG_MAX_MD_ATOM_STEPS) or shorten the runs"
        else:
            field = field if largest > bound.value else "sampling.protocols"
            fix = "shorten the runs or use smaller structures (a spec's budget cannot raise the server's limit)"
        errors.append((field, f"the campaign needs about {total:.3g} atom-steps (minimisation iterations counted "
                              f"as steps; the largest run: {how}), above {bound.source} = {bound.value:.3g}; {fix}"))

    snapshots = sum(p.snapshots() for p in spec.sampling.protocols)
    bound = bounds["max_snapshots"]
    if snapshots > bound.value:
        if bound.from_budget:
            field = "budget.max_snapshots"
            fix = "raise the cap (at most the server's DG_MAX_SNAPSHOTS) or increase snapshot_every"
        else:
            field = "sampling.protocols"
            fix = "increase snapshot_every (a spec's budget cannot raise the server's limit)"
        errors.append((field, f"the protocols store {snapshots:,} snapshots, above {bound.source} = "
                              f"{bound.value:,}; {fix}"))
    return errors


def effective_budget(spec: CampaignSpec, server: Limits | None) -> CampaignSpec:
    """The spec with its budget set to the effective limits: what the stages read (e.g. the labelling
    stage plans at most budget.max_dft_jobs jobs), so a campaign never outgrows the server's limits."""
    bounds = effective(spec, server)
    update = {name: int(b.value) for name, b in bounds.items() if b.value != float("inf")}
    return spec.model_copy(update={"budget": spec.budget.model_copy(update=update)})
