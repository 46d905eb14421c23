"""All configuration, read from environment variables prefixed DG_."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "defect-genome"


class LaunchProfile(BaseModel):
    """How the DFT jobs (``labelling.launch_profile``) or the external LAMMPS runs (``sampling.lammps.launch_profile``)
    of a campaign from the network are run: defined by the operator, named by a spec.

    A spec sent over the API may not carry commands, module lines or batch-script lines of its own (they
    would run on the server or the cluster as the worker's user); it names one of these instead.
    """

    model_config = ConfigDict(extra="forbid")

    command: list[str] | None = Field(None, description="run command as argv: VASP/QE for labelling, e.g. [mpirun, "
                                      "-np, '64', vasp_std]; LAMMPS for sampling, e.g. [srun, lmp]")
    pseudo_dir: str | None = Field(None,
                                   description="VASP POTCAR root / QE pseudo_dir on the machine that runs the job")
    modules: list[str] = Field(default_factory=list, description="`module load` lines of the Slurm batch script")
    extra_lines: list[str] = Field(default_factory=list, description="verbatim lines after the #SBATCH header")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DG_", env_file=None)

    data_dir: Path = Field(default_factory=_default_data_dir, description="structures, potentials, SQLite file")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default SQLite at <data_dir>/defect-genome.sqlite"
    )
    broker_url: str | None = Field(None, description="Celery broker (redis://...); unset: run tasks in-process")
    broker_visibility_timeout: float = Field(
        6 * 3600.0,
        description="s before an unacknowledged task of a dead worker is redelivered; longer than the longest task",
    )
    task_max_retries: int = Field(3, ge=0, description="retries of a failed work item before the stage fails")
    task_retry_backoff: float = Field(10.0, ge=0, description="first retry delay, s; doubles each retry")
    local_processes: int = Field(
        2, ge=1, description="embedded default: processes running PCC-GCMC boxes side by side (the cores to use)"
    )
    lammps_threads: int | None = Field(None, ge=1, description="override of the spec's OpenMP threads per LAMMPS run")
    mlp_binary: str | None = Field(None, description="MLIP-3 `mlp` executable, for the mlip3 basis")
    # --- what a spec from the network may name and use (the CLI is not limited by these) ---
    launch_profiles: dict[str, LaunchProfile] = Field(
        default_factory=dict,
        description="named DFT launch profiles (JSON), e.g. {\"vasp64\": {\"command\": [\"mpirun\", \"-np\", \"64\", "
        "\"vasp_std\"], \"pseudo_dir\": \"/apps/potpaw_PBE\"}}; specs from the API name one in "
        "labelling.launch_profile",
    )
    allowed_server_dirs: list[Path] = Field(
        default_factory=list,
        description="server directories whose files specs from the API may name by path (JSON list); default none: "
        "only bundled names and uploaded:<sha256>",
    )
    # --- limits the server owns: a spec may lower them (its budget), never raise them ---
    max_structure_atoms: int = Field(2_000_000, ge=1, description="most atoms in one structure a campaign builds")
    max_md_atom_steps: int = Field(
        10**11, ge=1, description="most atoms x MD steps of one campaign (minimisation iterations counted as steps)"
    )
    max_snapshots: int = Field(10_000, ge=1, description="most snapshots one campaign stores")
    max_dft_jobs: int = Field(1000, ge=1, description="most DFT calculations of one campaign")
    spec_check_timeout: float = Field(
        60.0, gt=0, description="s a submitted spec's checks (potential, structures) may take before it is refused"
    )
    # --- work-item leases ---
    lease_timeout: float = Field(
        60.0, gt=0, description="s without a heartbeat after which a running work item is taken as lost and requeued"
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'defect-genome.sqlite'}"

    @property
    def in_process(self) -> bool:
        return not self.broker_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
