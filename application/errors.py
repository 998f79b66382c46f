"""Errors the use cases raise or expect from their ports."""

from collections.abc import Mapping

from domain.runs import SourceCounters


class ApplicationError(Exception):
    """Base of the application's errors."""


class SourceUnavailable(ApplicationError):
    """A source cannot be read this run (missing file, unreachable host, refused key).

    The message is shown to operators: it must name the source and never carry a secret.
    `counters` holds the requests, retries and waits spent on the attempt, so they are recorded.
    """

    def __init__(
        self, message: str, counters: SourceCounters | None = None, responses: Mapping[str, int] | None = None
    ) -> None:
        super().__init__(message)
        self.counters = counters or SourceCounters()
        self.responses = dict(responses or {})


class InjectedFailure(ApplicationError):
    """Raised on purpose by failure injection (a drill): the run stops as if it crashed."""


class Interrupted(ApplicationError):
    """The process was asked to stop: the run ends after its last committed batch."""


class NotFound(ApplicationError):
    """The thing asked for does not exist."""


class InvalidQuery(ApplicationError):
    """A query asks for more than a use case answers (too many assets at once): answered 400 by
    the API and exit code 2 by the command line, with this message."""


class FileRefused(SourceUnavailable):
    """A file the reader cannot understand is refused whole: the message says what is missing
    and how to supply it; no row of it is read or quarantined."""


class SourceSkipped(ApplicationError):
    """There is nothing to read (a CSV glob that matches no file): the source is `skipped`,
    with this message as a warning, and the run is not a silent success."""


class StoreUnavailable(ApplicationError):
    """The database cannot be reached, or gave no working connection in time: a fault outside
    the process, answered 503 by the API and exit code 3 by the command line, never a crash."""


class StoreTooSlow(StoreUnavailable):
    """A query ran past the statement timeout and was cancelled."""


class StoreConflict(ApplicationError):
    """The database aborted a transaction that conflicted with another one (a deadlock, a
    serialization failure): the database is there; the work may simply be tried again."""


class RangeRefused(ApplicationError):
    """A provider will not give this range (its plan reaches only so far back, or it does not
    know the pair): the window is settled `refused` with this message, which names the limit
    and the setting or plan that changes it; the rest of the backfill goes on."""
