"""Failure classes of labelling runs and the retry policy.

Classes: ``scf_not_converged``, ``walltime``, ``node_failure``, ``parse_error``, ``unknown``.

Policy (:func:`next_settings`), ``attempt`` = attempts made so far (1 after the first failure):

- scf_not_converged: attempt 1 -> stronger (smaller) density mixing and twice the SCF steps
  (same settings hash: mixing is not hashed); attempt 2 -> additionally twice the smearing width
  (a different label: new settings hash); then give up.
- walltime: resubmit with twice the walltime up to ``RetryPolicy.max_walltime`` when the job had a
  walltime and ``extend_walltime`` is on; otherwise (nothing to extend) give up.
- node_failure: resubmit unchanged, up to ``RetryPolicy.max_attempts['node_failure']`` attempts.
- parse_error, unknown: no retry.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .result import ERROR_FILE, RunOutcome
from .settings import DFTSettings

FAILURE_CLASSES = ("scf_not_converged", "walltime", "node_failure", "parse_error", "unknown")

# engine default mixing (first retry halves/quarters these)
# engines with an SCF (lammps and eam have none)
_DEFAULT_BETA = {"gpaw": 0.05, "vasp": 0.4, "espresso": 0.7}
_DEFAULT_STEPS = {"gpaw": 333, "vasp": 60, "espresso": 100}

# slurmstepd's lines in the job's output: "*** JOB 42 ON node01 CANCELLED AT ... DUE TO TIME LIMIT ***"
_WALLTIME_TEXT = re.compile(r"DUE TO TIME LIMIT")
_NODE_TEXT = re.compile(r"DUE TO NODE FAILURE")
_SCF_TEXT = {
    "gpaw": re.compile(r"KohnShamConvergenceError|Did not converge"),
    "vasp": re.compile(r"EDIFF was not reached|\(unconverged\)"),
    "espresso": re.compile(r"convergence NOT achieved"),
}


def _read(path: Path, limit: int = 2_000_000) -> str:
    try:
        with open(path, errors="replace") as handle:
            return handle.read(limit)
    except OSError:
        return ""


def _tail(path: Path, size: int = 200_000) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def classify_failure(
    workdir: Path | None = None,
    outcome: RunOutcome | None = None,
    *,
    engine: str | None = None,
    text: str | None = None,
) -> str:
    """Failure class of a run from the launcher's outcome, ``error.json`` and the engine's output.

    ``outcome.state`` comes first (Slurm/sacct TIMEOUT, DEADLINE -> walltime; NODE_FAIL,
    BOOT_FAIL -> node_failure); then the runner's ``error.json``; then the engine's output and
    log texts (GPAW "Did not converge"/KohnShamConvergenceError, VASP "EDIFF was not reached" or
    NELM steps without "EDIFF is reached", QE "convergence NOT achieved", Slurm's "CANCELLED ... DUE
    TO TIME LIMIT"/"DUE TO NODE FAILURE"); a run that exited 0 but left no readable output is a
    parse_error.
    """
    state = (outcome.state if outcome else "").upper()
    if state in ("TIMEOUT", "DEADLINE"):
        return "walltime"
    if state in ("NODE_FAIL", "BOOT_FAIL"):
        return "node_failure"

    texts = [text or ""]
    job_engine = engine
    if workdir is not None:
        workdir = Path(workdir)
        error_file = workdir / ERROR_FILE
        if error_file.is_file():
            try:
                error = json.loads(error_file.read_text())
                if error.get("class") in FAILURE_CLASSES and error.get("class") != "unknown":
                    return error["class"]
                texts.append(str(error.get("message", "")) + "\n" + str(error.get("exception", "")))
            except ValueError:
                pass
        if job_engine is None and (workdir / "job.json").is_file():
            try:
                job_engine = json.loads((workdir / "job.json").read_text()).get("engine")
            except ValueError:
                pass
        for name in ("run.log", "gpaw.txt", "vasp.out", "espresso.pwo", "OUTCAR", "slurm.out"):
            texts.append(_tail(workdir / name))
    joined = "\n".join(texts)

    if _WALLTIME_TEXT.search(joined):
        return "walltime"
    if _NODE_TEXT.search(joined):
        return "node_failure"
    patterns = [_SCF_TEXT[job_engine]] if job_engine in _SCF_TEXT else list(_SCF_TEXT.values())
    if any(p.search(joined) for p in patterns):
        return "scf_not_converged"
    if workdir is not None and job_engine == "vasp" and _vasp_nelm_exhausted(workdir):
        return "scf_not_converged"
    if state == "COMPLETED" or (outcome is not None and outcome.returncode == 0):
        return "parse_error"
    return "unknown"


def _vasp_nelm_exhausted(workdir: Path) -> bool:
    """NELM SCF steps in the last ionic step without "EDIFF is reached".

    VASP 5 prints no "unconverged" line and vasprun.xml never says: OUTCAR's iteration count
    against its NELM, else vasprun.xml's <scstep> count of the last calculation against NELM.
    """
    workdir = Path(workdir)
    text = _read(workdir / "OUTCAR")
    if text:
        if "aborting loop because EDIFF is reached" in text:
            return False
        nelm = re.search(r"NELM\s*=\s*(\d+)", text)
        steps = re.findall(r"-+ Iteration\s+\d+\(\s*(\d+)\)", text)
        if nelm and steps:
            return int(steps[-1]) >= int(nelm.group(1))
    xml = workdir / "vasprun.xml"
    if not xml.is_file():
        return False
    text = xml.read_text(errors="replace")
    nelm = re.search(r'<i type="int" name="NELM">\s*(\d+)\s*</i>', text)
    last = text.rfind("<calculation>")
    return bool(nelm and last >= 0 and text[last:].count("<scstep>") >= int(nelm.group(1)))


# --------------------------------------------------------------------------- retry policy


def _hours(walltime: str) -> float:
    """Slurm time 'D-HH:MM:SS', 'HH:MM:SS', 'MM:SS' or 'MM' -> hours."""
    days = 0
    if "-" in walltime:
        day, walltime = walltime.split("-", 1)
        days = int(day)
    parts = [int(p) for p in walltime.split(":")]
    if len(parts) == 1:
        h, m, s = 0, parts[0], 0
    elif len(parts) == 2:
        h, m, s = 0, parts[0], parts[1]
    else:
        h, m, s = parts[-3:]
    return days * 24 + h + m / 60 + s / 3600


def _format_hours(hours: float) -> str:
    seconds = round(hours * 3600)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: dict[str, int] = field(
        default_factory=lambda: {
            "scf_not_converged": 3,
            "walltime": 2,
            "node_failure": 3,
            "parse_error": 1,
            "unknown": 1,
        }
    )
    extend_walltime: bool = True
    walltime_factor: float = 2.0
    max_walltime: str = "48:00:00"
    smearing_factor: float = 2.0
    max_sigma: float = 0.3  # eV


DEFAULT_POLICY = RetryPolicy()


def next_settings(
    settings: DFTSettings, failure: str, attempt: int, policy: RetryPolicy = DEFAULT_POLICY
) -> DFTSettings | None:
    """Settings for the next attempt after ``attempt`` attempts ended in ``failure``; None: give up."""
    if failure not in FAILURE_CLASSES:
        raise ValueError(f"unknown failure class {failure!r}; known: {', '.join(FAILURE_CLASSES)}")
    if attempt >= policy.max_attempts.get(failure, 1):
        return None
    if failure == "node_failure":
        return settings
    if failure == "walltime":
        if not (policy.extend_walltime and settings.walltime):
            return None
        longer = min(_hours(settings.walltime) * policy.walltime_factor, _hours(policy.max_walltime))
        if longer <= _hours(settings.walltime):
            return None
        return settings.replace(walltime=_format_hours(longer))
    if failure == "scf_not_converged":
        if settings.engine in ("lammps", "eam"):  # no SCF
            return None
        beta = settings.mixing_beta or _DEFAULT_BETA[settings.engine]
        steps = settings.max_scf_steps or _DEFAULT_STEPS[settings.engine]
        stronger = settings.replace(
            mixing_beta=round(beta / 2.0, 6),
            mixing_history=max(settings.mixing_history or 0, 8),
            max_scf_steps=int(steps * 2),
        )
        if attempt >= 2:
            sigma = min(settings.sigma * policy.smearing_factor, policy.max_sigma)
            if sigma <= settings.sigma:
                return None
            stronger = stronger.replace(sigma=sigma)
        return stronger
    return None  # parse_error, unknown
