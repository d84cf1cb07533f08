"""``maskdiff run``: Snakemake, after the config files it is given were read strictly.

Snakemake parses ``--configfile`` files itself before the workflow starts, and a YAML syntax error
there ends in "Config file is not valid JSON or YAML" with neither the file nor the line; an empty or
list-shaped file gets a message without the file name. ``maskdiff run <snakemake arguments>`` reads
every config file first with the project's loader (``file:line:column``, duplicate keys, a mapping at
the top) and then replaces itself with ``snakemake`` and the same arguments, so every later message and
exit status is Snakemake's own. The Makefile's targets start Snakemake this way.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from .config import check_config_files
from .errors import InputError

CONFIG_FLAGS = ("--configfile", "--configfiles")


def config_files(args: list[str]) -> list[str]:
    """The files named by ``--configfile`` / ``--configfiles`` (each takes one or more values, up to the
    next option; ``--configfile=path`` too)."""
    files, taking = [], False
    for arg in args:
        flag, eq, value = arg.partition("=")
        if flag in CONFIG_FLAGS:
            taking = not eq
            if eq:
                files.append(value)
        elif arg.startswith("-"):
            taking = False
        elif taking:
            files.append(arg)
    return files


def snakemake_executable() -> str:
    """The ``snakemake`` of the interpreter running this (the project's .venv), else the one on PATH."""
    here = Path(sys.executable).parent / "snakemake"
    found = str(here) if here.is_file() else shutil.which("snakemake")
    if not found:
        raise InputError("snakemake not found next to this Python or on PATH: run `make venv` first")
    return found


def run(args: list[str]) -> None:
    """Check the config files, then exec Snakemake with ``args`` (does not return)."""
    files = config_files(args)
    if any(a in CONFIG_FLAGS for a in args) and not files:
        raise InputError("--configfile: expected one or more config files")
    check_config_files(files)
    exe = snakemake_executable()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(exe, [exe, *args])
