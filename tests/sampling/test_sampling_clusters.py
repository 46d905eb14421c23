"""Cluster cut: sphere counts, unwrapped periodic images, merging rule, vacuum padding."""

import itertools

import numpy as np
import pytest
from ase.build import bulk

from selection.clusters import cut_clusters, pad_vacuum, sphere

A_W = 3.165


def _bcc_count(radius: float, a: float = A_W) -> int:
    """Lattice sites of bcc within radius of a site, by brute force over conventional cells."""
    reach = int(np.ceil(radius / a)) + 1
    count = 0
    for i, j, k in itertools.product(range(-reach, reach + 1), repeat=3):
        for basis in (0.0, 0.5):
            vector = (np.array([i, j, k]) + basis) * a
            count += vector @ vector <= radius * radius
    return count


@pytest.mark.parametrize("radius", [5.0, 8.0])
def test_sphere_of_perfect_bcc_w_has_the_lattice_count(radius):
    crystal = bulk("W", "bcc", a=A_W, cubic=True).repeat(8)
    centre = int(np.argmin(np.linalg.norm(crystal.positions - crystal.cell.sum(axis=0) / 2, axis=1)))
    cluster = cut_clusters(crystal, [centre], radius=radius)[0]
    assert len(cluster.atoms) == _bcc_count(radius)  # 137 atoms for 8 A
    distances = np.linalg.norm(cluster.atoms.positions, axis=1)
    assert distances.max() <= radius + 1e-9
    assert not cluster.atoms.pbc.any()
    assert cluster.centre_indices == [centre] and cluster.atoms.arrays["centre"].sum() == 1
    np.testing.assert_allclose(cluster.centre_position, crystal.positions[centre])


def test_periodic_images_are_unwrapped():
    expected = _bcc_count(8.0)
    crystal = bulk("W", "bcc", a=A_W, cubic=True).repeat(8)
    corner = cut_clusters(crystal, [0], radius=8.0)[0]  # atom 0 sits at the box corner
    assert len(corner.atoms) == expected
    assert (np.abs(corner.image_shifts) > 0).any()
    # source position + image shift reproduces the cluster position
    rebuilt = (crystal.positions[corner.source_indices] + corner.image_shifts @ crystal.cell[:]
               - corner.centre_position)
    np.testing.assert_allclose(rebuilt, corner.atoms.positions, atol=1e-9)

    small = bulk("W", "bcc", a=A_W, cubic=True).repeat(2)  # 6.3 A box: a source atom appears many times
    tiny = cut_clusters(small, [0], radius=8.0)[0]
    assert len(tiny.atoms) == expected
    assert np.bincount(tiny.source_indices).max() > 1
    primitive = bulk("W", "bcc", a=A_W).repeat(3)  # triclinic cell
    assert len(cut_clusters(primitive, [4], radius=8.0)[0].atoms) == expected


def test_distances_inside_a_cluster_match_the_crystal():
    crystal = bulk("W", "bcc", a=A_W, cubic=True).repeat(3)
    crystal.rattle(0.05, seed=2)
    cluster = cut_clusters(crystal, [0], radius=6.0)[0]
    indices, _shifts, vectors = sphere(crystal, crystal.positions[0], 6.0)
    np.testing.assert_array_equal(indices, cluster.source_indices)
    np.testing.assert_allclose(vectors, cluster.atoms.positions)


def test_merging_rule_and_array_carry_over():
    crystal = bulk("W", "bcc", a=A_W, cubic=True).repeat(8)
    crystal.arrays["gamma"] = np.arange(len(crystal), dtype=float)
    crystal.info["source"] = "snapshot-7"
    near = int(np.argmin(np.linalg.norm(crystal.positions - np.array([A_W, 0, 0]), axis=1)))  # 3.2 A away
    far = int(np.argmin(np.linalg.norm(crystal.positions - crystal.cell.sum(axis=0) / 2, axis=1)))
    assert [c.centre_indices for c in cut_clusters(crystal, [0, far, near], radius=8.0)] == [[0], [far], [near]]
    clusters = cut_clusters(crystal, [0, far, near], radius=8.0, merge_distance=8.0)
    assert [c.centre_indices for c in clusters] == [[0, near], [far]]
    merged = clusters[0]
    single = _bcc_count(8.0)
    assert single < len(merged.atoms) < 2 * single
    keys = set(zip(merged.source_indices.tolist(), map(tuple, merged.image_shifts.tolist())))
    assert len(keys) == len(merged.atoms)  # union: every atom once
    assert merged.atoms.arrays["centre"].sum() == 2
    assert sorted(merged.source_indices[merged.centre_cluster_indices].tolist()) == sorted([0, near])
    np.testing.assert_array_equal(merged.atoms.arrays["gamma"], merged.source_indices.astype(float))
    assert merged.source == "snapshot-7" and merged.atoms.info["source"].startswith("snapshot-7:cluster:")
    separate = cut_clusters(crystal, [0, near], radius=8.0)
    assert [len(c.atoms) for c in separate] == [single, single]
    # transitive chain: 0 - near - second (each link < radius) is one cluster
    second = int(np.argmin(np.linalg.norm(crystal.positions - np.array([2 * A_W, 0, 0]), axis=1)))
    chain = cut_clusters(crystal, [0, second, near], radius=8.0, merge_distance=4.0)
    assert len(chain) == 1 and sorted(chain[0].centre_indices) == sorted([0, near, second])
    with pytest.raises(ValueError, match="outside"):
        cut_clusters(crystal, [len(crystal)])
    with pytest.raises(ValueError, match="merge_distance"):
        cut_clusters(crystal, [0], merge_distance=-1.0)


def test_pad_vacuum_gives_the_c_variant():
    crystal = bulk("W", "bcc", a=A_W, cubic=True).repeat(6)
    cluster = cut_clusters(crystal, [0], radius=8.0)[0]
    padded = pad_vacuum(cluster.atoms, vacuum=8.0)
    assert padded.pbc.all()
    extent = np.ptp(cluster.atoms.positions, axis=0)
    np.testing.assert_allclose(padded.cell.lengths(), extent + 16.0)
    assert len(padded) == len(cluster.atoms)
    # images are separated by at least 2 x vacuum
    images = padded.positions + padded.cell[0]
    gaps = np.linalg.norm(padded.positions[:, None, :] - images[None, :, :], axis=2)
    assert gaps.min() >= 16.0 - 1e-9


def test_merged_cluster_across_the_boundary_holds_each_image_once():
    """Two centres whose minimum image crosses the cell boundary: the union has no atom twice."""
    crystal = bulk("W", "bcc", a=A_W, cubic=True).repeat(5)  # 15.8 A: the 8 A spheres overlap their images
    corner = int(np.argmin(np.linalg.norm(crystal.positions, axis=1)))  # the atom at the origin
    far = int(np.argmin(np.linalg.norm(crystal.positions - crystal.cell.lengths() + A_W, axis=1)))
    (cluster,) = cut_clusters(crystal, [corner, far], radius=8.0, merge_distance=8.0)
    positions = cluster.atoms.positions
    gaps = np.linalg.norm(positions[:, None] - positions[None], axis=2) + np.eye(len(positions)) * 1e9
    assert gaps.min() == pytest.approx(A_W * np.sqrt(3) / 2)  # nearest neighbours, no duplicates
    # the union of the two spheres, counted directly on the infinite lattice
    first = positions[cluster.atoms.arrays["centre"]][0]
    second = positions[cluster.atoms.arrays["centre"]][1]
    assert np.linalg.norm(second - first) == pytest.approx(A_W * np.sqrt(3))
    reach = range(-6, 7)
    sites = np.array([(np.array([i, j, k]) + b) * A_W for i in reach for j in reach for k in reach
                      for b in (0.0, 0.5)]) + first
    inside = (np.linalg.norm(sites - first, axis=1) <= 8.0) | (np.linalg.norm(sites - second, axis=1) <= 8.0)
    assert len(positions) == int(inside.sum())
