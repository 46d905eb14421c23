"""Selection (paper stages 2-3): linear bases, MaxVol / D-optimality, the extrapolation grade gamma, cluster cut."""
