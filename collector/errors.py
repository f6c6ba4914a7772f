"""The one expected-error type of the collector."""


class CollectorError(Exception):
    """An expected failure. The message is one line that says what went wrong and what to do next."""
