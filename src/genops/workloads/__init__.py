"""The workloads, one folder each; each registers itself with a ``genops.workloads`` entry point."""
