"""Synthetic tables: data spec and validation, TVAE/CTGAN/diffusion synthesizers, bias gates,
fidelity, utility and privacy evaluation of the ``tabular-synth`` pipeline."""
