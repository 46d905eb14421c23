import pytest

from md.potentials import Potential, load_potential


@pytest.fixture(scope="session")
def w_zhou() -> Potential:
    return load_potential("W_zhou.eam.alloy")
