"""``make setup`` per ROS 2 distro: its own requirements and venv, and a switch noticed.

Read with ``make -n`` (what make would run, nothing run): the stamps of a venv made for one
distro are written by hand into a scratch venv folder.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAMPS = ("venv", "deps", "msgs", "install")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


# What an outer make (`make test ROS_DISTRO=kilted`) hands down; a user's shell has none of it.
INHERITED = ("ROS_DISTRO", "VENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


def dry_run(*args):
    env = {k: v for k, v in os.environ.items() if k not in INHERITED}
    out = subprocess.run(["make", "-n", "--no-print-directory", *args], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout + out.stderr


def made_for(venv: Path, distro: str) -> None:
    """Leave the stamps of a finished set-up of ``distro`` in ``venv`` (newer than any input)."""
    stamps = venv / ".refseg-stamps"
    stamps.mkdir(parents=True)
    for name in STAMPS:
        (stamps / name).write_text(f"{distro}\n" if name == "venv" else "")


@pytest.mark.parametrize("distro, venv, requirements", [
    ("jazzy", ".venv", "requirements/ros-jazzy.txt"),
    ("kilted", ".venv-kilted", "requirements/ros-kilted.txt")])
def test_each_distro_has_its_venv_and_its_pins(distro, venv, requirements):
    code, plan = dry_run("-B", "setup", f"ROS_DISTRO={distro}")   # -B: every step, as if fresh
    assert code == 0, plan
    assert f"-m venv --clear {venv} " in plan and f"-r {requirements} " in plan
    assert f"{venv}/bin/python" in plan and f"build/{distro}/refseg_msgs" in plan
    pins = (REPO / requirements).read_text()
    assert "ros-diagnostic-msgs==" in pins and "ros-rmw-fastrtps-cpp==" in pins


def test_jazzy_is_the_default():
    code, plan = dry_run("-B", "setup")
    assert code == 0 and "-r requirements/ros-jazzy.txt " in plan, plan


def test_a_venv_of_the_other_distro_is_rebuilt(tmp_path):
    venv = tmp_path / "venv"
    made_for(venv, "jazzy")
    code, plan = dry_run("setup", "ROS_DISTRO=jazzy", f"VENV={venv}")
    assert code == 0 and "virtual environment" not in plan, plan    # up to date
    code, plan = dry_run("setup", "ROS_DISTRO=kilted", f"VENV={venv}")
    assert code == 0, plan
    assert "holds ROS 2 jazzy wheels: emptied and rebuilt for kilted" in plan
    assert f"-m venv --clear {venv}" in plan and "-r requirements/ros-kilted.txt" in plan


def test_an_unknown_distro_is_refused():
    code, plan = dry_run("setup", "ROS_DISTRO=humble")
    assert code != 0 and "ROS_DISTRO=humble" in plan and "jazzy kilted" in plan
