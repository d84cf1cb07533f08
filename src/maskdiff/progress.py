"""Progress bars that suit where they are written: a live bar on a terminal, and in a log file (a
Snakemake rule's ``log:``) one plain line at a steady interval, without the carriage returns and
escape codes that make a redrawn bar unreadable in ``less`` or a web log viewer.

``MASKDIFF_PROGRESS_INTERVAL`` (seconds, default 60) sets the interval of the plain lines.
"""

from __future__ import annotations

import os
import re
import sys

from tqdm import tqdm

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def log_interval() -> float:
    return float(os.environ.get("MASKDIFF_PROGRESS_INTERVAL", "60"))


def is_terminal(stream) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


class PlainLines:
    """A stream wrapper that writes each of tqdm's redraws as one plain line (and drops the blank
    redraws a closing ``leave=False`` bar makes)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = _ESCAPES.sub("", text).replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


class PlainBar(tqdm):
    """A bar for log files: postfix and description changes wait for the next interval's line
    instead of forcing one (a trainer sets its postfix every few steps)."""

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s="", refresh=True):
        super().set_postfix_str(s, refresh=False)

    def set_description(self, desc=None, refresh=True):
        super().set_description(desc, refresh=False)


def progress(iterable=None, *, file=None, **kwargs) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on a terminal; otherwise plain lines every ``log_interval()`` s."""
    stream = file or sys.stderr
    if is_terminal(stream):
        return tqdm(iterable, file=stream, **kwargs)
    interval = log_interval()
    kwargs.update(mininterval=interval, maxinterval=max(interval, 10.0), ascii=True, ncols=100)
    return PlainBar(iterable, file=PlainLines(stream), **kwargs)


def quiet_library_bars() -> None:
    """Turn off the Hugging Face libraries' own bars (loading weights, writing shards) when stderr is
    not a terminal; call before transformers is imported."""
    if not is_terminal(sys.stderr):
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
