"""Base model of every spec section."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    # Unknown keys are typos in a hand-written YAML file: reject them, naming the key.
    model_config = ConfigDict(extra="forbid")
