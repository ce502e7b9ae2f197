"""Worker scripts of the benchmarks (tracking, serving), run in their own processes or venvs."""
