"""The shipped Fast DDS profile (``config/fastdds.xml``): camera-size frames over shared memory.

Fast DDS's default shared-memory segment (512 KB) cannot hold a 640x480 rgb8 frame; best-effort
frames then travel as fragmented UDP and are mostly lost on one host. The profile gives each
participant a 32 MB segment plus UDPv4. Fast DDS reads its profile from an environment variable
when a participant is created, so :func:`apply_default_profile` must run before ``rclpy.init``;
it never replaces a profile the user chose.

The variable depends on the Fast DDS the ROS 2 distribution ships (:func:`profile_variable`):
Fast DDS 2.x (Humble, Jazzy) reads ``FASTRTPS_DEFAULT_PROFILES_FILE`` only; 3.x (Kilted and
later) reads ``FASTDDS_DEFAULT_PROFILES_FILE`` and, given the old name, still uses it but logs a
deprecation line on stdout.
"""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

FASTDDS_2_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"   # Fast DDS 2.x: Humble, Jazzy
FASTDDS_3_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"    # Fast DDS 3.x: Kilted and later
PROFILE_VARIABLES = (FASTDDS_2_ENV, FASTDDS_3_ENV)
FASTDDS_2_DISTROS = ("humble", "iron", "jazzy")
# The Fast DDS wheels of PyPI's ROS 2 sets, by distribution name (2.x was called Fast RTPS).
FASTDDS_WHEELS = (("ros-fastdds", FASTDDS_3_ENV), ("ros-fastrtps", FASTDDS_2_ENV))
PROFILE_NAME = "fastdds.xml"
_SOURCE_TREE = Path(__file__).resolve().parents[2] / "config" / PROFILE_NAME


def distro_variable(ros_distro: str) -> str:
    """Return the profile variable of a ROS 2 distribution's Fast DDS (``jazzy`` -> 2.x name)."""
    return FASTDDS_2_ENV if ros_distro.strip().lower() in FASTDDS_2_DISTROS else FASTDDS_3_ENV


def wheel_variable() -> str | None:
    """Return the profile variable of the Fast DDS wheel installed here, None without one."""
    for wheel, variable in FASTDDS_WHEELS:
        try:
            metadata.version(wheel)
        except metadata.PackageNotFoundError:
            continue
        return variable
    return None


def profile_variable(env=None) -> str:
    """Return the profile variable the installed Fast DDS reads.

    The Fast DDS wheel installed beside rclpy decides (a venv of PyPI wheels); else, in a ROS 2
    install, the ``ROS_DISTRO`` its setup script sets; else the current name.
    """
    env = os.environ if env is None else env
    return wheel_variable() or distro_variable(env.get("ROS_DISTRO", ""))


def profile_path() -> Path | None:
    """Return the shipped profile: the installed share folder's, else the source tree's."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            installed = Path(get_package_share_directory("refseg")) / "config" / PROFILE_NAME
            if installed.is_file():
                return installed
        except (PackageNotFoundError, ValueError, OSError):  # OSError: no AMENT_PREFIX_PATH
            pass
    except ImportError:  # ament_index_python is optional here
        pass
    return _SOURCE_TREE if _SOURCE_TREE.is_file() else None


def apply_default_profile(env=None, variable: str | None = None) -> str | None:
    """Set the profile variable Fast DDS reads (:func:`profile_variable`) in ``env``.

    ``env`` defaults to ``os.environ``. A profile the user set is kept: through the variable
    this Fast DDS reads, as it is; through the other name only, it is copied to the one read
    (Fast DDS 2.x ignores ``FASTDDS_...``). Return the profile in effect (the user's or the
    shipped one), or None when there is none.
    """
    env = os.environ if env is None else env
    variable = variable or profile_variable(env)
    if env.get(variable):
        return env[variable]
    users = [env[name] for name in PROFILE_VARIABLES if env.get(name)]
    if users:
        if variable == FASTDDS_2_ENV:
            env[variable] = users[0]
        return users[0]   # Fast DDS 3.x reads the old name too
    path = profile_path()
    if path is None:
        return None
    env[variable] = str(path)
    return str(path)
