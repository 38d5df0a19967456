"""The core: what every workload shares, knowing none of them (see genops.core.workload)."""
