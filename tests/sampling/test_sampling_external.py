"""The external-command path: protocols written as standalone LAMMPS inputs, run by lmp / mpirun, parsed back."""

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from md.engine import LammpsError
from sampling.builders import add_vacancies, bulk_crystal
from sampling.lammps_script import (
    DUMP_DIR,
    INPUT,
    default_command,
    launch_command,
    read_external,
    run_external,
    stream_run,
    write_external,
    write_input,
)
from sampling.protocols import (
    anneal,
    anneal_snapshot_count,
    minimize,
    nanoindent,
    parameters,
    program_for,
    uniaxial,
    uniaxial_snapshot_count,
)
from schemas.sampling import AnnealProtocol, UniaxialProtocol

_CONTEXT = ("element", "lattice", "lattice_constant")


def in_process_run(protocol, atoms, potential, **params):
    """The in-process protocol with the keyword ``params`` of run_external: the schema model and the context."""
    context = {key: params.pop(key) for key in _CONTEXT}
    return protocol(atoms, potential, parameters(protocol.__name__, **params), **context)


def anneal_count(temperatures, steps_per_temperature, snapshot_every):
    return anneal_snapshot_count(AnnealProtocol(temperatures=temperatures, steps_per_temperature=steps_per_temperature,
                                                snapshot_every=snapshot_every))


def uniaxial_count(**params):
    return uniaxial_snapshot_count(UniaxialProtocol(**params))

A0 = 3.165
GPA = 160.21766
W = dict(element="W", lattice="bcc", lattice_constant=A0)
LMP = str(Path(sys.prefix) / "bin" / "lmp")
MPIRUN_2 = [str(Path(sys.prefix) / "bin" / "mpirun"), "-np", "2", LMP]

pytestmark = pytest.mark.skipif(not Path(LMP).is_file(), reason="no lmp in this environment")


def assert_identical(one, two):
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert (a.index, a.step, a.time_ps) == (b.index, b.step, b.time_ps)
        assert a.atoms.get_chemical_symbols() == b.atoms.get_chemical_symbols()
        assert np.array_equal(a.atoms.positions, b.atoms.positions)
        assert np.array_equal(a.atoms.cell[:], b.atoms.cell[:]) and np.array_equal(a.atoms.pbc, b.atoms.pbc)
        assert np.array_equal(a.atoms.arrays["structure_type"], b.atoms.arrays["structure_type"])
        assert np.array_equal(a.defect_indices, b.defect_indices) and a.counts == b.counts
        assert set(a.atoms.info) == set(b.atoms.info)
        for key, value in a.atoms.info.items():
            assert np.allclose(value, b.atoms.info[key], rtol=1e-14, atol=0) if not isinstance(value, str) \
                else value == b.atoms.info[key], key


def test_serial_lmp_reproduces_the_in_process_anneal_bit_for_bit(w_zhou, tmp_path):
    atoms = add_vacancies(bulk_crystal("W", "bcc", A0, (4, 4, 4)), 1, seed=2)
    atoms.rattle(0.05, seed=1)
    atoms.positions[0] += atoms.cell[0]  # outside the cell: LAMMPS wraps it, the snapshots must not
    params = dict(temperatures=[300.0, 600.0], steps_per_temperature=100, snapshot_every=50, **W)
    in_process = list(in_process_run(anneal, atoms, w_zhou, **params))
    external = list(run_external("anneal", atoms, w_zhou, workdir=tmp_path / "run", command=[LMP], **params))
    assert len(external) == anneal_count([300.0, 600.0], 100, 50) == 5
    assert_identical(in_process, external)
    assert np.abs(external[0].atoms.positions[0] - atoms.positions[0]).max() < 0.5
    # the input is standalone: potential copied, dumps with id type x y z ... c_structure_type
    text = (tmp_path / "run" / INPUT).read_text()
    assert "pair_coeff * * potential/W_zhou.eam.alloy W" in text and "read_data atoms.data" in text
    dump = (tmp_path / "run" / DUMP_DIR / "frame-000004.dump").read_text().splitlines()
    assert dump[8].split()[2:] == ["id", "type", "x", "y", "z", "ix", "iy", "iz", "c_structure_type"]


def test_serial_lmp_rotated_triclinic_cell_comes_back_in_the_input_frame(w_zhou, tmp_path):
    from ase.build import bulk

    atoms = bulk("W", "bcc", a=3.17).repeat((3, 3, 3))  # primitive cell: LAMMPS needs a rotated frame
    atoms.rattle(0.05, seed=5)
    for box_relax in (False, True):
        in_process = list(in_process_run(minimize, atoms, w_zhou, box_relax=box_relax, **W))
        external = list(run_external("minimize", atoms, w_zhou, workdir=tmp_path / str(box_relax),
                                     command=[LMP], box_relax=box_relax, **W))
        # a triclinic box does not round-trip write_data/read_data to the last bit: round-off only
        a, b = in_process[0], external[0]
        assert np.abs(a.atoms.positions - b.atoms.positions).max() < 1e-8
        assert np.abs(a.atoms.cell[:] - b.atoms.cell[:]).max() < 1e-8
        assert a.atoms.info["energy"] == pytest.approx(b.atoms.info["energy"], abs=1e-8)
        assert np.abs(a.atoms.info["stress"] - b.atoms.info["stress"]).max() < 1e-9
        assert np.array_equal(a.atoms.arrays["structure_type"], b.atoms.arrays["structure_type"])
        assert np.abs(external[0].atoms.positions - atoms.positions).max() < 0.2
        assert external[0].counts["bcc"] == len(atoms)


def test_serial_lmp_nanoindent_carries_the_indenter_load(w_zhou, tmp_path):
    slab = bulk_crystal("W", "bcc", A0, (5, 5, 4))
    slab.pbc = (True, True, False)
    slab.center(vacuum=8.0, axis=2)
    params = dict(radius=6.0, depth=1.5, speed=300.0, timestep_fs=2.0, snapshot_every=125,
                  equilibration_steps=50, fixed_bottom=3.5, **W)
    in_process = list(in_process_run(nanoindent, slab, w_zhou, **params))
    external = list(run_external("nanoindent", slab, w_zhou, workdir=tmp_path, command=[LMP], **params))
    assert [s.atoms.info["indenter_load"] for s in external][-1] > 1.0
    assert_identical(in_process, external)


def test_mpirun_two_ranks_anneal_agrees_with_in_process(w_zhou, tmp_path):
    atoms = add_vacancies(bulk_crystal("W", "bcc", A0, (5, 5, 5)), 1, seed=4)
    params = dict(temperatures=[300.0], steps_per_temperature=200, snapshot_every=100, **W)
    in_process = list(in_process_run(anneal, atoms, w_zhou, **params))
    external = list(run_external("anneal", atoms, w_zhou, workdir=tmp_path, command=MPIRUN_2, **params))
    assert len(external) == len(in_process) == anneal_count([300.0], 200, 100) == 3
    natoms = len(atoms)
    for a, b in zip(in_process, external):
        assert len(b.atoms) == natoms and a.step == b.step
    # after minimisation: the same state (different MPI round-off only)
    first, first_external = in_process[0], external[0]
    assert abs(first.atoms.info["energy"] - first_external.atoms.info["energy"]) / natoms < 1e-6
    assert np.abs(first.atoms.positions - first_external.atoms.positions).max() < 1e-6
    assert np.array_equal(first.defect_indices, first_external.defect_indices)
    assert len(first.defect_indices) == 14  # the vacancy's 8 + 6 neighbours
    # MD: velocities are drawn from positions (loop geom), so round-off makes the trajectories differ;
    # the thermodynamics must agree loosely
    for a, b in zip(in_process[1:], external[1:]):
        assert abs(a.atoms.info["energy"] - b.atoms.info["energy"]) / natoms < 5e-3  # eV/atom
        assert a.atoms.info["temperature"] == pytest.approx(b.atoms.info["temperature"], rel=0.25)
        assert np.abs(a.atoms.info["stress"] - b.atoms.info["stress"]).max() * GPA < 1.5


def test_mpirun_two_ranks_uniaxial_agrees_with_in_process(w_zhou, tmp_path):
    atoms = bulk_crystal("W", "bcc", A0, (4, 4, 4))
    params = dict(strain_rate=5e10, max_strain=0.03, snapshot_every=200, equilibration_steps=200, **W)
    in_process = list(in_process_run(uniaxial, atoms, w_zhou, **params))
    external = list(run_external("uniaxial", atoms, w_zhou, workdir=tmp_path, command=MPIRUN_2, threads=1,
                                 **params))
    count = uniaxial_count(strain_rate=5e10, max_strain=0.03, snapshot_every=200)
    assert len(external) == len(in_process) == count == 4
    for a, b in zip(in_process, external):
        assert len(b.atoms) == len(atoms) and a.step == b.step
        assert a.atoms.info["strain"] == b.atoms.info["strain"]
        assert b.atoms.cell[0, 0] / external[0].atoms.cell[0, 0] - 1.0 == pytest.approx(b.atoms.info["strain"],
                                                                                          abs=1e-9)
        assert abs(a.atoms.info["energy"] - b.atoms.info["energy"]) / len(atoms) < 5e-3
        assert abs(a.atoms.info["stress"][0] - b.atoms.info["stress"][0]) * GPA < 1.5  # GPa, of ~10 at the end
    assert external[-1].atoms.info["stress"][0] * GPA > 5.0


def test_write_then_read_external_is_the_cluster_workflow(w_zhou, tmp_path):
    atoms = bulk_crystal("W", "bcc", A0, (3, 3, 3))
    params = dict(strain_rate=1e10, max_strain=0.002, snapshot_every=100, equilibration_steps=20, **W)
    path = write_external("uniaxial", atoms, w_zhou, tmp_path, **params)
    assert list(read_external(tmp_path)) == []  # nothing run yet
    subprocess.run(launch_command([LMP]), cwd=path.parent, check=True, timeout=60)
    snapshots = list(read_external(tmp_path))
    assert len(snapshots) == uniaxial_count(strain_rate=1e10, max_strain=0.002, snapshot_every=100)
    assert_identical(list(in_process_run(uniaxial, atoms, w_zhou, **params)), snapshots)


def test_closing_early_stops_the_run(w_zhou, tmp_path):
    generator = run_external("anneal", bulk_crystal("W", "bcc", A0, (6, 6, 6)), w_zhou, workdir=tmp_path,
                             command=MPIRUN_2, temperatures=[300.0], steps_per_temperature=200000,
                             snapshot_every=20, poll_seconds=0.05, **W)
    next(generator)
    process = generator.gi_frame.f_locals["job"].process
    assert process.poll() is None
    generator.close()
    assert process.poll() is not None


def test_failures_are_reported(w_zhou, tmp_path):
    atoms = bulk_crystal("W", "bcc", A0, (2, 2, 2))
    params = dict(temperatures=[300.0], steps_per_temperature=10, snapshot_every=10, **W)
    with pytest.raises(LammpsError, match="cannot start"):
        list(run_external("anneal", atoms, w_zhou, workdir=tmp_path / "a", command=["no-such-lmp"], **params))
    with pytest.raises(LammpsError, match="exit status"):
        list(run_external("anneal", atoms, w_zhou, workdir=tmp_path / "b", command=["false"], **params))
    with pytest.raises(ValueError, match="protocol must be one of"):
        run_external("melt", atoms, w_zhou, workdir=tmp_path / "c", **params)
    with pytest.raises(ValueError, match="steps_per_temperature"):  # validated before anything runs
        run_external("anneal", atoms, w_zhou, workdir=tmp_path / "d", **{**params, "steps_per_temperature": 0})
    assert not (tmp_path / "d").exists()
    assert launch_command(["lmp"], threads=2)[-5:] == ["-sf", "omp", "-pk", "omp", "2"]
    assert default_command()[:3][1:] == ["-np", "2"]


def _cut_after(full: Path, cut: Path, after: int) -> None:
    """``cut``: the run directory of ``full`` as a run that died right after snapshot ``after`` left it."""
    shutil.copytree(full, cut)
    lines = (cut / "snapshots.txt").read_text().splitlines(keepends=True)
    (cut / "snapshots.txt").write_text("".join(line for line in lines if int(line.split()[0]) <= after))
    for path in [*(cut / DUMP_DIR).glob("*.dump"), *(cut / "restart").glob("*.restart")]:
        index = int(path.stem.split("-")[1])
        if index > after or (path.suffix == ".restart" and index != after):
            path.unlink()
    gone = subprocess.Popen(["true"])
    gone.wait()
    (cut / "launch.json").write_text(json.dumps({"launcher": "local", "pid": gone.pid, "host": socket.gethostname(),
                                                 "command": [LMP]}))


RESUMABLE = {
    "anneal at two temperatures": ("anneal", dict(temperatures=[300.0, 900.0], steps_per_temperature=60,
                                                  snapshot_every=30), (4, 4, 4), 2),
    "uniaxial, from the equilibrated state": ("uniaxial", dict(strain_rate=5e10, max_strain=0.02, snapshot_every=100,
                                                               equilibration_steps=60), (4, 4, 4), 0),
    "shear": ("shear", dict(shear_rate=2e10, max_shear=0.02, snapshot_every=250, equilibration_steps=50),
              (4, 4, 4), 1),
    "nanoindentation": ("nanoindent", dict(radius=5.0, depth=1.0, speed=300.0, timestep_fs=2.0, snapshot_every=60,
                                           equilibration_steps=30, fixed_bottom=3.5), "slab", 1),
    "crack opening, MD": ("crack_opening", dict(crack_length=8.0, max_strain=0.03, increments=3, temperature=300.0,
                                                steps_per_increment=40, equilibration_steps=40), (8, 8, 2), 1),
    "crack opening, 0 K": ("crack_opening", dict(crack_length=8.0, max_strain=0.03, increments=3), (8, 8, 2), 2),
}


@pytest.mark.parametrize("case", list(RESUMABLE))
def test_a_run_resumed_from_a_restart_file_continues_the_same_trajectory(w_zhou, tmp_path, case):
    """Resumed after snapshot k from its restart file, each protocol gives the snapshots of the run that was not
    interrupted: the thermostat, the strain ramp, the indenter and the next temperature carry on."""
    name, params, size, after = RESUMABLE[case]
    if size == "slab":
        atoms = bulk_crystal("W", "bcc", A0, (4, 4, 4))
        atoms.pbc = (True, True, False)
        atoms.center(vacuum=8.0, axis=2)
    else:
        atoms = bulk_crystal("W", "bcc", A0, size)
    program = program_for(name, atoms, w_zhou, **params, **W)
    write_input(program, w_zhou, tmp_path / "full", restarts=True)
    subprocess.run(launch_command([LMP]), cwd=tmp_path / "full", check=True, timeout=120)
    full = list(read_external(tmp_path / "full"))
    assert len(full) == program.snapshot_count > after + 1
    _cut_after(tmp_path / "full", tmp_path / "cut", after)

    resumed = list(stream_run(program, w_zhou, tmp_path / "cut", command=[LMP], done=range(after + 1),
                              poll_seconds=0.05))

    assert [s.index for s in resumed] == list(range(after + 1, len(full)))
    assert f"resumed after snapshot {after}" in (tmp_path / "cut" / "in.resume.lammps").read_text()
    for a, b in zip(full[after + 1:], resumed):
        assert np.abs(a.atoms.positions - b.atoms.positions).max() < 1e-8, a.index
        assert np.abs(a.atoms.cell[:] - b.atoms.cell[:]).max() < 1e-10, a.index
        assert a.atoms.info["energy"] == pytest.approx(b.atoms.info["energy"], abs=1e-8)
        assert np.array_equal(a.defect_indices, b.defect_indices)
