"""refseg_node: the ROS 2 node of refseg (language-conditioned segmentation, Hu et al. 2016).

Pure modules (no ROS graph): ``image_conversion``, ``command_parser``, ``queries``,
``scheduler``, ``targets``, ``geometry``, ``pipeline``, ``messages``,
``parameters``. ROS entry points: ``node`` (the ``refseg`` lifecycle node, wiring only; its
publishers in ``outputs``) and ``synthetic_camera``. ``harness`` starts ROS processes on a
private domain for tests, bench and demo.
"""
