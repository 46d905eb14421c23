from pathlib import Path

import pytest

from md.potentials import (
    PotentialError,
    bundled_potentials_dir,
    bundled_potentials_for,
    check_element,
    load_potential,
)


def test_setfl_potential_reads_elements_and_writes_pair_commands(w_zhou):
    assert w_zhou.pair_style == "eam/alloy"
    assert w_zhou.elements == ("W",)
    assert w_zhou.files == (bundled_potentials_dir() / "W_zhou.eam.alloy",)
    style, coeff = w_zhou.pair_commands(["W"])
    assert style == "pair_style eam/alloy"
    assert coeff.startswith("pair_coeff * * ") and coeff.endswith("W_zhou.eam.alloy W")


def test_funcfl_and_fs_elements_come_from_headers():
    assert load_potential("Ni_u3.eam").elements == ("Ni",)  # atomic number 28 on line 2
    fs = load_potential("AlFe_mm.eam.fs")
    assert (fs.pair_style, fs.elements) == ("eam/fs", ("Al", "Fe"))
    assert fs.pair_commands(["Fe", "Al"])[1].endswith("AlFe_mm.eam.fs Fe Al")


def test_w_potential_checked_as_fe_names_fe_and_a_fe_potential(w_zhou):
    with pytest.raises(PotentialError) as error:
        check_element(w_zhou, "Fe")
    message = str(error.value)
    assert "W_zhou.eam.alloy" in message and "not Fe" in message and "Fe_mm.eam.fs" in message
    with pytest.raises(PotentialError, match="Fe"):
        w_zhou.pair_commands(["Fe"])


def test_meam_parameter_file_uses_its_library_entry():
    meam = load_potential("WL.meam")
    assert meam.pair_style == "meam" and meam.elements == ("W",)
    # WL.meam holds the Lee-Baskes 2NN W parameters; they go with library entry 'WL', not 'W'.
    assert meam.meam_labels == ("WL",)
    assert [p.name for p in meam.files] == ["library.meam", "WL.meam"]
    coeff = meam.pair_commands(["W"])[1].split()
    assert coeff[3].endswith("library.meam") and coeff[4] == "WL"
    assert coeff[5].endswith("WL.meam") and coeff[6] == "WL"


def test_meam_library_needs_entries_and_user_library_is_found(tmp_path):
    with pytest.raises(PotentialError, match="meam_elements"):
        load_potential("library.meam")
    assert load_potential("library.meam", meam_elements=["W"]).pair_commands(["W"])[1].endswith("W NULL W")
    bundled = bundled_potentials_dir()
    (tmp_path / "library.meam").write_text((bundled / "library.meam").read_text())
    (tmp_path / "mine.meam").write_text((bundled / "WL.meam").read_text())
    mine = load_potential(tmp_path / "mine.meam", meam_elements=["WL"])
    assert mine.files == (tmp_path / "library.meam", tmp_path / "mine.meam") and mine.elements == ("W",)


def test_unknown_name_lists_bundled_potentials_of_the_element():
    with pytest.raises(PotentialError) as error:
        load_potential("W_nonexistent.eam.alloy")
    assert "W_zhou.eam.alloy" in str(error.value) and "WL.meam" in str(error.value)


def test_unreadable_header_names_file_and_line(tmp_path: Path):
    bad = tmp_path / "broken.eam.alloy"
    bad.write_text("comment\ncomment\ncomment\nW 1\n")
    with pytest.raises(PotentialError, match=r"broken\.eam\.alloy, line 4"):
        load_potential(bad)
    funcfl = tmp_path / "broken.eam"
    funcfl.write_text("comment\nnot a header\n")
    with pytest.raises(PotentialError, match=r"broken\.eam, line 2"):
        load_potential(funcfl)
    with pytest.raises(PotentialError, match="pair_style"):
        (tmp_path / "mystery.pot").write_text("x\n")
        load_potential(tmp_path / "mystery.pot")


def test_bundled_potentials_for_element():
    w = bundled_potentials_for("W")
    assert w[:2] == ["W_zhou.eam.alloy", "WL.meam"]
    fe = bundled_potentials_for("Fe")
    assert fe[0] == "Fe_mm.eam.fs" and "AlFe_mm.eam.fs" in fe
    assert bundled_potentials_for("Og") == []
