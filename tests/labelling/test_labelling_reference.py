"""Engine ``lammps``: labels from a reference potential (EAM, MEAM, SNAP + ZBL, general pair lines).

Every label is compared with an evaluation of the same potential made without this project's reference code:
ASE's EAM calculator for EAM-Zhou, and a bare LAMMPS instance fed the potential's own lines for the MEAM (the
pair_coeff of DESIGN.md section 5) and the W SNAP (its shipped ``.snap`` include file, read by LAMMPS itself).
"""

from __future__ import annotations

import copy
import shutil

import numpy as np
import pytest
from ase.build import bulk
from support import TINY_SPEC

from labelling import (
    LabelError,
    ReferencePotentialError,
    default_reference,
    label,
    production,
    quick,
    reference_in_model_family,
    reference_options,
    resolve_reference,
    settings_hash,
)
from md.potentials import bundled_potentials_dir
from schemas import SpecError, parse_spec

POTENTIALS = bundled_potentials_dir()


def _rattled_w16():
    atoms = bulk("W", "bcc", a=3.165, cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=11)
    return atoms


def _settings(reference: str, **changes):
    return quick("lammps", **reference_options(resolve_reference(reference, "W")), **changes)


def _lammps_direct(atoms, lines: list[str]) -> tuple[float, np.ndarray]:
    """Energy and forces from a bare LAMMPS instance (orthogonal cell at the origin, one type W)."""
    from md.engine import open_lammps

    lmp = open_lammps()
    try:
        a, b, c = (float(x) for x in np.diag(atoms.cell[:]))
        lmp.commands_list(["units metal", "atom_style atomic", "atom_modify map array", "boundary p p p",
                           f"region box block 0 {a!r} 0 {b!r} 0 {c!r} units box", "create_box 1 box",
                           "mass 1 183.84"])
        n = len(atoms)
        lmp.create_atoms(n, list(range(1, n + 1)), [1] * n, atoms.positions.ravel().tolist())
        lmp.commands_list([*lines, "thermo_style custom step pe", "run 0"])
        energy = lmp.get_thermo("pe")
        ids = np.array(lmp.numpy.extract_atom("id")[:n])
        forces = np.empty((n, 3))
        forces[ids - 1] = lmp.numpy.extract_atom("f")[:n]
        return float(energy), forces
    finally:
        lmp.close()


def _direct(name: str, atoms, monkeypatch):
    if name == "W_zhou.eam.alloy":
        from ase.calculators.eam import EAM

        probe = atoms.copy()
        probe.calc = EAM(potential=str(POTENTIALS / name))
        return probe.get_potential_energy(), probe.get_forces()
    if name == "WL.meam":
        return _lammps_direct(atoms, ["pair_style meam",
                                      f"pair_coeff * * {POTENTIALS}/library.meam WL {POTENTIALS}/WL.meam WL"])
    monkeypatch.chdir(POTENTIALS)  # the shipped include names its coefficient files relative to its directory
    return _lammps_direct(atoms, [f"include {POTENTIALS / name}"])


@pytest.mark.parametrize("name", ["W_zhou.eam.alloy", "WL.meam", "W_2940_2017_2.snap"])
def test_label_equals_direct_evaluation_of_the_same_potential(name, tmp_path, monkeypatch):
    atoms = _rattled_w16()
    result = label(atoms, _settings(name), tmp_path / "job")
    energy, forces = _direct(name, atoms, monkeypatch)
    assert result.engine == "lammps" and result.efs_by == f"lammps:{name}"
    assert result.energy == pytest.approx(energy, abs=1e-6)
    np.testing.assert_allclose(result.forces, forces, atol=1e-6)
    assert np.abs(result.forces).max() > 0.1 and result.stress is not None and result.stress.shape == (6,)
    assert result.extra["reference"] == name and all(len(d) == 64 for d in result.extra["reference_files"].values())


def test_snap_reference_reads_the_zbl_overlay_of_the_shipped_include():
    snap = resolve_reference("W_2940_2017_2.snap", "W")
    assert snap.pair_style == "hybrid/overlay zbl 4 4.8 snap"
    assert snap.pair_coeff == ("1 1 zbl 74 74", "* * snap W_2940_2017_2.snapcoeff W_2940_2017_2.snapparam W")
    assert [name for name, _ in snap.sha256] == ["W_2940_2017_2.snapcoeff", "W_2940_2017_2.snapparam"]
    # the .snapcoeff alone finds its .snapparam and the include beside it
    assert resolve_reference("W_2940_2017_2.snapcoeff", "W").record() | {"name": "x"} == snap.record() | {"name": "x"}
    meam = resolve_reference("WL.meam", "W")
    assert (meam.pair_style, meam.pair_coeff) == ("meam", ("* * library.meam WL WL.meam WL",))


@pytest.mark.parametrize("name, a0, cohesive", [("WL.meam", 3.164, -8.66), ("W_2940_2017_2.snap", 3.180, -11.0283)])
def test_perfect_bcc_energy_per_atom_is_the_published_cohesive_energy(name, a0, cohesive, tmp_path):
    atoms = bulk("W", "bcc", a=a0, cubic=True) * (2, 2, 2)
    result = label(atoms, _settings(name), tmp_path / "job")
    assert result.energy / len(atoms) == pytest.approx(cohesive, abs=5e-4)
    assert np.abs(result.forces).max() < 1e-8


def test_settings_hash_covers_the_reference_and_the_bytes_of_its_files(tmp_path):
    hashes = {name: settings_hash(_settings(name)) for name in ("W_zhou.eam.alloy", "WL.meam", "W_2940_2017_2.snap")}
    assert len(set(hashes.values())) == 3
    copy_path = tmp_path / "W_copy.eam.alloy"
    shutil.copy(POTENTIALS / "W_zhou.eam.alloy", copy_path)
    before = _settings(str(copy_path))
    assert settings_hash(before) == settings_hash(_settings(str(copy_path)))  # stable
    text = copy_path.read_text().splitlines(keepends=True)
    text[0] = text[0].rstrip("\n") + " edited\n"  # a comment: the same numbers, other bytes
    copy_path.write_text("".join(text))
    after = _settings(str(copy_path))
    assert settings_hash(after) != settings_hash(before)
    # where the file lies is not hashed: the same bytes elsewhere are the same label
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(copy_path, moved / copy_path.name)
    assert settings_hash(_settings(str(moved / copy_path.name))) == settings_hash(after)
    # a job planned with the old bytes refuses to label with the new ones
    with pytest.raises(LabelError):
        label(_rattled_w16(), before, tmp_path / "stale")


def test_production_allows_lammps_but_not_the_eam_alias():
    assert production("lammps", **reference_options(resolve_reference("WL.meam", "W"))).production
    with pytest.raises(ValueError, match="production"):
        production("eam")
    spec = copy.deepcopy(TINY_SPEC) | {"production": True, "labelling": {"engine": "lammps", "reference": "WL.meam"}}
    assert parse_spec(spec).labelling.reference == "WL.meam"
    with pytest.raises(SpecError) as error:
        parse_spec(copy.deepcopy(TINY_SPEC) | {"production": True, "labelling": {"engine": "lammps"}})
    assert [e.field for e in error.value.errors] == ["labelling.reference"]
    with pytest.raises(SpecError) as error:
        parse_spec(copy.deepcopy(TINY_SPEC) | {"labelling": {"engine": "gpaw", "reference": "WL.meam"}})
    assert [e.field for e in error.value.errors] == ["labelling.reference"]


def test_default_reference_lies_outside_the_model_family():
    assert default_reference("snap", "W") == "WL.meam"
    assert default_reference("mtp", "W") == "W_2940_2017_2.snap"
    assert default_reference("ace", "W") == "W_2940_2017_2.snap"
    assert reference_in_model_family("W_2940_2017_2.snap", "snap")
    assert reference_in_model_family(resolve_reference("W_2940_2017_2.snapcoeff"), "snap")
    assert not reference_in_model_family("WL.meam", "snap")
    assert not reference_in_model_family("W_2940_2017_2.snap", "mtp")
    assert reference_in_model_family({"pair_style": "hybrid/overlay zbl 4 4.8 snap", "elements": ["W"],
                                      "files": ["W_2940_2017_2.snapcoeff", "W_2940_2017_2.snapparam"],
                                      "pair_coeff": ["1 1 zbl 74 74", "* * snap W_2940_2017_2.snapcoeff "
                                                     "W_2940_2017_2.snapparam W"]}, "snap")
    for family in ("snap", "mtp"):
        assert not reference_in_model_family(default_reference(family, "W"), family)


def test_general_form_labels_like_the_named_file(tmp_path):
    general = {"pair_style": "eam/alloy", "pair_coeff": ["* * W_zhou.eam.alloy W"], "files": ["W_zhou.eam.alloy"]}
    spec = parse_spec(copy.deepcopy(TINY_SPEC) | {"labelling": {"engine": "lammps", "reference": general}})
    reference = resolve_reference(spec.labelling.reference, "W")
    assert reference.name == "W_zhou.eam.alloy" and reference.kind == "general"
    atoms = _rattled_w16()
    by_lines = label(atoms, quick("lammps", **reference_options(reference)), tmp_path / "a")
    by_name = label(atoms, _settings("W_zhou.eam.alloy"), tmp_path / "b")
    assert by_lines.energy == pytest.approx(by_name.energy, abs=1e-9)


# --------------------------------------------------------------------------- bad input names the field


def _spec_errors(reference) -> dict[str, str]:
    with pytest.raises(SpecError) as error:
        parse_spec(copy.deepcopy(TINY_SPEC) | {"labelling": {"engine": "lammps", "reference": reference}})
    return {e.field: e.message for e in error.value.errors}


def test_reference_for_another_element_names_the_field():
    from workers.stages.labelling import dft_settings

    spec = parse_spec(copy.deepcopy(TINY_SPEC) | {"labelling": {"engine": "lammps", "reference": "Ta06A.snap"}})
    with pytest.raises(ReferencePotentialError) as error:
        dft_settings(spec)
    assert error.value.field == "labelling.reference"
    assert "describes Ta, not W" in error.value.reason and "W_2940_2017_2.snap" in error.value.reason


def test_snapcoeff_without_its_snapparam_names_the_field(tmp_path):
    shutil.copy(POTENTIALS / "W_2940_2017_2.snapcoeff", tmp_path / "W_mine.snapcoeff")
    with pytest.raises(ReferencePotentialError) as error:
        resolve_reference(str(tmp_path / "W_mine.snapcoeff"), "W")
    assert error.value.field == "labelling.reference" and "W_mine.snapparam" in error.value.reason


@pytest.mark.parametrize("style", ["python 1", "kim init W", "hybrid/overlay zbl 4 4.8 python", "eam/alloy${x}",
                                   "list pairs.txt"])
def test_pair_style_outside_the_allow_list_is_refused(style):
    errors = _spec_errors({"pair_style": style, "pair_coeff": ["* * W_zhou.eam.alloy W"],
                           "files": ["W_zhou.eam.alloy"]})
    (field,) = [f for f in errors if f.endswith("pair_style")]
    assert field.startswith("labelling.reference") and ("not accepted" in errors[field] or "$" in errors[field])


@pytest.mark.parametrize("line", ["* * W_zhou.eam.alloy $W", "* * W_zhou.eam.alloy W # note",
                                  "* * W_zhou.eam.alloy W\nshell rm -rf /", "* * shell rm", "* * include evil.in",
                                  "* * W_zhou.eam.alloy 'W'", "* * W_zhou.eam.alloy W & ", "* * /etc/passwd W",
                                  "* * ../W_zhou.eam.alloy W", "* * W_zhou.eam.alloy ${W}"])
def test_pair_coeff_that_could_run_or_read_anything_is_refused(line):
    errors = _spec_errors({"pair_style": "eam/alloy", "pair_coeff": [line], "files": ["W_zhou.eam.alloy"]})
    (field,) = [f for f in errors if f.endswith("pair_coeff")]
    assert field.startswith("labelling.reference")


def test_include_file_with_other_commands_is_refused(tmp_path):
    for name in ("W_2940_2017_2.snapcoeff", "W_2940_2017_2.snapparam"):
        shutil.copy(POTENTIALS / name, tmp_path / name)
    (tmp_path / "evil.snap").write_text("shell touch pwned\npair_style snap\n"
                                        "pair_coeff * * W_2940_2017_2.snapcoeff W_2940_2017_2.snapparam W\n")
    with pytest.raises(ReferencePotentialError, match="'shell' is not accepted"):
        resolve_reference(str(tmp_path / "evil.snap"), "W")
    (tmp_path / "var.snap").write_text("variable z string ${shell}\npair_style snap\n")
    with pytest.raises(ReferencePotentialError, match="only 'variable NAME equal NUMBER'"):
        resolve_reference(str(tmp_path / "var.snap"), "W")
    assert not (tmp_path / "pwned").exists()


def test_uploaded_reference_is_resolved_by_the_server_only(tmp_path):
    """labelling knows no upload storage: an 'uploaded:' reference goes through the resolver the service passes
    (workers.stages.common.resolve_upload), and without one it is refused, naming the field."""
    reference = "uploaded:" + "a" * 64
    with pytest.raises(ReferencePotentialError) as error:
        resolve_reference(reference, "W")
    assert error.value.field == "labelling.reference" and "resolved by the server" in error.value.reason
    general = {"pair_style": "eam/alloy", "pair_coeff": ["* * W_zhou.eam.alloy W"], "files": [reference]}
    with pytest.raises(ReferencePotentialError) as error:
        resolve_reference(general, "W")
    assert error.value.field == "labelling.reference.files.0" and "resolved by the server" in error.value.reason

    stored = tmp_path / "uploads" / "W_zhou.eam.alloy"
    stored.parent.mkdir(parents=True)
    shutil.copy(POTENTIALS / "W_zhou.eam.alloy", stored)
    asked = []

    def resolver(ref: str, field: str):
        asked.append((ref, field))
        return stored

    uploaded = resolve_reference(reference, "W", resolve_upload=resolver)
    assert asked == [(reference, "labelling.reference")]
    # the same bytes under the same name: the same hashed record (and label) as the bundled file
    assert uploaded.record() == resolve_reference("W_zhou.eam.alloy", "W").record()
    assert uploaded.path_map() == {"W_zhou.eam.alloy": str(stored)}
    assert not reference_in_model_family(reference, "snap", resolve_upload=resolver)

    def missing(ref: str, field: str):
        raise ValueError(f"{field}: no uploaded file {ref}; upload it with POST /api/v1/files first")

    with pytest.raises(ReferencePotentialError) as error:
        resolve_reference(reference, "W", field="potential", resolve_upload=missing)
    assert error.value.field == "potential" and error.value.reason.startswith("no uploaded file")
