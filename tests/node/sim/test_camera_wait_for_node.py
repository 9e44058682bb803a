"""synthetic_camera's wait_for_node: which subscriptions count, and the node's full name."""

from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)

from refseg_node.sim.synthetic_camera import full_node_name, serves


def qos(reliability, durability=DurabilityPolicy.VOLATILE):
    return QoSProfile(depth=1, reliability=reliability, durability=durability)


def test_a_best_effort_camera_serves_best_effort_volatile_subscriptions_only():
    best_effort, reliable = ReliabilityPolicy.BEST_EFFORT, ReliabilityPolicy.RELIABLE
    assert serves(qos_profile_sensor_data, qos(best_effort))
    assert not serves(qos_profile_sensor_data, qos(reliable))  # never matched: never waited for
    assert serves(qos(reliable), qos(reliable)) and serves(qos(reliable), qos(best_effort))
    assert not serves(qos(reliable), qos(reliable, DurabilityPolicy.TRANSIENT_LOCAL))


def test_node_names_are_relative_to_the_camera_namespace_unless_full():
    assert full_node_name("refseg", "/") == "/refseg"
    assert full_node_name("refseg", "/head") == "/head/refseg"
    assert full_node_name("/arm/refseg", "/head") == "/arm/refseg"
    assert full_node_name("", "/head") == ""
