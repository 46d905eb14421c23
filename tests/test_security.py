"""Issue 15's exploits replayed over REST, as an ordinary token holder: nothing from the network is
executed or unpickled, files are reachable only by reference, errors never show a server path."""

from __future__ import annotations

import copy
import gzip
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import TINY_SPEC, write_bulk_training_set


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class _RunsCommand:
    """A pickle whose loading runs a shell command (what `pd.read_pickle` of an upload used to do)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _payload(marker: Path) -> bytes:
    return gzip.compress(pickle.dumps(_RunsCommand(f"touch {marker}"), protocol=4))


def _fields(response) -> dict[str, str]:
    return {entry["field"]: entry["message"] for entry in response.json()["detail"]}


def _no_server_path(response, env) -> None:
    text = response.text
    assert env["DG_DATA_DIR"] not in text and "/etc/" not in text and "/proc/" not in text, text
    assert sys.prefix not in text and str(Path.home()) not in text, text


def test_pickle_upload_is_refused_and_never_unpickled(client, tokens, env, tmp_path):
    marker = tmp_path / "pwned-upload"
    response = client.post("/api/v1/files", headers=_auth(tokens["bob"]),
                           files={"file": ("train.pckl.gzip", _payload(marker))})
    assert response.status_code == 422, response.text
    message = _fields(response)["file"]
    assert "extxyz" in message and "defect-genome convert" in message
    # the same bytes under an innocent name: recognised by content
    response = client.post("/api/v1/files", headers=_auth(tokens["bob"]),
                           files={"file": ("train.extxyz", _payload(marker))})
    assert response.status_code == 422 and "pickle" in _fields(response)["file"]
    assert not marker.exists()
    uploads = Path(env["DG_DATA_DIR"]) / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_stored_pickle_referenced_by_a_campaign_is_refused_before_it_runs(client, tokens, env, tmp_path):
    """A pickle already in the uploads (e.g. stored by an older version) is refused by the spec check, and
    the worker-side reader refuses it too."""
    import hashlib

    from workers.stages.common import read_training_set

    marker = tmp_path / "pwned-campaign"
    payload = _payload(marker)
    sha256 = hashlib.sha256(payload).hexdigest()
    stored = Path(env["DG_DATA_DIR"]) / "uploads" / sha256
    stored.mkdir(parents=True)
    (stored / "train.pckl.gzip").write_bytes(payload)
    spec = copy.deepcopy(TINY_SPEC) | {"selection": {"training_set": f"uploaded:{sha256}"}}
    response = client.post("/api/v1/campaigns", json=spec, headers=_auth(tokens["bob"]))
    assert response.status_code == 422, response.text
    assert "defect-genome convert" in _fields(response)["selection.training_set"]
    _no_server_path(response, env)
    with pytest.raises(ValueError, match="not read from untrusted files"):
        read_training_set(f"uploaded:{sha256}")
    assert not marker.exists()


def test_the_same_pickle_loads_from_the_command_line(tmp_path):
    """The CLI keeps full control: a pacemaker pickle the user trusts converts to extxyz, labels kept."""
    import ase.io
    import pandas as pd
    from ase.build import bulk

    atoms = bulk("W", "bcc", a=3.165, cubic=True).repeat((2, 2, 2))
    forces = [[0.1 * i, 0.0, -0.05 * i] for i in range(len(atoms))]
    frame = pd.DataFrame({"ase_atoms": [atoms], "energy": [-140.125], "forces": [forces]})
    source = tmp_path / "B.pckl.gzip"
    frame.to_pickle(source, compression="gzip", protocol=4)
    done = subprocess.run([sys.executable, "-m", "app.cli", "convert", str(source), str(tmp_path / "B.extxyz")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["configurations"] == 1
    (converted,) = ase.io.read(tmp_path / "B.extxyz", ":")
    assert converted.get_potential_energy() == pytest.approx(-140.125, abs=1e-9)
    assert converted.get_forces()[3] == pytest.approx([0.3, 0.0, -0.15])


def test_commands_modules_and_batch_lines_in_a_spec_are_refused(client, tokens, env, tmp_path):
    marker = tmp_path / "pwned-command"
    pseudo = tmp_path / "pseudo"
    pseudo.mkdir()
    spec = copy.deepcopy(TINY_SPEC) | {
        "stop_after": None,
        "labelling": {
            "engine": "espresso", "pseudo_dir": str(pseudo), "command": ["/bin/sh", "-c", f"id > {marker}"],
            "launcher": "slurm",
            "slurm": {"modules": [f"vasp; touch {marker}"], "extra_lines": [f"touch {marker}"]},
        },
    }
    spec["sampling"] = {**spec["sampling"], "lammps": {
        "command": ["/bin/sh", "-c", f"id > {marker}"], "launcher": "slurm",
        "slurm": {"modules": [f"lammps; touch {marker}"], "extra_lines": [f"touch {marker}"]}}}
    response = client.post("/api/v1/campaigns", json=spec, headers=_auth(tokens["bob"]))
    assert response.status_code == 422, response.text
    fields = _fields(response)
    for field in ("labelling.command", "labelling.pseudo_dir", "labelling.slurm.modules",
                  "labelling.slurm.extra_lines", "sampling.lammps.command", "sampling.lammps.slurm.modules",
                  "sampling.lammps.slurm.extra_lines"):
        assert "launch_profile" in fields[field], fields
    _no_server_path(response, env)
    # an account with a newline would add a line to the batch script
    spec["labelling"] = {"engine": "espresso", "launcher": "slurm", "slurm": {"account": "x\ntouch /tmp/y"}}
    response = client.post("/api/v1/campaigns", json=spec, headers=_auth(tokens["bob"]))
    assert response.status_code == 422 and "labelling.slurm.account" in _fields(response)
    time.sleep(1.0)
    assert not marker.exists()


@pytest.mark.parametrize("reference", ["uploaded:../structures/cd", "uploaded:../../etc", "/etc/passwd",
                                       "/proc/self/environ", "../../../../etc/passwd", "uploaded:" + "0" * 64])
@pytest.mark.parametrize("field", ["potential", "selection.training_set", "selection.basis_potential"])
def test_file_references_outside_the_uploads_are_refused(client, tokens, env, reference, field):
    spec = copy.deepcopy(TINY_SPEC)
    if field == "potential":
        spec["potential"] = reference
    elif field == "selection.training_set":
        spec["selection"] = {"training_set": reference}
    else:
        spec["selection"] = {"basis": "mtp", "basis_potential": reference}
    response = client.post("/api/v1/campaigns", json=spec, headers=_auth(tokens["alice"]))
    assert response.status_code == 422, response.text
    assert field in _fields(response), response.text
    _no_server_path(response, env)


def test_launch_profiles_and_allowed_server_dirs(client, tokens, env, monkeypatch, tmp_path):
    """What an operator opens up: a named launch profile, and paths inside an allowed directory."""
    from core.settings import get_settings
    from schemas import parse_spec
    from workers.stages.labelling import dft_settings, launcher_for

    allowed = tmp_path / "shared-sets"
    allowed.mkdir()
    write_bulk_training_set(allowed / "bulk.extxyz", n_rattled=1)
    (tmp_path / "elsewhere.extxyz").write_bytes((allowed / "bulk.extxyz").read_bytes())
    (allowed / "link.extxyz").symlink_to(tmp_path / "elsewhere.extxyz")  # resolves outside: refused
    monkeypatch.setenv("DG_ALLOWED_SERVER_DIRS", json.dumps([str(allowed)]))
    monkeypatch.setenv("DG_LAUNCH_PROFILES", json.dumps({
        "qe-4": {"command": ["mpirun", "-np", "4", "pw.x"], "pseudo_dir": "/apps/pseudo",
                 "modules": ["espresso/7.2"], "extra_lines": ["#SBATCH --qos=normal"]}}))
    get_settings.cache_clear()

    spec = copy.deepcopy(TINY_SPEC) | {
        "stop_after": None, "labelling": {"engine": "espresso", "launch_profile": "qe-4", "launcher": "slurm"}}
    parsed = parse_spec(spec)
    settings = dft_settings(parsed)
    assert settings.command == ("mpirun", "-np", "4", "pw.x") and settings.pseudo_dir == "/apps/pseudo"
    launcher = launcher_for(parsed)
    assert list(launcher.modules) == ["espresso/7.2"] and list(launcher.extra_lines) == ["#SBATCH --qos=normal"]

    unknown = spec | {"labelling": {"engine": "espresso", "launch_profile": "vasp-9000"}}
    response = client.post("/api/v1/campaigns", json=unknown, headers=_auth(tokens["alice"]))
    assert response.status_code == 422 and "qe-4" in _fields(response)["labelling.launch_profile"]
    unknown = spec | {"sampling": {**spec["sampling"], "lammps": {"launch_profile": "lmp-9000"}}}
    response = client.post("/api/v1/campaigns", json=unknown, headers=_auth(tokens["alice"]))
    assert response.status_code == 422 and "qe-4" in _fields(response)["sampling.lammps.launch_profile"]

    linked = copy.deepcopy(TINY_SPEC) | {"selection": {"training_set": str(allowed / "link.extxyz")}}
    response = client.post("/api/v1/campaigns", json=linked, headers=_auth(tokens["alice"]))
    assert response.status_code == 422 and "selection.training_set" in _fields(response)

    inside = copy.deepcopy(TINY_SPEC) | {"stop_after": "sampling",
                                        "selection": {"training_set": str(allowed / "bulk.extxyz")}}
    response = client.post("/api/v1/campaigns", json=inside, headers=_auth(tokens["alice"]))
    assert response.status_code == 202, response.text


def test_errors_of_failed_work_never_show_server_directories(client, tokens, env):
    """A worker's exception text (a LAMMPS or reader message) may name the data directory or the
    installation: the API and the dashboard show them by what they are."""
    from app.auth import get_or_create_user
    from app.services import submit_campaign
    from core.models import StageRun, Status
    from core.session import session_scope
    from schemas import parse_spec

    data_dir = env["DG_DATA_DIR"]
    with session_scope() as session:
        campaign = submit_campaign(session, get_or_create_user(session, "alice"),
                                   parse_spec(copy.deepcopy(TINY_SPEC)), dispatch=lambda refs: None)
        message = f"ValueError: cannot read {data_dir}/uploads/{'a' * 64}/bad.eam (from {sys.prefix}/lib/x.py)"
        campaign.status, campaign.error = Status.failed, message
        session.get(StageRun, campaign.stages[0].id).error = message
        campaign_id = campaign.id
    response = client.get(f"/api/v1/campaigns/{campaign_id}", headers=_auth(tokens["alice"]))
    assert response.status_code == 200
    body = response.json()
    assert body["error"] == f"ValueError: cannot read <data dir>/uploads/{'a' * 64}/bad.eam (from <install>/lib/x.py)"
    assert body["stages"][0]["error"] == body["error"]
    _no_server_path(response, env)
