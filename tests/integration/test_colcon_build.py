"""``colcon build`` of ros2_ws installs refseg and refseg_msgs into an ament index."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import REPO

COLCON = Path(sys.prefix) / 'bin' / 'colcon'


@pytest.mark.slow
@pytest.mark.skipif(not COLCON.exists(), reason='colcon is not installed in this environment')
def test_colcon_build_installs_packages(tmp_path):
    ws = tmp_path / 'ws'
    (ws / 'src').mkdir(parents=True)
    # The workspace's src/ holds links to the two packages, as ros2_ws/src does.
    for name in ('refseg', 'refseg_msgs'):
        target = (REPO / 'ros2_ws' / 'src' / name).resolve()
        assert target.is_dir(), f'ros2_ws/src/{name} must link to the package'
        (ws / 'src' / name).symlink_to(target)
    env = dict(os.environ, AMENT_PREFIX_PATH=sys.prefix, CMAKE_PREFIX_PATH=sys.prefix)
    cmd = [str(COLCON), 'build', '--base-paths', 'src',
           '--cmake-args', f'-DPython3_EXECUTABLE={sys.executable}', '-DBUILD_TESTING=OFF']
    out = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]

    install = ws / 'install'
    index = install / 'refseg' / 'share' / 'ament_index' / 'resource_index' / 'packages'
    assert (index / 'refseg').exists()
    share = install / 'refseg' / 'share' / 'refseg'
    assert (share / 'package.xml').exists()
    assert (share / 'launch' / 'bringup.launch.py').exists()
    assert (share / 'config' / 'refseg.params.yaml').exists()
    assert (share / 'config' / 'refseg.rviz').exists()
    lib = install / 'refseg' / 'lib' / 'refseg'
    for exe in ('refseg_node', 'synthetic_camera'):
        assert os.access(lib / exe, os.X_OK), f'{exe} not installed in lib/refseg'
    msgs_index = install / 'refseg_msgs' / 'share' / 'ament_index' / 'resource_index'
    assert (msgs_index / 'packages' / 'refseg_msgs').exists()
    assert (msgs_index / 'rosidl_interfaces' / 'refseg_msgs').read_text().count('msg/') >= 1

    # The built messages import from the workspace's install space.
    site = next((install / 'refseg_msgs').glob('lib/python3*/site-packages'))
    probe = subprocess.run(
        [sys.executable, '-c', 'import refseg_msgs.msg as m; print(m.__file__)'],
        env=dict(env, PYTHONPATH=str(site),
                 LD_LIBRARY_PATH=f"{install / 'refseg_msgs' / 'lib'}:"
                                 f"{os.environ.get('LD_LIBRARY_PATH', '')}"),
        capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert str(install) in probe.stdout
    shutil.rmtree(ws / 'build', ignore_errors=True)
