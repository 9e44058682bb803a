"""The shipped Fast DDS profile (``config/fastdds.xml``): camera-size frames over shared memory.

Fast DDS's default shared-memory segment (512 KB) cannot hold a 640x480 rgb8 frame; best-effort
frames then travel as fragmented UDP and are mostly lost on one host. The profile gives each
participant a 32 MB segment plus UDPv4. Fast DDS reads ``FASTDDS_DEFAULT_PROFILES_FILE`` when a
participant is created, so :func:`apply_default_profile` must run before ``rclpy.init``; it never
replaces a profile the user chose.
"""

from __future__ import annotations

import os
from pathlib import Path

PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
PROFILE_NAME = "fastdds.xml"
_SOURCE_TREE = Path(__file__).resolve().parents[2] / "config" / PROFILE_NAME


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


def apply_default_profile(env=None) -> str | None:
    """Set ``FASTDDS_DEFAULT_PROFILES_FILE`` in ``env`` (``os.environ``) unless already set.

    Return the profile in effect (the user's or the shipped one), or None when there is none.
    """
    env = os.environ if env is None else env
    if env.get(PROFILE_ENV):
        return env[PROFILE_ENV]
    path = profile_path()
    if path is None:
        return None
    env[PROFILE_ENV] = str(path)
    return str(path)
