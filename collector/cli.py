"""The `collector` command line: parse, call the core, print. No logic lives here."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from collector import __version__
from collector.errors import CollectorError
from collector.records import store

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


@click.group()
@click.version_option(__version__, prog_name="collector")
def cli() -> None:
    """Measure llama.cpp speed and quality as versioned YAML records, and check them."""


@cli.command()
@click.argument("data_dir", default="data", type=click.Path(path_type=Path))
def validate(data_dir: Path) -> None:
    """Check every record under DATA_DIR (default: data/); names each bad file."""
    if not data_dir.exists():
        raise CollectorError(f"{data_dir}: no such directory; pass the folder that holds records/")
    total, bad = 0, 0
    for path, rec in store.iter_records(data_dir):
        total += 1
        if isinstance(rec, CollectorError):
            bad += 1
            err_console.print(f"[red]invalid[/red] {rec}", markup=True, soft_wrap=True)
    if bad:
        raise CollectorError(f"{bad} of {total} record files under {data_dir} are invalid (listed above)")
    out_console.print(f"{total} records valid under {data_dir}")


def main() -> None:
    """Console-script entry point: expected errors print one line and exit 1, without a traceback."""
    try:
        cli.main(standalone_mode=False)
    except CollectorError as exc:
        err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
        sys.exit(1)
    except click.exceptions.Abort:
        err_console.print("aborted", markup=False)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
