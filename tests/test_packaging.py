"""The environment is described once: environment.yml, pyproject.toml and the lock file agree."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra, items in project["optional-dependencies"].items():
        reqs += [r for r in items if not r.startswith("rmed[")]
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return {_name(r): r.replace(" ", "") for r in pip}


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    assert _environment_requirements() == _pyproject_requirements()


def test_lock_file_pins_every_dependency():
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.lower().replace("_", "-")] = version
    missing = sorted(set(_pyproject_requirements()) - set(pinned))
    assert not missing, f"constraints.txt lacks {missing}; run `make lock`"
    assert pinned["torch"] == "2.13.0"
    assert pinned["jupyter-book"].startswith("1.")
