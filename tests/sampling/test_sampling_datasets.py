"""Dataset readers (extxyz, MTP .cfg, pacemaker), the basic dataset B and the SOAP/PCA map."""

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from formats.mtp import CfgFormatError, read_cfg, write_cfg
from sampling.datasets import DatasetError, basic_dataset, detect_format, read_dataset, soap_pca_map

A_W = 3.165
W_ALL = Path("/work/shared/reference/ml-defect-modeling/W-all.pckl.gzip")


def _labelled(seed: int = 0):
    atoms = bulk("W", "bcc", a=A_W, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=seed)
    rng = np.random.default_rng(seed)
    atoms.calc = SinglePointCalculator(
        atoms,
        energy=-12.9 * len(atoms),
        forces=rng.normal(size=(len(atoms), 3)),
        stress=rng.normal(size=6) * 1e-3,
    )
    return atoms


def test_reference_w_all_pacemaker_set_loads_with_labels():
    import pandas as pd
    images = read_dataset(W_ALL)
    frame = pd.read_pickle(W_ALL, compression="gzip")
    assert len(images) == 1026
    for k in (0, 500, 1025):
        assert images[k].get_potential_energy() == pytest.approx(frame["energy"].iloc[k])
        np.testing.assert_allclose(images[k].get_forces(), np.asarray(frame["forces"].iloc[k]))
        assert images[k].info["energy_corrected"] == pytest.approx(frame["energy_corrected"].iloc[k])
    assert max(len(a) for a in images) == 140 and min(len(a) for a in images) == 2
    assert images[3].info["source"] == "W-all.pckl.gzip:3"


def test_pacemaker_from_binary_file_object():
    import pandas as pd
    images = [_labelled(0), _labelled(1)]
    frame = pd.DataFrame(
        {
            "ase_atoms": images,
            "energy": [a.get_potential_energy() for a in images],
            "forces": [a.get_forces().tolist() for a in images],
            "energy_corrected": [a.get_potential_energy() for a in images],
        }
    )
    raw = io.BytesIO()
    frame.to_pickle(raw, protocol=4)
    stream = io.BytesIO(gzip.compress(raw.getvalue()))
    loaded = read_dataset(stream, format="pacemaker")
    assert len(loaded) == 2
    np.testing.assert_allclose(loaded[1].get_forces(), images[1].get_forces())
    with pytest.raises(DatasetError, match="binary"):
        read_dataset(io.StringIO("x"), format="pacemaker")


def test_cfg_round_trip_keeps_energy_forces_stress_gamma():
    images = [_labelled(0), _labelled(1)]
    images[0].arrays["gamma"] = np.linspace(0.5, 3.0, len(images[0]))
    images[0].info["gamma_max"] = 3.0
    text = io.StringIO()
    write_cfg(text, images, species=["W"], efs_by="VASP")
    assert "AtomData:  id type       cartes_x" in text.getvalue() and "PlusStress" in text.getvalue()
    text.seek(0)
    loaded = read_dataset(text, format="cfg", species=["W"])
    for original, back in zip(images, loaded):
        np.testing.assert_allclose(back.positions, original.positions, atol=1e-7)
        np.testing.assert_allclose(back.cell[:], original.cell[:], atol=1e-9)
        assert back.get_potential_energy() == pytest.approx(original.get_potential_energy())
        np.testing.assert_allclose(back.get_forces(), original.get_forces(), atol=1e-6)
        np.testing.assert_allclose(back.get_stress(), original.get_stress(), atol=1e-7)
        assert back.info["source"] == "VASP"
    np.testing.assert_allclose(loaded[0].arrays["gamma"], images[0].arrays["gamma"], atol=1e-5)
    assert loaded[0].info["gamma_max"] == pytest.approx(3.0)


def test_cfg_cluster_without_supercell_and_errors():
    cluster = bulk("W", "bcc", a=A_W, cubic=True).repeat(2)
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    text = io.StringIO()
    write_cfg(text, cluster, species=["Mo", "W"])
    assert "Supercell" not in text.getvalue()
    assert " 1 " in text.getvalue().splitlines()[4]  # type 1 = W with species ["Mo", "W"]
    back = read_cfg(io.StringIO(text.getvalue()), species=["Mo", "W"])[0]
    assert not back.pbc.any() and back.get_chemical_symbols() == ["W"] * len(cluster)
    with pytest.raises(CfgFormatError, match="species"):
        read_cfg(io.StringIO(text.getvalue()))
    with pytest.raises(CfgFormatError, match="no END_CFG"):
        read_cfg(io.StringIO(text.getvalue().replace("END_CFG", "")), species=["Mo", "W"])
    with pytest.raises(CfgFormatError, match="line 5"):
        read_cfg(io.StringIO(text.getvalue().replace("AtomData:", "AtomData: extra")), species=["Mo", "W"])


def test_extxyz_from_text_and_binary_streams():
    from ase.io import write

    images = [_labelled(0), _labelled(2)]
    text = io.StringIO()
    write(text, images, format="extxyz")
    loaded = read_dataset(io.StringIO(text.getvalue()), format="extxyz")
    assert len(loaded) == 2
    np.testing.assert_allclose(loaded[1].get_forces(), images[1].get_forces())
    binary = io.BytesIO(text.getvalue().encode())
    binary.name = "set.extxyz"
    assert len(read_dataset(binary)) == 2
    assert detect_format("a/b/W-all.pckl.gzip") == "pacemaker" and detect_format("x.cfg") == "cfg"
    with pytest.raises(DatasetError, match="format"):
        detect_format("data.json")


@pytest.mark.parametrize("lattice,a,element", [("bcc", A_W, "W"), ("fcc", 3.615, "Cu")])
def test_basic_dataset_content(lattice, a, element):
    images = basic_dataset(element, lattice, a, seed=3)
    sources = [atoms.info["source"] for atoms in images]
    assert 15 <= len(images) <= 60
    assert max(len(atoms) for atoms in images) <= 130
    for kind in ("bulk-hydrostatic-0.020", "bulk-hydrostatic+0.020", "bulk-rattled", "vacancy", "interstitial",
                 "surface-100", "surface-110", "surface-111", "gb-sigma5-310"):
        assert any(kind in source for source in sources), kind
    nearest = a * (np.sqrt(3) / 2 if lattice == "bcc" else 1 / np.sqrt(2))
    for atoms in images:
        distances = atoms.get_all_distances(mic=True)
        np.fill_diagonal(distances, np.inf)
        assert distances.min() > 0.7 * nearest, atoms.info["source"]
    vacancy = images[sources.index("basic:vacancy")]
    assert len(vacancy) == len(bulk(element, lattice, a=a, cubic=True).repeat(3)) - 1
    again = basic_dataset(element, lattice, a, seed=3)
    np.testing.assert_array_equal(again[-1].positions, images[-1].positions)
    with pytest.raises(DatasetError, match="bcc and fcc"):
        basic_dataset("Mg", "hcp", 3.2)


def test_basic_dataset_relaxed_with_potential(w_zhou):
    images = basic_dataset("W", "bcc", A_W, potential=w_zhou)
    gb = next(a for a in images if a.info["source"] == "basic:gb-sigma5-310")
    distances = gb.get_all_distances(mic=True)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 2.3


def test_soap_pca_map_of_datasets():
    from selection.clusters import cut_clusters, pad_vacuum

    basic = [a for a in basic_dataset("W", "bcc", A_W) if "rattled" in a.info["source"]][:2]  # 2 x 54 atoms
    crystal = bulk("W", "bcc", a=A_W, cubic=True).repeat(4)
    clusters = [pad_vacuum(c.atoms) for c in cut_clusters(crystal, [0], radius=6.0)]
    result = soap_pca_map({"B": basic, "C": clusters}, max_atoms_per_dataset=60)
    assert result["soap"]["n_features"] == 858  # n_max 12, l_max 10, one species
    assert len(result["points"]["B"]) == 60 and len(result["points"]["B"][0]) == 2
    assert len(result["points"]["C"]) == len(result["owners"]["C"]) == len(clusters[0])
    assert 0 < sum(result["explained_variance_ratio"]) <= 1.0
    c_points = np.array(result["points"]["C"])
    # surface atoms of the cluster spread along PC1 far more than the bulk-like B atoms
    assert np.ptp(c_points[:, 0]) > np.ptp(np.array(result["points"]["B"])[:, 0])
