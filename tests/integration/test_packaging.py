"""``model/pyproject.toml`` ships what ``refseg_model`` needs at run time, names no missing file.

A non-editable install (a wheel) holds only the Python modules and the declared package data: if
the shipped checkpoint or the presets fell out of the declaration, ``Segmenter`` and
``load_config`` would fail after ``pip install``. Read with setuptools' own reader, as a build
would, and by building the wheel (``pip wheel --no-deps --no-build-isolation model``).
"""

import shutil
import subprocess
import sys
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pytest
from setuptools.config.pyprojecttoml import read_configuration

import refseg_model
from refseg_model.config import PRESETS_DIR

MODEL = Path(__file__).resolve().parents[2] / "model"
PACKAGE = MODEL / "refseg_model"


def _config() -> dict:
    return read_configuration(MODEL / "pyproject.toml")


def test_package_data_holds_the_checkpoint_and_the_presets():
    patterns = _config()["tool"]["setuptools"]["package-data"]["refseg_model"]
    needed = [refseg_model.default_checkpoint_path(), *sorted(PRESETS_DIR.glob("*.yaml"))]
    assert needed[0].is_file() and len(needed) > 1
    for path in needed:
        rel = path.resolve().relative_to(PACKAGE.resolve()).as_posix()
        assert any(fnmatch(rel, p) for p in patterns), f"{rel} is not package data: {patterns}"
    for pattern in patterns:  # a pattern that matches nothing names a file that is not there
        assert list(PACKAGE.glob(pattern)), f"package-data pattern {pattern!r} matches no file"


def test_no_missing_file_is_named():
    project = _config()["project"]
    readme = project.get("readme")
    if readme:
        name = readme if isinstance(readme, str) else readme.get("file")
        assert name is None or (MODEL / name).is_file(), f"readme {name} does not exist"
    assert "refseg_model" in _config()["tool"]["setuptools"]["packages"]


@pytest.mark.slow
def test_a_wheel_built_from_model_holds_the_checkpoint_and_the_presets(tmp_path):
    """Build the wheel as a non-editable install would (about 20 s), read what it holds."""
    source = tmp_path / "model"  # a copy: the build leaves build/ and *.egg-info behind
    shutil.copytree(MODEL, source, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".*"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "--no-index", "-q", str(source),
                           "-w", str(tmp_path / "wheel")],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "wheel").glob("refseg_model-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    checkpoint = "refseg_model/weights/" + refseg_model.default_checkpoint_path().name
    assert checkpoint in names
    assert {f"refseg_model/presets/{p.name}" for p in PRESETS_DIR.glob("*.yaml")} <= names
    assert "refseg_model/cli/train.py" in names and "refseg_model/synth/scene.py" in names
    info = zipfile.ZipFile(wheel).getinfo(checkpoint)
    assert info.file_size == refseg_model.default_checkpoint_path().stat().st_size
