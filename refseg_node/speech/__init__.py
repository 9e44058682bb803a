"""Spoken commands.

``recognizer`` (pocketsphinx, no ROS), ``grammar``, ``command_node`` (the node).
"""
