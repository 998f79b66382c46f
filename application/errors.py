"""Errors the use cases raise or expect from their ports."""


class ApplicationError(Exception):
    """Base of the application's errors."""


class SourceUnavailable(ApplicationError):
    """A source cannot be read this run (missing file, unreachable host, refused key).

    The message is shown to operators: it must name the source and never carry a secret.
    """


class InjectedFailure(ApplicationError):
    """Raised on purpose by failure injection (`ETL_FAIL_AFTER`)."""


class NotFound(ApplicationError):
    """The thing asked for does not exist."""
