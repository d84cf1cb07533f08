"""The conda env files under envs/ agree with the project's pins.

* every package pinned in an env's ``pip:`` section has the version of requirements.lock;
* every direct dependency of pyproject.toml is pinned in each env that installs the project
  (its own pin, or the lock's version where pyproject gives a range);
* the env's python matches ``requires-python``; ``-e`` points at the repository root (from where conda resolves it).

Versions are compared by release (PEP 440 public version): the lock's ``torch==2.13.0+cpu`` is the
2.13.0 release built for CPU-only machines, so an env may pin ``torch==2.13.0`` (PyPI's CUDA build on
Linux) or a build such as ``2.13.0+cu126``, but not ``2.12.0``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"
MAIN_ENV = ENVS / "maskdiff.yaml"
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
ENV_FILES = sorted(p for p in ENVS.glob("*.y*ml") if p.suffix in {".yaml", ".yml"})

# Pinned in an env but deliberately absent from requirements.lock, the lock of the CPU machines.
NOT_IN_LOCK: dict[str, dict[str, str]] = {}


# --------------------------------------------------------------------------- parsing


def _release(version: str) -> Version:
    """The release a version names, without its local build tag (2.13.0+cpu -> 2.13.0)."""
    return Version(Version(version).public)


def lock_versions() -> dict[str, str]:
    pins = {}
    for n, line in enumerate(LOCK.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", f"requirements.lock:{n}: not an exact pin: {line!r}"
        pins[canonicalize_name(req.name)] = spec[0].version
    return pins


def pyproject() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def load_env(path: Path) -> dict:
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict) and isinstance(env.get("dependencies"), list), f"{path.name}: no dependencies list"
    return env


def pip_entries(env: dict) -> list[str]:
    entries = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            entries += [str(e).strip() for e in dep["pip"] or []]
    return entries


# Where conda resolves an env file's relative `-e` path: conda runs pip from the directory of the
# file it is given (conda/env/installers/pip.py). envs/maskdiff.yaml is for `snakemake --sdm conda`,
# which hands conda a copy at <conda-prefix>/<hash>.yaml (default .snakemake/conda/, see
# snakemake/deployment/conda.py), so its path is relative to that; the others are created by hand
# from envs/ (`conda env create -f envs/paper-gpu.yaml`).
RESOLVED_FROM = {"maskdiff.yaml": ROOT / ".snakemake" / "conda"}


def installs_project(env_file: Path) -> bool:
    base = RESOLVED_FROM.get(env_file.name, env_file.parent)
    return any((base / p).resolve() == ROOT for p in editable_paths(load_env(env_file)))


def editable_paths(env: dict) -> list[str]:
    out = []
    for entry in pip_entries(env):
        m = re.match(r"^(?:-e|--editable)(?:\s+|=)(.+)$", entry)
        if m:
            target = m.group(1).strip().removeprefix("file:")
            out.append(re.sub(r"\[[^\]]*\]$", "", target.split("#", 1)[0]))  # drop #egg=..., [extras]
    return out


def pip_requirements(env: dict) -> list[tuple[str, Requirement]]:
    """(raw entry, Requirement) for every package entry; pip options and editables are skipped."""
    return [(e, Requirement(e)) for e in pip_entries(env) if e and not e.startswith("-")]


def exact_pin(req: Requirement) -> str | None:
    spec = list(req.specifier)
    return spec[0].version if len(spec) == 1 and spec[0].operator in ("==", "===") else None


# --------------------------------------------------------------------------- tests


def test_env_files_exist():
    assert MAIN_ENV in ENV_FILES, f"{MAIN_ENV} is missing (workflow/rules/common.smk uses it)"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_pip_pins_match_the_lock(env_file):
    lock = lock_versions()
    allowed_extra = NOT_IN_LOCK.get(env_file.name, {})
    problems = []
    for raw, req in pip_requirements(load_env(env_file)):
        name = canonicalize_name(req.name)
        pin = exact_pin(req)
        if pin is None:
            problems.append(f"{env_file.name}: {req.name} is not pinned with == ({raw!r}); "
                            f"requirements.lock has {req.name}=={lock.get(name, '<absent>')}")
        elif name not in lock:
            if name not in allowed_extra:
                problems.append(f"{env_file.name} pins {req.name}=={pin} but requirements.lock has no {req.name} "
                                f"(add it to the lock, or to NOT_IN_LOCK in tests/test_envs.py with a reason)")
        elif _release(pin) != _release(lock[name]):
            problems.append(f"{env_file.name} pins {req.name}=={pin} but requirements.lock has {req.name}=={lock[name]}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_every_direct_dependency(env_file):
    env = load_env(env_file)
    if not installs_project(env_file):
        assert env_file != MAIN_ENV, f"{MAIN_ENV.name} must install the project (-e)"
        pytest.skip(f"{env_file.name} does not install the project")
    lock = lock_versions()
    pinned = {canonicalize_name(r.name): exact_pin(r) for _, r in pip_requirements(env)}
    problems = []
    for dep in pyproject()["dependencies"]:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        own = exact_pin(req)
        locked = lock.get(name)
        if locked is None:
            problems.append(f"requirements.lock has no {req.name} (pyproject.toml: {dep})")
            continue
        if not req.specifier.contains(locked, prereleases=True):
            problems.append(f"requirements.lock has {req.name}=={locked}, outside pyproject.toml's {dep}")
        if own:
            want, source = own, f"pyproject.toml has {dep}"
        else:
            want, source = locked, f"requirements.lock has {req.name}=={locked} (pyproject.toml: {dep})"
        if name not in pinned:
            problems.append(f"{env_file.name} has no {req.name} (want {req.name}=={_release(want)}) but {source}")
        elif pinned[name] is None:
            problems.append(f"{env_file.name} lists {req.name} without an == pin but {source}")
        elif _release(pinned[name]) != _release(want):
            problems.append(f"{env_file.name} pins {req.name}=={pinned[name]} but {source}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _python_spec(env: dict, name: str) -> str:
    specs = [d for d in env["dependencies"] if isinstance(d, str) and re.match(r"^python(?![\w.-])", d.strip())]
    assert len(specs) == 1, f"{name}: expected one python entry in dependencies, found {specs}"
    return specs[0].strip()


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_python_matches_requires_python(env_file):
    requires = SpecifierSet(pyproject()["requires-python"])
    spec = _python_spec(load_env(env_file), env_file.name)
    # conda match specs: python=3.11 / python=3.11.* / python 3.11.* (any 3.11.x), python==3.11.9 (exact)
    m = re.fullmatch(r"python\s*(==|=|\s)\s*(\d+(?:\.\d+)*)(\.\*)?", spec)
    assert m, f"{env_file.name}: unsupported python spec {spec!r}; pin it as python=X.Y"
    op, version = m.group(1), m.group(2)
    try:
        Version(version)
    except InvalidVersion:
        pytest.fail(f"{env_file.name}: bad python version in {spec!r}")
    if op == "==" and not m.group(3):
        candidates = [version]
    else:  # a prefix: the lowest and a high patch release of that series must both satisfy requires-python
        candidates = [f"{version}.0", f"{version}.999"] if version.count(".") == 1 else [version]
    bad = [c for c in candidates if not requires.contains(c)]
    assert not bad, (f"{env_file.name} has {spec!r} (allows python {', '.join(bad)}) but pyproject.toml "
                     f"requires-python is {requires}")





@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_editable_entry_is_the_repository_root(env_file):
    paths = editable_paths(load_env(env_file))
    if env_file == MAIN_ENV:
        assert paths, f"{env_file.name} must install the project with `-e`"
    base = RESOLVED_FROM.get(env_file.name, env_file.parent)
    for path in paths:
        target = (base / path).resolve()
        assert target == ROOT, f"{env_file.name}: `-e {path}` (from {base}) points at {target}, not {ROOT}"
        assert (target / "pyproject.toml").is_file()
    assert pyproject()["name"] == "maskdiff"
