"""Where a job runs: the Slurm batch settings shared by labelling and external-LAMMPS sampling."""

from __future__ import annotations

from pydantic import Field

from schemas.base import Strict


class SlurmParams(Strict):
    # one word each: they become #SBATCH lines, so a newline or a space must not reach the script
    account: str | None = Field(None, pattern=r"^[A-Za-z0-9_.+-]{1,64}$", description="sbatch --account")
    partition: str | None = Field(None, pattern=r"^[A-Za-z0-9_.,+-]{1,128}$", description="sbatch --partition")
    time: str = Field("01:00:00", pattern=r"^(\d+-)?\d{1,3}:\d{2}:\d{2}$", description="walltime per job, HH:MM:SS")
    nodes: int = Field(1, ge=1)
    ntasks: int = Field(1, ge=1, description="MPI ranks per job")
    cpus_per_task: int | None = Field(None, ge=1)
    modules: list[str] = Field(default_factory=list, description="`module load` lines of the batch script")
    extra_lines: list[str] = Field(default_factory=list, description="verbatim lines after the #SBATCH header")
    poll_interval: float = Field(30.0, gt=0, description="s between squeue/sacct polls")
