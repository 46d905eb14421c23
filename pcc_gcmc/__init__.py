"""PCC-GCMC: periodic reconstruction of defect clusters by grand canonical Monte Carlo (issue 5)."""
