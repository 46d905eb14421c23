"""Names of what a campaign stores.

``StructureKind``: the stage a stored structure comes from (the ``structures.stage`` column); ``Dataset``: the
training sets of the paper (B, C, P) and on-the-fly learning (OTF), each the labelled structures of one kind.
"""

from __future__ import annotations

from enum import StrEnum


class StructureKind(StrEnum):
    SAMPLING = "sampling"  # MD snapshots of the loadings (stage 1)
    BASIC = "basic"  # dataset B: the domain-knowledge set (or the user's file)
    CLUSTER = "cluster"  # spherical clusters cut around the selected atoms (stage 3)
    CLUSTER_VACUUM = "cluster_vacuum"  # dataset C: those clusters in vacuum
    PERIODIC = "periodic"  # dataset P: PCC-GCMC cells (stage 4)
    VALIDATION = "validation"  # the study's validation configurations
    OTF_CLUSTER = "otf_cluster"  # clusters cut by on-the-fly iterations
    OTF = "otf"  # dataset OTF: the periodic cells on-the-fly learning added


class Dataset(StrEnum):
    B = "B"
    C = "C"
    P = "P"
    OTF = "OTF"

    @property
    def structures(self) -> StructureKind:
        """The kind of stored structure whose labelled members make up this dataset."""
        return _DATASET_STRUCTURES[self]


_DATASET_STRUCTURES = {Dataset.B: StructureKind.BASIC, Dataset.C: StructureKind.CLUSTER_VACUUM,
                       Dataset.P: StructureKind.PERIODIC, Dataset.OTF: StructureKind.OTF}

CAMPAIGN = "campaign"  # the name of a campaign-wide artifact (one per kind)
