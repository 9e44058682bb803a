"""The reliability ``image_qos: auto`` picks from the publishers found on a topic."""

from types import SimpleNamespace

from rclpy.qos import QoSProfile, ReliabilityPolicy

from refseg_node.camera_input import BEST_EFFORT, RELIABLE, choose_reliability


def publisher(reliability):
    return SimpleNamespace(qos_profile=QoSProfile(depth=1, reliability=reliability))


def test_auto_follows_the_publishers():
    reliable = publisher(ReliabilityPolicy.RELIABLE)
    best_effort = publisher(ReliabilityPolicy.BEST_EFFORT)
    assert choose_reliability("auto", []) == BEST_EFFORT          # matches any later camera
    assert choose_reliability("auto", [reliable]) == RELIABLE
    assert choose_reliability("auto", [reliable, reliable]) == RELIABLE
    assert choose_reliability("auto", [reliable, best_effort]) == BEST_EFFORT


def test_fixed_choices_ignore_the_publishers():
    reliable = publisher(ReliabilityPolicy.RELIABLE)
    assert choose_reliability("sensor_data", [reliable]) == BEST_EFFORT
    assert choose_reliability("reliable", []) == RELIABLE
