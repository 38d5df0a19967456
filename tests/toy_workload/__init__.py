"""A toy workload that lives entirely in this folder: a one-dimensional Gaussian generator.

It proves the layout: a workload is its config, its model, its checks and its steps in one
folder, plus one registry entry; the core's steps, tuning, registry, blessing, deployment and
model server take it without an edit anywhere else (see docs/adding-a-workload.md)."""
