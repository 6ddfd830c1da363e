"""The HTTP API: a thin FastAPI layer over :mod:`matcher`."""
