"""Structure metrics, benchmarks and (to come) the comparison report and claims audit."""
