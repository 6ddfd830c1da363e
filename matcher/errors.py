"""Errors a user can cause, each with a stable code and a Chinese message."""
from __future__ import annotations

from embeddings.encoder_service import EncoderUnavailable, EncodingFailed

__all__ = ["DomainError", "NotFound", "Conflict", "Invalid", "EncoderUnavailable", "EncodingFailed"]


class DomainError(Exception):
    """A request the domain refuses. ``status`` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, code: str, message: str, *, status: int | None = None, details: object = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        if status is not None:
            self.status = status


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class Invalid(DomainError):
    status = 422
