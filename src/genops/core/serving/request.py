"""What every workload's request handling shares: the error types the model server maps
to status codes, and the default cap on a request's size."""

from __future__ import annotations

DEFAULT_MAX_ROWS = 100_000


class RequestError(ValueError):
    """A request that cannot be served; the message says what is wrong (answered with 400)."""


class CannotServe(Exception):
    """A valid request the model cannot meet, e.g. a too-rare condition (answered with 422)."""
