"""Settings of the exports that are not training sets: voxel grids for 3D-CNN surrogates (formats.voxel)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from schemas.base import Strict


class VoxelExport(Strict):
    """How each configuration becomes a voxel grid (one channel per species of the campaign, in the spec's order)."""

    resolution: float = Field(0.5, gt=0, le=10, allow_inf_nan=False, description="voxel width, A")
    mode: Literal["occupancy", "gaussian"] = Field(
        "occupancy", description="occupancy: 1 in the voxel of each atom (a channel sums to its atom count); "
        "gaussian: a normalised Gaussian of width sigma per atom")
    sigma: float | None = Field(None, gt=0, le=10, allow_inf_nan=False,
                                description="width of the gaussian mode, A; default the resolution")
    region: Literal["cell", "inner", "outer"] = Field(
        "cell", description="cell: the periodic cell; inner: the atoms' bounding box; outer: one padded box "
        "around every configuration of the file")
    padding: float | None = Field(None, ge=0, le=100, allow_inf_nan=False,
                                  description="outer region: margin around the atoms, A; default the resolution "
                                  "(3 sigma for gaussian)")
    max_voxels: int = Field(20_000_000, ge=1, le=2_000_000_000,
                            description="cap on the grid values of one configuration (channels x voxels): raise it "
                            "for finer grids of large cells")


class DensityExport(Strict):
    """How each label's stored electron density is resampled and summarised (formats.density; the lean-CNN work)."""

    voxel_width: float = Field(0.2, gt=0, le=2, allow_inf_nan=False, description="target voxel width, A")
    size: int = Field(51, ge=1, le=201, description="the autocorrelation block kept around zero shift, voxels per "
                      "axis (odd)")
    normalise: bool = Field(True, description="the paper's normalisation: the autocorrelation of sqrt(density), "
                            "so its value at zero shift is the mean density; false: <rho(x) rho(x+r)>")
    wrap: bool = Field(False, description="a cell with fewer than `size` voxels along an axis repeats its periodic "
                       "autocorrelation (the paper, for cells under 10 A); false: refused naming size")

    @field_validator("size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"size must be odd (a block centred on zero shift), got {value}")
        return value
