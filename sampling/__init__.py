"""Sampling of defect environments with classical potentials in LAMMPS.

Modules: ``potentials`` (EAM/MEAM files), ``lammps_engine`` (a LAMMPS instance
holding an ase.Atoms), ``builders`` (starting structures), ``defects`` (CNA
classification), ``properties`` (lattice constant, cohesive energy) and
``protocols`` (MD protocols streaming snapshots).
"""
