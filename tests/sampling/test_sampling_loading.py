"""Loading protocols (minimize, uniaxial, shear, nanoindent, crack_opening) with real LAMMPS on small W cells."""

import inspect
import itertools

import numpy as np
import pytest

from sampling import protocols
from sampling.builders import bulk_crystal
from sampling.protocols import (
    Snapshot,
    crack_opening,
    crack_opening_snapshot_count,
    minimize,
    minimize_snapshot_count,
    nanoindent,
    nanoindent_snapshot_count,
    shear,
    shear_snapshot_count,
    snapshot_count,
    uniaxial,
    uniaxial_snapshot_count,
)
from schemas.sampling import (
    CrackOpeningProtocol,
    MinimizeProtocol,
    NanoindentProtocol,
    ShearProtocol,
    UniaxialProtocol,
)

A0 = 3.165  # W Zhou, rounded
A0_RELAXED = 3.164849
GPA = 160.21766  # eV/A^3 -> GPa
W = dict(element="W", lattice="bcc", lattice_constant=A0)
FAST_UNIAXIAL = dict(strain_rate=5e10, max_strain=0.03, snapshot_every=200, equilibration_steps=200)


def w_slab(size=(6, 6, 5)):
    slab = bulk_crystal("W", "bcc", A0, size)
    slab.pbc = (True, True, False)
    slab.center(vacuum=8.0, axis=2)
    return slab


def check_snapshots(snapshots, natoms, protocol, expected_count):
    assert len(snapshots) == expected_count
    assert [s.index for s in snapshots] == list(range(expected_count))
    for snapshot in snapshots:
        assert isinstance(snapshot, Snapshot) and len(snapshot.atoms) == natoms
        structure_type = snapshot.atoms.arrays["structure_type"]
        assert structure_type.shape == (natoms,)
        assert np.array_equal(snapshot.defect_indices, np.flatnonzero(structure_type != 3))
        assert sum(snapshot.counts.values()) == natoms
        info = snapshot.atoms.info
        assert info["protocol"] == protocol and info["step"] == snapshot.step
        assert info["stress"].shape == (6,) and np.isfinite(info["energy"]) and info["temperature"] >= 0


# ------------------------------------------------------------------ minimize


def test_minimize_relaxes_box_and_yields_one_snapshot(w_zhou):
    atoms = bulk_crystal("W", "bcc", 3.18, (4, 4, 4))  # too large
    atoms.rattle(0.05, seed=3)
    snapshots = list(minimize(atoms, w_zhou, MinimizeProtocol(), **W))
    check_snapshots(snapshots, len(atoms), "minimize", minimize_snapshot_count(MinimizeProtocol()))
    relaxed = snapshots[0].atoms
    assert relaxed.cell[0, 0] == pytest.approx(4 * A0_RELAXED, abs=2e-3)
    assert relaxed.info["energy"] / len(atoms) == pytest.approx(-8.760, abs=1e-3)
    assert np.abs(relaxed.info["stress"]).max() < 1e-4 and snapshots[0].counts["bcc"] == len(atoms)

    fixed_box = next(minimize(atoms, w_zhou, MinimizeProtocol(box_relax=False), **W)).atoms
    assert np.array_equal(fixed_box.cell[:], atoms.cell[:])
    assert np.all(fixed_box.info["stress"][:3] > 0.01)  # stretched box: tensile (ASE sign: positive)


# ------------------------------------------------------------------ uniaxial


@pytest.mark.parametrize("mode, sign", [("tension", 1.0), ("compression", -1.0)])
def test_uniaxial_stress_follows_strain_and_box_reaches_max_strain(w_zhou, mode, sign):
    atoms = bulk_crystal("W", "bcc", A0, (4, 4, 4))
    snapshots = list(uniaxial(atoms, w_zhou, UniaxialProtocol(mode=mode, axis="x", **FAST_UNIAXIAL), **W))
    count = uniaxial_snapshot_count(UniaxialProtocol(strain_rate=5e10, max_strain=0.03, snapshot_every=200))
    assert count == snapshot_count("uniaxial", mode=mode, **FAST_UNIAXIAL) == 4  # 600 loading steps
    check_snapshots(snapshots, len(atoms), "uniaxial", count)
    assert [s.step for s in snapshots] == [0, 200, 400, 600]

    strains = [s.atoms.info["strain"] for s in snapshots]
    assert strains == pytest.approx([0.0, sign * 0.01, sign * 0.02, sign * 0.03])
    lengths = np.array([s.atoms.cell[0, 0] for s in snapshots])
    assert lengths[-1] / lengths[0] == pytest.approx(1.0 + sign * 0.03, rel=1e-9)  # engineering strain
    assert np.allclose(lengths / lengths[0] - 1.0, strains, atol=1e-9)

    sxx = np.array([s.atoms.info["stress"][0] for s in snapshots]) * GPA
    # ASE sign: tension positive, compression negative; ~ E<100> * strain (EAM Zhou: ~ 370 GPa)
    assert np.all(sign * np.diff(sxx) > 1.0)
    assert 5.0 < sign * sxx[-1] < 20.0
    lateral = np.array([s.atoms.info["stress"][1:3] for s in snapshots]) * GPA
    assert np.abs(lateral[1:]).max() < 2.5  # npt keeps the lateral stress near zero (thermal noise)
    # Poisson contraction (tension) or expansion (compression) of the lateral box
    assert sign * (snapshots[-1].atoms.cell[1, 1] - snapshots[0].atoms.cell[1, 1]) < 0


def test_uniaxial_fixed_lateral_box_and_other_axis(w_zhou):
    atoms = bulk_crystal("W", "bcc", A0, (3, 3, 4))
    snapshots = list(uniaxial(atoms, w_zhou, UniaxialProtocol(axis="z", lateral="fixed", **FAST_UNIAXIAL), **W))
    first, last = snapshots[0].atoms, snapshots[-1].atoms
    assert last.cell[2, 2] / first.cell[2, 2] == pytest.approx(1.03, rel=1e-9)
    assert last.cell[0, 0] == first.cell[0, 0] and last.cell[1, 1] == first.cell[1, 1]
    szz, sxx = last.info["stress"][2] * GPA, last.info["stress"][0] * GPA
    assert szz > 5.0 and 0.5 < sxx < szz  # constrained lateral axes carry a tensile stress


# ------------------------------------------------------------------ shear


@pytest.mark.parametrize("plane, row, column, voigt", [("xy", 1, 0, 5), ("yz", 2, 1, 3)])
def test_shear_tilts_the_box_and_shear_stress_grows(w_zhou, plane, row, column, voigt):
    atoms = bulk_crystal("W", "bcc", A0, (4, 4, 4))
    params = ShearProtocol(plane=plane, shear_rate=5e10, max_shear=0.03, snapshot_every=200, equilibration_steps=200)
    snapshots = list(shear(atoms, w_zhou, params, **W))
    count = shear_snapshot_count(ShearProtocol(shear_rate=5e10, max_shear=0.03, snapshot_every=200))
    check_snapshots(snapshots, len(atoms), "shear", count)
    gammas = [s.atoms.info["shear_strain"] for s in snapshots]
    assert gammas == pytest.approx([0.0, 0.01, 0.02, 0.03])
    for snapshot, gamma in zip(snapshots, gammas):
        cell = snapshot.atoms.cell[:]
        assert cell[row, column] == pytest.approx(gamma * cell[row, row], abs=1e-9)  # tilt = gamma * L_perp
    tau = np.array([s.atoms.info["stress"][voigt] for s in snapshots]) * GPA
    assert np.all(np.diff(tau) > 0.5) and 3.0 < tau[-1] < 8.0  # ~ C44 * gamma (C44 ~ 160 GPa)
    assert all(s.counts["bcc"] == len(atoms) for s in snapshots)


# ------------------------------------------------------------------ nanoindentation


def test_nanoindent_load_grows_with_depth_and_damage_appears_under_the_tip(w_zhou):
    slab = w_slab((6, 6, 5))
    options = dict(radius=8.0, depth=3.0, speed=200.0, timestep_fs=2.0, snapshot_every=250,
                   equilibration_steps=200, fixed_bottom=3.5)
    snapshots = list(nanoindent(slab, w_zhou, NanoindentProtocol(**options), **W))
    count = nanoindent_snapshot_count(NanoindentProtocol(depth=3.0, speed=200.0, timestep_fs=2.0, snapshot_every=250))
    check_snapshots(snapshots, len(slab), "nanoindent", count)
    assert count == 4  # 3 A at 2 A/ps and 2 fs: 750 steps
    depths = [s.atoms.info["indenter_depth"] for s in snapshots]
    loads = np.array([s.atoms.info["indenter_load"] for s in snapshots])
    assert depths == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert loads[0] == 0.0 and np.all(np.diff(loads) > 0) and loads[-1] > 10.0  # eV/A
    assert not snapshots[-1].atoms.pbc[2]

    # snapshot 0: the two free surfaces are the defects; at full depth new defects lie under the tip
    top = slab.positions[:, 2].max()
    centre = 0.5 * (slab.cell[0] + slab.cell[1])[:2]
    new = np.setdiff1d(snapshots[-1].defect_indices, snapshots[0].defect_indices)
    positions = snapshots[-1].atoms.positions[new]
    under_tip = (np.linalg.norm(positions[:, :2] - centre, axis=1) < 8.0) & (positions[:, 2] < top - 1.0)
    assert under_tip.sum() >= 4
    # bottom layer held fixed
    bottom = slab.positions[:, 2] < slab.positions[:, 2].min() + 3.5
    assert np.abs(snapshots[-1].atoms.positions[bottom] - snapshots[0].atoms.positions[bottom]).max() < 1e-9


def test_nanoindent_needs_a_free_surface_along_z(w_zhou):
    with pytest.raises(ValueError, match="pbc"):
        nanoindent(bulk_crystal("W", "bcc", A0, (4, 4, 4)), w_zhou, NanoindentProtocol(), **W)


# ------------------------------------------------------------------ crack


def test_crack_opening_defects_include_faces_and_grow(w_zhou):
    atoms = bulk_crystal("W", "bcc", A0, (10, 6, 2))
    params = CrackOpeningProtocol(crack_length=12.0, max_strain=0.08, increments=4)
    snapshots = list(crack_opening(atoms, w_zhou, params, **W))
    count = crack_opening_snapshot_count(CrackOpeningProtocol(increments=4))
    natoms = len(snapshots[0].atoms)
    assert natoms < len(atoms)  # the slit was cut out
    check_snapshots(snapshots, natoms, "crack_opening", count)
    assert [s.atoms.info["strain"] for s in snapshots] == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08])
    assert all(s.atoms.info["temperature"] == 0.0 for s in snapshots)
    heights = np.array([s.atoms.cell[1, 1] for s in snapshots])
    assert heights / heights[0] - 1.0 == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08], abs=1e-12)
    syy = np.array([s.atoms.info["stress"][1] for s in snapshots]) * GPA
    assert syy[1] > 3.0 and syy[2] > syy[1]

    # crack faces: the atoms next to the removed slab, along the crack (away from its tips)
    cracked = snapshots[0].atoms
    centre = 0.5 * np.diag(atoms.cell)
    start = cracked.positions  # snapshot 0 positions: relaxed, close to the input
    face = (np.abs(start[:, 1] - centre[1]) < 0.5 * A0 + 0.6 * A0) & (np.abs(start[:, 0] - centre[0]) < 6.0 - A0)
    assert face.sum() >= 8
    for snapshot in snapshots:
        assert set(np.flatnonzero(face)) <= set(snapshot.defect_indices)
    defect_counts = [len(s.defect_indices) for s in snapshots]
    assert defect_counts[-1] > defect_counts[0] and all(b >= a for a, b in itertools.pairwise(defect_counts))


def test_crack_at_temperature_runs_md_per_increment(w_zhou):
    atoms = bulk_crystal("W", "bcc", A0, (8, 6, 2))
    params = CrackOpeningProtocol(crack_length=10.0, max_strain=0.04, increments=2, temperature=300.0,
                                  steps_per_increment=100, equilibration_steps=100)
    snapshots = list(crack_opening(atoms, w_zhou, params, **W))
    assert len(snapshots) == crack_opening_snapshot_count(CrackOpeningProtocol(increments=2)) == 3
    assert [s.step for s in snapshots] == [0, 100, 200]
    assert snapshots[-1].atoms.info["temperature"] > 100.0


# ------------------------------------------------------------------ contracts


def test_snapshot_count_defaults_match_protocol_defaults():
    for name, protocol in protocols.PROTOCOLS.items():
        run, count = inspect.signature(protocol.run).parameters, inspect.signature(protocol.count).parameters
        for parameter in count.values():
            assert parameter.name in run, (name, parameter.name)
            assert parameter.default == run[parameter.name].default, (name, parameter.name)
    assert snapshot_count("uniaxial") == uniaxial_snapshot_count(UniaxialProtocol()) == 1 + 100  # 50000 steps / 500
    assert snapshot_count("nanoindent", depth=5.0, speed=10.0) == 1 + 100  # 5 A at 0.1 A/ps: 50000 steps


def test_programs_take_snapshots_only_after_runs(w_zhou):
    atoms = bulk_crystal("W", "bcc", A0, (2, 2, 2))
    slab = w_slab((3, 3, 4))
    for name, target, params in [
        ("minimize", atoms, {}),
        ("anneal", atoms, dict(temperatures=[300.0, 600.0], steps_per_temperature=150, snapshot_every=100)),
        ("uniaxial", atoms, dict(equilibration_steps=0)),
        ("shear", atoms, {}),
        ("nanoindent", slab, dict(depth=2.0)),
        ("crack_opening", bulk_crystal("W", "bcc", A0, (4, 4, 1)), dict(crack_length=6.0, temperature=300.0)),
    ]:
        program = protocols.program_for(name, target, w_zhou, **W, **params)
        assert program.snapshot_count == snapshot_count(name, **params), name  # check() ran in program_for


def test_closing_a_loading_protocol_early_frees_lammps(w_zhou):
    generator = uniaxial(bulk_crystal("W", "bcc", A0, (3, 3, 3)), w_zhou,
                         UniaxialProtocol(strain_rate=1e9, max_strain=0.05, snapshot_every=10, equilibration_steps=10),
                         **W)
    next(generator)
    next(generator)
    system = generator.gi_frame.f_locals["system"]
    assert system.lmp is not None
    generator.close()
    assert system.lmp is None


BAD = [
    ("uniaxial", dict(strain_rate=0.0), "strain_rate must be > 0 1/s"),
    ("uniaxial", dict(strain_rate=-1e9), "strain_rate"),
    ("uniaxial", dict(max_strain=0.0), "max_strain"),
    ("uniaxial", dict(max_strain=1e-9), "max_strain"),
    ("uniaxial", dict(axis="w"), "axis"),
    ("uniaxial", dict(mode="stretch"), "mode"),
    ("uniaxial", dict(lateral="free"), "lateral"),
    ("uniaxial", dict(temperature=0.0), "temperature"),
    ("uniaxial", dict(snapshot_every=0), "snapshot_every"),
    ("uniaxial", dict(snapshot_every=2.5), "snapshot_every"),
    ("uniaxial", dict(equilibration_steps=-1), "equilibration_steps"),
    ("uniaxial", dict(timestep_fs=0.0), "timestep_fs"),
    ("uniaxial", dict(strain_rate="fast"), "strain_rate"),
    ("uniaxial", dict(element="Fe"), "Fe"),
    ("uniaxial", dict(lattice="diamond"), "lattice"),
    ("uniaxial", dict(lattice_constant=-3.0), "lattice_constant"),
    ("uniaxial", dict(threads=0), "threads"),
    ("shear", dict(plane="xx"), "plane"),
    ("shear", dict(shear_rate=0), "shear_rate"),
    ("shear", dict(max_shear=-0.1), "max_shear"),
    ("shear", dict(temperature=-10.0), "temperature"),
    ("nanoindent", dict(radius=0.0), "radius"),
    ("nanoindent", dict(depth=-1.0), "depth"),
    ("nanoindent", dict(depth=30.0), "depth"),
    ("nanoindent", dict(speed=0.0), "speed must be > 0 m/s"),
    ("nanoindent", dict(fixed_bottom=0.0), "fixed_bottom"),
    ("nanoindent", dict(fixed_bottom=100.0), "fixed_bottom"),
    ("nanoindent", dict(force_constant=0.0), "force_constant"),
    ("crack_opening", dict(crack_length=0.0), "crack_length"),
    ("crack_opening", dict(crack_length=500.0), "crack_length"),
    ("crack_opening", dict(crack_length=1e-3, slit_width=1e-3), "cut no atoms"),
    ("crack_opening", dict(normal="q"), "normal"),
    ("crack_opening", dict(front="y"), "front"),
    ("crack_opening", dict(slit_width=0.0), "slit_width"),
    ("crack_opening", dict(max_strain=float("nan")), "max_strain"),
    ("crack_opening", dict(increments=0), "increments"),
    ("crack_opening", dict(temperature=-1.0), "temperature"),
    ("crack_opening", dict(temperature=300.0, steps_per_increment=0), "steps_per_increment"),
    ("minimize", dict(box_relax="yes"), "box_relax"),
    ("minimize", dict(seed="x"), "seed"),
]


@pytest.mark.parametrize("name, overrides, message", BAD, ids=[f"{b[0]}-{b[2]}" for b in BAD])
def test_bad_parameters_are_named(w_zhou, name, overrides, message):
    target = w_slab((3, 3, 4)) if name == "nanoindent" else bulk_crystal("W", "bcc", A0, (4, 4, 2))
    params = dict(W)
    params.update(crack_length=6.0) if name == "crack_opening" else None
    params.update(overrides)
    target.positions += (0.4, 0.4, 0.0)  # no atom at the centre: a tiny slit cuts nothing
    target.wrap()
    context = {key: params.pop(key) for key in ("element", "lattice", "lattice_constant", "threads") if key in params}
    with pytest.raises(ValueError, match=message):
        # the schema model (protocols.parameters: keywords, readable errors), then the protocol:
        # raised at the call, before any LAMMPS work
        getattr(protocols, name)(target, w_zhou, protocols.parameters(name, **params), **context)


def test_uniaxial_axis_must_be_periodic_and_cell_in_lammps_orientation(w_zhou):
    with pytest.raises(ValueError, match="axis 'z' must be periodic"):
        uniaxial(w_slab((3, 3, 3)), w_zhou, UniaxialProtocol(axis="z"), **W)
    rotated = bulk_crystal("W", "bcc", A0, (3, 3, 3))
    rotated.rotate(30, "z", rotate_cell=True)
    with pytest.raises(ValueError, match="LAMMPS orientation"):
        uniaxial(rotated, w_zhou, UniaxialProtocol(), **W)


def test_protocols_take_the_schema_model_and_keywords_give_the_same_program(w_zhou):
    from schemas import parse_spec  # noqa: F401  (the spec's protocols are these models)

    atoms = bulk_crystal("W", "bcc", A0, (3, 3, 3))
    model = UniaxialProtocol(strain_rate=5e10, max_strain=0.03, snapshot_every=200, equilibration_steps=0)
    by_model = protocols.program_for(model, atoms, w_zhou, **W)
    by_name = protocols.program_for("uniaxial", atoms, w_zhou, **W, strain_rate=5e10, max_strain=0.03,
                                    snapshot_every=200, equilibration_steps=0)
    assert by_model.items == by_name.items
    assert protocols.snapshot_count(model) == snapshot_count("uniaxial", **model.protocol_params()) == model.snapshots()
    with pytest.raises(ValueError, match="in the model"):
        protocols.program_for(model, atoms, w_zhou, **W, max_strain=0.01)
    with pytest.raises(ValueError, match="strain_rate must be > 0 1/s"):
        protocols.parameters("uniaxial", strain_rate=-1.0)
