"""Every option of the command line, given a value out of any range, gives one line naming it (issue 35, 6).

The `collector` entry point itself runs (collector.cli.main, as the console script does): an error that is not
turned into one line would be a traceback here, and fails the test.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from collector import cli


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def _numeric_options() -> list[tuple[tuple[str, ...], str, bool]]:
    """(command path, option, whether it takes a float) for every number an option takes."""
    out = []
    for path, cmd in _commands(cli.cli):
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.is_flag and isinstance(
                    p.type, (click.types.IntParamType, click.types.FloatParamType)):
                out.append((path, p.opts[-1], isinstance(p.type, click.types.FloatParamType)))
    return out


def run_main(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
             cwd: Path) -> tuple[int, str]:
    """(exit status, everything printed) of `collector ARGS`, run as the console script runs it."""
    monkeypatch.setattr(sys, "argv", ["collector", *args])
    monkeypatch.chdir(cwd)
    with pytest.raises(SystemExit) as exc:
        cli.main()
        sys.exit(0)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out + out.err


# placeholders for the arguments a command needs before its options are read (none of them is acted on: the bad
# option is refused first)
_ARGS = {("estimate",): ["nope.gguf", "--device", "RTX 4090"], ("quantize",): ["nope.gguf", "Q8_0"],
         ("tune",): ["nope.gguf", "--dry-run"]}


def test_there_are_numeric_options_to_check() -> None:
    names = {(" ".join(p), o) for p, o, _ in _numeric_options()}
    assert {("tune", "--depth"), ("estimate", "--ctx"), ("quantize", "--imatrix-ctx"),
            ("quantize", "--threads")} <= names, names


@pytest.mark.parametrize("path, option, is_float", _numeric_options(), ids=lambda v: str(v))
@pytest.mark.parametrize("value", ["1" + "0" * 40, "-" + "9" * 30, "nan"])
def test_a_number_out_of_range_is_one_line_naming_the_option(path: tuple[str, ...], option: str, is_float: bool,
                                                             value: str, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code, out = run_main([*path, *_ARGS.get(path, []), option, value], capsys, monkeypatch, tmp_path)
    lines = out.strip().splitlines()
    assert code != 0 and len(lines) == 1 and lines[0].startswith("error: "), out
    assert option in lines[0], out
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("ctx", ["9" * 40, "1" + "0" * 5000, "²", "٣٠٠٠", "-1", "1e9", "4096.0", "99999999999"])
def test_tune_ctx_out_of_range_is_one_line(ctx: str, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`collector tune --ctx` with a huge value printed a 31-line pydantic dump (issue 35, 6)."""
    code, out = run_main(["tune", "nope.gguf", "--dry-run", "--ctx", ctx], capsys, monkeypatch, tmp_path)
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "--ctx" in lines[0] and "at most 16777216" in lines[0], out
    assert len(lines[0]) < 300
