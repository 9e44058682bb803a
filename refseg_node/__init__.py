"""refseg_node: the ROS 2 node of refseg (language-conditioned segmentation, Hu et al. 2016).

Pure modules (no ROS graph): ``image_conversion``, ``command_parser``, ``queries``,
``scheduler``, ``targets``, ``geometry``, ``pipeline``, ``messages``,
``parameters``. ROS entry points: ``node`` (the ``refseg`` lifecycle node, wiring only; its
publishers in ``outputs``) and ``synthetic_camera``. ``harness`` starts ROS processes on a
private domain for tests, bench and demo.
"""

import os as _os

# torch's OpenMP (libgomp) keeps its threads spinning for GOMP_SPINCOUNT pause loops after each
# parallel region (300,000 by default: 5-8 ms of a core after every frame, measured on 2 cores,
# 2026-12-01), so a 2-core robot loses a core to the spin exactly while the node publishes its
# answer and the camera's next frame arrives. Spinning 30,000 loops still bridges the gaps
# between the operators of one forward pass. libgomp reads the variable when torch loads, so it
# is set here, before any module of the node imports torch; a value the user set is kept.
if "torch" not in __import__("sys").modules:
    _os.environ.setdefault("GOMP_SPINCOUNT", "30000")
