"""A SNAP as the campaign's potential (issue #18): the W-Be SNAP of Wood et al. with its ZBL overlay, its LAMMPS
lines mapped to any atom types (absent elements, an element on several types as PCC-GCMC's core and mobile atoms)."""

from __future__ import annotations

import numpy as np
import pytest

from md.engine import LammpsSystem
from md.potentials import GeneralPotential
from sampling.builders import bulk_crystal, check_box_for_cutoff
from workers.stages.common import resolve_potential

WBE = "WBe_Wood_PRB2019.snap"


@pytest.fixture(scope="module")
def wbe() -> GeneralPotential:
    potential = resolve_potential(WBE)
    assert isinstance(potential, GeneralPotential)
    return potential


def _energy(atoms, potential, species=None) -> float:
    with LammpsSystem(atoms, potential, species=species) as system:
        return system.potential_energy()


def test_the_lines_map_to_other_types():
    lines = ("pair_style hybrid/overlay zbl 4 4.8 snap", "pair_coeff 1 1 zbl 74 74", "pair_coeff 1 2 zbl 74 4",
             "pair_coeff 2 2 zbl 4 4", "pair_coeff * * snap /p/WBe.snapcoeff /p/WBe.snapparam W Be")
    potential = GeneralPotential("WBe", "snap", (), ("W", "Be"), (), lines, 4.8)
    assert potential.pair_commands(["W", "Be"]) == list(lines)
    assert potential.pair_commands(["W"]) == [lines[0], "pair_coeff 1 1 zbl 74 74",
                                              "pair_coeff * * snap /p/WBe.snapcoeff /p/WBe.snapparam W"]
    # Be first, W on two types: every W-W and W-Be pair, the atomic numbers in the order of the types
    assert potential.pair_commands(["Be", "W", "W"]) == [
        lines[0], "pair_coeff 2 2 zbl 74 74", "pair_coeff 2 3 zbl 74 74", "pair_coeff 3 3 zbl 74 74",
        "pair_coeff 1 2 zbl 4 74", "pair_coeff 1 3 zbl 4 74", "pair_coeff 1 1 zbl 4 4",
        "pair_coeff * * snap /p/WBe.snapcoeff /p/WBe.snapparam Be W W"]
    with pytest.raises(ValueError, match="describes W, Be, not Fe"):
        potential.pair_commands(["W", "Fe"])


def test_the_wbe_snap_gives_one_energy_whatever_the_types(wbe):
    assert wbe.elements == ("W", "Be") and wbe.pair_style == "snap"
    assert wbe.cutoff == pytest.approx(4.8123)  # rcutfac 4.8123 x 2 x the W radius 0.5 (the ZBL ends at 4.8)
    atoms = bulk_crystal("W", "bcc", 3.17, (3, 3, 3))
    atoms.numbers[[0, 7, 20]] = 4  # three Be
    atoms.rattle(0.05, seed=1)
    reference = _energy(atoms, wbe)  # types W, Be
    assert _energy(atoms, wbe, species=["Be", "W"]) == pytest.approx(reference, abs=1e-8)
    assert _energy(atoms, wbe, species=["W", "Be", "W"]) == pytest.approx(reference, abs=1e-8)  # W on type 3
    pure = bulk_crystal("W", "bcc", 3.17, (3, 3, 3))
    assert _energy(pure, wbe) == pytest.approx(_energy(pure, wbe, species=["W", "Be"]), abs=1e-8)
    # the same lines as the labelling reference (engine lammps) labels with
    from labelling.reference import resolve_reference

    with LammpsSystem(atoms, resolve_reference(WBE).potential(), species=["W", "Be"]) as system:
        assert system.potential_energy() == pytest.approx(reference, abs=1e-8)
    assert -9.5 < _energy(pure, wbe) / len(pure) < -8.5  # W cohesive energy, eV/atom
    check_box_for_cutoff(bulk_crystal("W", "bcc", 3.17, (4, 4, 4)), wbe)  # 12.7 A > 2 x 4.81 A
    with pytest.raises(ValueError, match=r"box length along x is 9\.51 A, smaller than twice the potential cutoff"):
        check_box_for_cutoff(pure, wbe)
    assert np.isfinite(reference)


def test_pcc_gcmc_payload_keeps_the_snap_lines(wbe):
    from pcc_gcmc.reconstruction import potential_from_dict, potential_to_dict

    back = potential_from_dict(potential_to_dict(wbe))
    assert isinstance(back, GeneralPotential) and back == wbe
