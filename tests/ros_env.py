"""Environment for tests that start real ROS 2 processes: isolated DDS domain, localhost only."""

import os
import random
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def isolated_ros_env(log_dir, domain_id=None):
    """Return a copy of ``os.environ`` that confines DDS traffic to this test run.

    A random ``ROS_DOMAIN_ID`` (1..100, avoiding 0 that a developer's robot may use), localhost
    discovery, logs under ``log_dir`` and Fast DDS's large-data transports (images over ~512 KB).
    """
    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = str(domain_id if domain_id is not None else random.randint(1, 100))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['ROS_LOG_DIR'] = str(log_dir)
    env.setdefault('FASTDDS_BUILTIN_TRANSPORTS', 'LARGE_DATA')
    env.setdefault('AMENT_PREFIX_PATH', sys.prefix)
    env['PYTHONUNBUFFERED'] = '1'
    return env
