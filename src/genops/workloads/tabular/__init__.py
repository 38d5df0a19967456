"""Synthetic tables: data spec and validation, TVAE/CTGAN synthesizers, bias gates, fidelity,
utility and privacy evaluation of the ``tabular-synth`` pipeline."""
