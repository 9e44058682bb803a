"""The shipped Fast DDS profile, through the variable the installed Fast DDS reads.

Found with or without an ament environment; a user's profile is never replaced.
"""

from importlib import metadata

import pytest

from refseg_node.ros_io import dds_profile
from refseg_node.ros_io.dds_profile import FASTDDS_2_ENV, FASTDDS_3_ENV


def test_profile_is_found_without_ament_prefix_path(monkeypatch):
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    path = dds_profile.profile_path()
    assert path is not None and path.name == "fastdds.xml" and path.is_file()


def test_the_variable_is_the_one_of_the_installed_distro():
    # The venv's rclpy says which distro it is: Jazzy's rclpy is 7.x, Kilted's 9.x.
    major = int(metadata.version("ros-rclpy").split(".")[0])
    expected = {7: FASTDDS_2_ENV, 9: FASTDDS_3_ENV}[major]
    assert dds_profile.profile_variable({"ROS_DISTRO": "some-other"}) == expected
    env = {}
    assert dds_profile.apply_default_profile(env) == env[expected]
    assert set(env) == {expected}   # Kilted logs a deprecation line when given the old name


@pytest.mark.parametrize("distro, variable", [
    ("humble", FASTDDS_2_ENV), ("jazzy", FASTDDS_2_ENV), ("Jazzy ", FASTDDS_2_ENV),
    ("kilted", FASTDDS_3_ENV), ("rolling", FASTDDS_3_ENV), ("", FASTDDS_3_ENV)])
def test_a_ros_install_is_told_by_its_distro(distro, variable):
    assert dds_profile.distro_variable(distro) == variable


@pytest.mark.parametrize("variable", [FASTDDS_2_ENV, FASTDDS_3_ENV])
def test_a_users_profile_is_never_replaced(variable):
    env = {variable: "/etc/my_profile.xml"}
    assert dds_profile.apply_default_profile(env, variable) == "/etc/my_profile.xml"
    assert env == {variable: "/etc/my_profile.xml"}


def test_a_users_profile_under_the_other_name_reaches_fast_dds_2():
    # Fast DDS 2.x (Jazzy) ignores FASTDDS_...: the user's profile is copied to the name it reads.
    env = {FASTDDS_3_ENV: "/etc/my_profile.xml"}
    assert dds_profile.apply_default_profile(env, FASTDDS_2_ENV) == "/etc/my_profile.xml"
    assert env[FASTDDS_2_ENV] == "/etc/my_profile.xml"
    # Fast DDS 3.x reads the old name too: nothing is added.
    env = {FASTDDS_2_ENV: "/etc/my_profile.xml"}
    assert dds_profile.apply_default_profile(env, FASTDDS_3_ENV) == "/etc/my_profile.xml"
    assert env == {FASTDDS_2_ENV: "/etc/my_profile.xml"}
