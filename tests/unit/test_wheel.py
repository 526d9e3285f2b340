"""The built wheel carries the default rule pack, and a plain (non-editable) install of it uses that pack."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "streams", "rules")  # what docker/Dockerfile copies to build the package


def _files(folder: Path) -> set[str]:
    return {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the sources, so no build/ folder is left in the repository to leak into later builds."""
    source, dist = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    [built] = dist.glob("groupwarden-*.whl")
    return built


def test_the_wheel_holds_every_file_of_the_pack_but_its_readme_and_every_module(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    prefix = "streams/default_rules/"
    packed = {name.removeprefix(prefix) for name in names if name.startswith(prefix) and "__pycache__" not in name}
    assert packed == _files(ROOT / "rules") - {"README.md"}
    assert {"pack.toml", "sanctions.toml"} <= packed
    modules = {f"streams/{name}" for name in _files(ROOT / "streams") if name.endswith(".py")}
    assert modules <= names, "a package is missing from [tool.setuptools] packages in pyproject.toml"


def test_a_non_editable_install_loads_and_uses_the_default_pack(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([python, "-c", purelib], text=True).strip())
    # The dependencies come from this environment; groupwarden itself only from the wheel (a .pth file's paths are
    # searched after the venv's own packages, and the editable install's hooks are not run from there).
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=120)

    work = tmp_path / "elsewhere"  # no rules/ folder in sight
    work.mkdir()
    check = (
        "import streams, streams.config as c, streams.policy.rules as r;"
        "print(streams.__file__); print(c.DEFAULT_RULES); print(len(r.load_pack(c.DEFAULT_RULES).ids()))"
    )
    module, rules, rule_count = subprocess.check_output([python, "-c", check], cwd=work, text=True).splitlines()
    assert Path(module).is_relative_to(site)
    assert Path(rules) == site / "streams" / "default_rules"
    assert int(rule_count) > 0

    message = {"message_id": "m1", "group_id": "g", "sender_id": "u", "sent_at": 0, "text": "兼职刷单日结"}
    classify = subprocess.run(
        [venv / "bin" / "groupwarden", "classify"],
        input=orjson.dumps(message),
        cwd=work,
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert orjson.loads(classify.stdout)["decision"] == "block"
