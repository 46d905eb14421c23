"""All configuration, read from environment variables prefixed DG_."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "defect-genome"


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
