"""A real Airflow on this machine, for ``make demo``, the integration tests and the benchmarks."""
