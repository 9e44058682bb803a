"""refseg_node: the ROS 2 node of refseg (language-conditioned segmentation, Hu et al. 2016).

The node's wiring is at the top: ``node`` (the ``refseg`` lifecycle node), ``parameters``,
the inputs (``camera_input``, ``sensors``), the outputs (``outputs``), the scheduling
(``scheduler``), the threads (``workers``, ``model_thread``) and their logs (``timings``,
``log_limits``). Its parts are folders: ``perception`` (one frame -> mask, target, 3D; no
rclpy), ``language`` (command -> expression, the prepared query), ``ros_io`` (messages in and
out, the DDS profile), ``speech`` (the ``speech_command`` node) and ``sim`` (the
``synthetic_camera`` node). docs/ARCHITECTURE.md maps every file.
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
