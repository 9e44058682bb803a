"""The simulated camera.

``synthetic_camera`` publishes the synthetic world like an RGB-D camera.
"""
