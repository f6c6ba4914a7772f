"""Run the collector's CLI in this process as a user would, for tests."""

from __future__ import annotations

from click.testing import CliRunner

from collector.base.errors import CollectorError
from collector.cli import cli


def invoke(args: list[str]) -> tuple[int, str]:
    """(exit code, output); an expected error (CollectorError, which `collector` prints as one line and exits 1
    on) comes back as (1, its message); any other exception fails the test."""
    res = CliRunner().invoke(cli, args, catch_exceptions=True)
    if isinstance(res.exception, CollectorError):
        return 1, str(res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.output
