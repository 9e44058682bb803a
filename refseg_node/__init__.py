"""refseg_node: the ROS 2 node of refseg (language-conditioned segmentation, Hu et al. 2016).

Pure modules (no ROS graph): ``image_conversion``, ``command_parser``, ``targets``, ``geometry``,
``overlay``, ``messages``, ``parameters``. ROS entry points: ``node`` (the ``refseg`` lifecycle
node) and ``synthetic_camera``.
"""
