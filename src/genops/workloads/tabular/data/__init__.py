"""Data loading (local or s3://), validation (Great Expectations), cleaning and splitting."""

from genops.core.io import DataLoadError, content_hash, read_table
from genops.workloads.tabular.data.prepare import (
    PreparedData,
    clean,
    prepare,
    read_parquet,
    split,
    write_parquet,
)
from genops.workloads.tabular.data.validate import (
    DataValidationError,
    ValidationReport,
    validate_frame,
)

__all__ = [
    "DataLoadError",
    "DataValidationError",
    "PreparedData",
    "ValidationReport",
    "clean",
    "content_hash",
    "prepare",
    "read_parquet",
    "read_table",
    "split",
    "validate_frame",
    "write_parquet",
]
