"""KFP pipeline factories, their configs, and compile / local-run / submit entry points."""
