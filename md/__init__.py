"""The LAMMPS engine and the classical potentials (EAM, MEAM, SNAP) that sampling, PCC-GCMC, reference labels
and validation run."""
