"""Fixtures shared by every test folder.

The ROS graph fixtures (isolated domain, peer node, node processes, tiny checkpoints) live in
``tests/ros_graph.py`` and are registered once here, so ``tests/node`` and ``tests/stress`` share
one ``rclpy`` context per session.
"""

pytest_plugins = ["tests.ros_graph"]
