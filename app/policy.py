"""What a spec sent over the network may name: checked before anything is built or stored.

The CLI runs specs with full control (paths, commands); the REST API runs them for any token holder,
so files are named only by reference (bundled names, ``uploaded:<sha256>``, or paths inside the
operator's ``DG_ALLOWED_SERVER_DIRS``) and DFT commands come only from the operator's launch profiles.
"""

from __future__ import annotations

from schemas import CampaignSpec, FieldError, SpecError


def check_network_spec(spec: CampaignSpec) -> None:
    """Raise SpecError (one entry per field) for anything a spec from the network may not use."""
    errors: list[FieldError] = []
    if errors:
        raise SpecError(errors)
