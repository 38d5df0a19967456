"""Serving: request validation, the pyfunc model and (later) the local REST server."""
