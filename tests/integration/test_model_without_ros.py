"""``refseg_model`` must import and work with no ROS 2 installed."""

import subprocess
import sys
import textwrap


def test_refseg_model_imports_with_ros_unimportable():
    # A meta-path finder that refuses every ROS 2 module makes this interpreter a ROS-free one.
    script = textwrap.dedent("""
        import sys

        BLOCKED = ('rclpy', 'rosidl', 'rmw', 'std_msgs', 'sensor_msgs', 'geometry_msgs',
                   'refseg_msgs', 'refseg_node', 'ament_index_python', 'builtin_interfaces')

        class NoRos:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in BLOCKED:
                    raise ImportError(f'{name} is blocked: this test simulates no ROS 2')

        sys.meta_path.insert(0, NoRos())
        try:
            import rclpy  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit('blocker failed')

        import refseg_model
        from refseg_model import Segmenter, Prediction  # noqa: F401
        import refseg_model.network, refseg_model.text, refseg_model.data  # noqa: F401
        leaked = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)
        assert not leaked, leaked
        print('OK')
    """)
    out = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith('OK')
