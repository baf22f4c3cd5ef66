"""Errors a session can end with, and which of them are worth a retry."""

from __future__ import annotations

RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "ModelNotReadyException",
        "ModelStreamErrorException",
        "ModelTimeoutException",
        "InternalServerException",
        "ServiceUnavailableException",
        "ConnectionError",
        "MalformedEvent",
        "Timeout",
    }
)


class SessionError(Exception):
    """A session's stream failed; ``code`` is the service's exception name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return is_retryable(self.code, self.message)


def is_retryable(code: str, message: str) -> bool:
    """Throttling, not-ready, stream errors, timeouts and the 'instability' validations retry."""
    if code in RETRYABLE_CODES:
        return True
    if code == "ValidationException":
        return "InternalErrorCode=531" in message or "System instability" in message
    return False
