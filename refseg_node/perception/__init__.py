"""Pure computation on one frame: the mask's targets, their 3D point, points and extent, tracking.

No rclpy and no ROS messages are needed here (numpy, OpenCV, SciPy and ``refseg_model``):
``pipeline`` (one frame -> ``FrameResult``), ``targets``, ``geometry``, ``cloud``, ``tracking``.
"""
