"""The run pipeline: the preflight plan, the runner, folder inversion and the fingerprints that keep resumed work honest."""
