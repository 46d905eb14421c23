"""Base model of every spec section."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

# C0 and C1 control characters (NUL, newline, escape, ...) and lone UTF-16 surrogates (from JSON "\ud800"):
# no name, path, command or batch line of a spec needs them; NUL cannot be stored by PostgreSQL, surrogates
# cannot be encoded as UTF-8, and a newline in a Slurm line or a command would start another one.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def control_character(value: Any) -> str | None:
    """The first control character in ``value`` (a string, or lists/tuples of them), else None."""
    if isinstance(value, str):
        match = CONTROL_CHARACTERS.search(value)
        return match.group() if match else None
    if isinstance(value, (list, tuple)):
        for item in value:
            found = control_character(item)
            if found is not None:
                return found
    return None


class Strict(BaseModel):
    # Unknown keys are typos in a hand-written YAML file: reject them, naming the key.
    # inf/nan are no physical value of any field (and JSON columns cannot store them).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        found = control_character(value)
        if found is not None:
            raise ValueError(f"control character {found!r} (U+{ord(found):04X}) is not allowed in text; "
                             "use printable characters only")
        return value
