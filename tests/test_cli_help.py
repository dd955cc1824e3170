"""Every command's --help: on/off flags show no value type (`--force <bool>` read as if it took one)."""

import re

import typer


def _commands(group, path: tuple[str, ...] = ()):
    yield path
    if hasattr(group, "commands"):  # a group (typer 0.29 carries its own copy of click)
        for name, sub in group.commands.items():
            yield from _commands(sub, (*path, name))


def test_flags_show_no_metavar(cli):
    from lorakiln.cli.app import app

    root = typer.main.get_command(app)
    paths = list(_commands(root))
    assert len(paths) > 30
    for path in paths:
        code, out = cli(*path, "--help")
        assert code == 0, (path, out)
        assert "<bool>" not in out, (path, out)
    code, out = cli("dedupe", "--help")
    assert re.search(r"--threshold\s+<int>", out)  # options that take a value still show its type
