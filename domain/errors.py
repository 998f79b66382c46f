"""Errors the domain rules raise."""


class DomainError(Exception):
    """Base of the domain's errors."""


class InvalidValue(DomainError):
    """A value is present but cannot be read as the type its field needs."""


class InvalidRecord(DomainError):
    """A raw record cannot become a unified record; the message is the quarantine reason."""
