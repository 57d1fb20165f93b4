"""The two install routes give one environment, and the package states what it needs.

* ``make venv`` (Makefile) and ``conda env create -f environment.yml`` install the same thing: the
  same Python, the same pip line (``-c constraints.txt -e .[dev]``), the same benchmark peers.
* What that pip line resolves to (a ``pip install --dry-run`` of environment.yml's pip section,
  run the way conda runs it) is exactly the lock file, which is exactly what the environment
  running these tests (made by ``make``) has installed.
* pyproject states ranges that the locked versions satisfy; every module the notebooks import
  comes with ``pip install rmed`` (no extra needed).
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PEERS = "--no-deps -c constraints.txt backpack-for-pytorch pyhessian"
TOOLING = {"pip", "setuptools", "wheel"}  # `pip freeze` leaves them out of the lock


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _env_pip_lines() -> list[str]:
    env = _environment()
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)


def _locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def _locked_python() -> str:
    first = (ROOT / "constraints.txt").read_text().splitlines()[0]
    match = re.fullmatch(r"# python (\d+\.\d+)", first)
    assert match, f"constraints.txt must start with '# python X.Y' (written by `make lock`), not {first!r}"
    return match.group(1)


def _makefile_pip_lines() -> list[str]:
    return [line.strip() for line in (ROOT / "Makefile").read_text().splitlines() if "-m pip install" in line]


def _requirements(extras: bool) -> list[Requirement]:
    project = _pyproject()
    reqs = [Requirement(r) for r in project["dependencies"]]
    if extras:
        reqs += [Requirement(r) for items in project["optional-dependencies"].values() for r in items
                 if not r.startswith("rmed[")]
    return reqs


def test_same_python_everywhere():
    env_python = next(d for d in _environment()["dependencies"] if isinstance(d, str) and d.startswith("python="))
    version = env_python.split("=", 1)[1]
    assert version == _locked_python()
    assert f"!= ({version.replace('.', ', ')})" in (ROOT / "Makefile").read_text(), "the Makefile checks the same Python"
    requires = _pyproject()["requires-python"]
    assert Version(version) in SpecifierSet(requires)


def test_environment_yml_installs_what_the_makefile_installs():
    lines = [line.replace(" ", "") for line in _env_pip_lines()]
    assert lines == ["-cconstraints.txt", "-e.[dev]"], lines
    main = [line for line in _makefile_pip_lines() if "-e" in line]
    assert len(main) == 1 and "-c constraints.txt -e '.[dev]'" in main[0], main
    peers = [line for line in _makefile_pip_lines() if "--no-deps" in line]
    assert len(peers) == 1 and peers[0].endswith(PEERS), peers
    assert f"python -m pip install {PEERS}" in (ROOT / "environment.yml").read_text(), \
        "environment.yml tells conda users to install the peers as the Makefile does"


def test_pyproject_states_ranges_that_the_lock_satisfies():
    pins = _locked()
    for req in _requirements(extras=True):
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints.txt lacks {req.name}; run `make lock`"
        assert Version(pins[name]) in req.specifier, f"{req} does not admit the locked {name}=={pins[name]}"
    for req in _requirements(extras=False):
        assert not any(s.operator == "==" for s in req.specifier), f"{req}: a library states a range, the lock pins"
    for peer in ("backpack-for-pytorch", "pyhessian"):
        assert peer in pins, f"constraints.txt lacks {peer}"
    assert pins["jupyter-book"].startswith("1.")


def test_this_environment_is_the_lock():
    """The environment running the tests (made by `make`) has every locked version installed."""
    pins = _locked()
    wrong = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        if name in pins and name != "rmed" and Version(dist.version).public != Version(pins[name]).public:
            wrong[name] = (dist.version, pins[name])
    assert not wrong, f"installed versions differ from constraints.txt (installed, locked): {wrong}"


def test_environment_yml_resolves_to_the_lock(tmp_path):
    """Resolve environment.yml's pip section as conda does (a requirements file next to it, run from
    the repository root), without installing, and compare with constraints.txt."""
    requirements = ROOT / f".environment-yml-{tmp_path.name}.requirements.txt"
    requirements.write_text("\n".join(_env_pip_lines()) + "\n")
    report = tmp_path / "report.json"
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                               "--disable-pip-version-check", "--report", str(report), "-r", requirements.name],
                              cwd=ROOT, capture_output=True, text=True, timeout=900)
    finally:
        requirements.unlink()
    if done.returncode != 0 and re.search(r"(?i)connection|network|resolve host|no matching distribution", done.stderr):
        pytest.skip(f"no package registry reachable: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr[-3000:]
    resolved = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
                for i in json.loads(report.read_text())["install"]}
    pins = _locked()
    differ = {n: (v, pins.get(n)) for n, v in resolved.items()
              if n != "rmed" and n not in TOOLING and Version(v).public != Version(pins.get(n, "0")).public}
    assert not differ, f"environment.yml resolves to versions other than the lock (resolved, locked): {differ}"
    assert resolved.get("rmed") == _pyproject()["version"]


def _core_closure(extra: str | None = None) -> set[str]:
    """Canonical names of the distributions that `pip install rmed` brings (no extras), or
    `pip install rmed[extra]`."""
    env = default_environment()
    seen: set[str] = set()
    todo = [r for r in _requirements(extras=False)]
    if extra is not None:
        todo += [Requirement(r) for r in _pyproject()["optional-dependencies"][extra]]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for line in dist.requires or []:
            sub = Requirement(line)
            extras_ok = sub.marker is None or any(sub.marker.evaluate({**env, "extra": e}) for e in ["", *req.extras])
            if extras_ok:
                todo.append(Requirement(str(sub).split(";")[0]))
    return seen


#: Notebooks that need an extra of the package, and which (the chapter says so; `make` installs it).
NOTEBOOK_EXTRAS = {"notebooks/own_model.py": "hf"}


def test_notebook_imports_come_with_the_core_install():
    """Every module imported by a notebook or by the package it calls (lazy imports included) comes
    with `pip install rmed`, or with the extra :data:`NOTEBOOK_EXTRAS` names for that notebook."""
    stdlib = set(sys.stdlib_module_names)
    providers = metadata.packages_distributions()
    closures = {None: _core_closure(), **{e: _core_closure(e) for e in set(NOTEBOOK_EXTRAS.values())}}
    missing = {}
    for notebook in sorted((ROOT / "notebooks").glob("*.py")) + sorted((ROOT / "rmed_core").rglob("*.py")):
        closure = closures[NOTEBOOK_EXTRAS.get(str(notebook.relative_to(ROOT)))]
        for node in ast.walk(ast.parse(notebook.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for module in names:
                top = module.split(".")[0]
                if top in stdlib or top == "rmed_core":
                    continue
                dists = {canonicalize_name(d) for d in providers.get(top, [])}
                if not dists & closure:
                    missing.setdefault(str(notebook.relative_to(ROOT)), []).append(f"{top} ({', '.join(sorted(dists)) or 'not installed'})")
    assert not missing, f"notebook imports that `pip install rmed` does not provide: {missing}"


def test_licence_file_matches_pyproject():
    assert _pyproject()["license"] == {"text": "MIT"}
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
