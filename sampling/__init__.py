"""Sampling (paper stage 1): starting structures, loading protocols in LAMMPS, defect detection (CNA).

Modules: ``builders`` and ``structures`` (starting structures), ``protocols`` (MD loadings streaming
snapshots), ``defects`` (adaptive CNA), ``datasets`` (dataset B and the SOAP map).
File formats of training sets are in :mod:`formats`.
The LAMMPS engine and the classical potentials are in :mod:`md`.
"""
