"""Fixtures of the stress suite.

The node-graph fixtures of ``tests/node`` (isolated domain, peer node, node processes, tiny
checkpoints) are shared, not duplicated.
"""

from tests.node.conftest import (  # noqa: F401 - fixtures re-exported for this folder
    checkpoints,
    graph,
    ros_env,
    start_node,
)
