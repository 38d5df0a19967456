"""MLflow tracking, logging helpers and model registration."""
