"""Pipeline steps as plain functions over paths (called by the KFP components)."""
