"""The perception modules are pure: they import without rclpy (and without ROS messages)."""

import os
import subprocess
import sys

import pytest

MODULES = ("pipeline", "targets", "geometry", "cloud", "tracking")

# rclpy and every ROS message package made unimportable: any import of them fails loudly.
BLOCKED = r"""
import sys
for name in ("rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "visualization_msgs",
             "refseg_msgs", "builtin_interfaces"):
    sys.modules[name] = None
import importlib
module = importlib.import_module("refseg_node.perception." + sys.argv[1])
ros = sorted(m for m in sys.modules if m.split(".")[0] in ("rclpy", "rosidl_parser", "rpyutils")
             and sys.modules[m] is not None)
print(module.__name__, ros)
"""


@pytest.mark.parametrize("module", MODULES)
def test_a_perception_module_imports_without_rclpy(module):
    out = subprocess.run([sys.executable, "-c", BLOCKED, module], capture_output=True, text=True,
                         env=os.environ, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == [f"refseg_node.perception.{module}", "[]"]
