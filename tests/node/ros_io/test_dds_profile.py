"""The shipped Fast DDS profile is found with or without an ament environment."""

from refseg_node.ros_io import dds_profile


def test_profile_is_found_without_ament_prefix_path(monkeypatch):
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    path = dds_profile.profile_path()
    assert path is not None and path.name == "fastdds.xml" and path.is_file()


def test_a_users_profile_is_never_replaced():
    env = {"FASTDDS_DEFAULT_PROFILES_FILE": "/etc/my_profile.xml"}
    assert dds_profile.apply_default_profile(env) == "/etc/my_profile.xml"
    env = {}
    assert dds_profile.apply_default_profile(env) == env["FASTDDS_DEFAULT_PROFILES_FILE"]
