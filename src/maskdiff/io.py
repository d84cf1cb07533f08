"""Atomic file output and small JSON/JSONL helpers.

Every artifact the DAG produces is written to a temporary file in the destination directory and
renamed into place, so an interrupted job never leaves a half-written file that Snakemake or DVC
would mistake for a finished output. The temporary file gets the mode a plain ``open(..., "w")``
would give (``0666 & ~umask``; directories ``0777 & ~umask``), not mkstemp's private 0600, so
colleagues sharing the results can read them. Running out of space while writing raises
:class:`DiskFullError` naming the output, whatever layer (OS, torch, safetensors) noticed it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import InputError


class DiskFullError(OSError):
    """No space left while writing an output. The message names the output: the raw errors name a
    temporary file (OSError) or nothing at all (torch.save's ``unexpected pos``)."""

    def __init__(self, path: str | os.PathLike, note: str = ""):
        super().__init__(errno.ENOSPC, f"no space left on device while writing {path}{note}")
        self.path = str(path)

    def __str__(self) -> str:
        return self.strerror


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` means the disk is full: ENOSPC, or the text torch.save (``[enforce fail at
    inline_container.cc] . unexpected pos``) and safetensors (``os error 28``) raise for it."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    text = str(exc)
    return ("inline_container" in text and "unexpected pos" in text) or "No space left on device" in text \
        or "os error 28" in text


# Temporary directory of each atomic_dir in progress -> its destination: a file written inside one
# is reported under the name it was going to have, not the temporary one that is deleted.
_PENDING_DIRS: dict[Path, Path] = {}


def _destination(path: str | os.PathLike) -> Path:
    path = Path(path)
    for tmp, dest in list(_PENDING_DIRS.items()):
        if path == tmp or tmp in path.parents:
            return dest / path.relative_to(tmp)
    return path


@contextlib.contextmanager
def reporting_disk_full(path: str | os.PathLike, note: str = "") -> Iterator[None]:
    """Turn a disk-full error raised in the block into :class:`DiskFullError` naming ``path`` (the
    original stays attached as its cause); an inner, more precise DiskFullError passes unchanged."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if is_disk_full(exc):
            raise DiskFullError(_destination(path), note) from exc
        raise


def _umask() -> int:
    """The process umask, read from /proc where possible: setting it to read it back would briefly
    change the mode of files other threads create meanwhile."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600: readable by its owner only
        with reporting_disk_full(path):
            yield tmp_path
            os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` (whole) only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp_path, 0o777 & ~_umask())  # mkdtemp makes 0700: readable by its owner only
        _PENDING_DIRS[tmp_path] = path
        with reporting_disk_full(path):
            yield tmp_path
            replace_dir(tmp_path, path)
    except BaseException:
        shutil.rmtree(tmp_path, ignore_errors=True)
        raise
    finally:
        _PENDING_DIRS.pop(tmp_path, None)


def _old_copy(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def replace_dir(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Move directory ``src`` onto ``dest``. A directory cannot be renamed over another, so the old
    one is first moved aside to ``.<name>.old``; a kill between the two renames leaves that copy,
    which :func:`recover_dir` puts back."""
    src, dest = Path(src), Path(dest)
    if dest.exists():
        old = _old_copy(dest)
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(src, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dest)


def recover_dir(path: str | os.PathLike) -> Path:
    """``path``, restored from the copy :func:`replace_dir` moved aside if a kill interrupted it."""
    path = Path(path)
    old = _old_copy(path)
    if not path.exists() and old.is_dir():
        os.replace(old, path)
    return path


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write rows as JSON lines atomically; return the number of rows."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True, default=_json_default) + "\n")
            n += 1
    return n


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as fh:
        return json.load(fh)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read JSON lines; a malformed line raises InputError naming the file and line number. Task
    records (prompts, answers) go through :func:`maskdiff.tasks.records.read_task_records`, which
    also validates them."""
    rows = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line.rstrip("\r\n")))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: invalid JSON line: {exc.msg} (column {exc.colno})") from None
    return rows


def truncate_metrics(path: str | os.PathLike, last: int, key: str = "update") -> None:
    """Drop the records of a metrics log logged after ``last`` (by ``key``): a job resumed from the
    checkpoint at ``last`` logs them again."""
    path = Path(path)
    if path.exists():
        write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in read_jsonl(path) if r.get(key, 0) <= last))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_files(paths: Iterable[str | os.PathLike]) -> str:
    """One digest over several files' names and contents (order-independent)."""
    h = hashlib.sha256()
    for p in sorted(str(p) for p in paths):
        h.update(p.encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


class NullLogger:
    """Stands in for :class:`JsonlLogger` on processes that must not write (non-main ranks)."""

    def log(self, **record: Any) -> None:
        pass

    def close(self) -> None:
        pass


class JsonlLogger:
    """Append-only JSON-lines metrics log (one object per line, flushed each write)."""

    def __init__(self, path: str | os.PathLike, append: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a" if append else "w")

    def log(self, **record: Any) -> None:
        with reporting_disk_full(self.path):
            self._fh.write(json.dumps(record, sort_keys=True, default=_json_default) + "\n")
            self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "JsonlLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
