import pytest

from md.potentials import Potential, load_potential
from sampling.builders import relax_hcp


@pytest.fixture(scope="session")
def w_zhou() -> Potential:
    return load_potential("W_zhou.eam.alloy")


@pytest.fixture(scope="session")
def nial() -> Potential:
    """B2 NiAl (Angelo, Moody & Baskes)."""
    return load_potential("NiAlH_jea.eam.alloy")


@pytest.fixture(scope="session")
def cuni() -> Potential:
    """Cu-Ni solid solutions (Onat & Durukanoglu)."""
    return load_potential("CuNi.eam.alloy")


@pytest.fixture(scope="session")
def mg() -> Potential:
    return load_potential("Mg_mm.eam.fs")


@pytest.fixture(scope="session")
def mg_relaxed(mg: Potential) -> tuple[float, float, float]:
    """Mg_mm's relaxed hcp: (a A, c/a, energy eV/atom)."""
    return relax_hcp(mg, "Mg", 3.2, 1.63)
