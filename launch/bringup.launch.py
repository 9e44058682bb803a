"""Start the refseg node with config/refseg.params.yaml, optionally a synthetic camera and rviz.

Examples: ``ros2 launch refseg bringup.launch.py use_synthetic_camera:=true rviz:=true``;
``ros2 launch refseg bringup.launch.py checkpoint:=/path/best.pt device:=cuda
image_topic:=/camera/color/image_raw camera_info_topic:=/camera/color/camera_info
depth_topic:=/camera/aligned_depth_to_color/image_raw``.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "refseg"


def generate_launch_description():
    """Return the launch description: refseg node, synthetic camera and rviz (optional)."""
    share = get_package_share_directory(PACKAGE)
    arguments = [
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "refseg.params.yaml"),
                              description="parameters of the refseg node"),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="model checkpoint; empty = the shipped default"),
        DeclareLaunchArgument("device", default_value="auto",
                              description="auto, cpu, cuda or cuda:N"),
        DeclareLaunchArgument("image_topic", default_value="/camera/image_raw",
                              description="colour image topic"),
        DeclareLaunchArgument("depth_topic", default_value="/camera/depth/image_raw",
                              description="aligned depth topic (16UC1 mm or 32FC1 m)"),
        DeclareLaunchArgument("camera_info_topic", default_value="/camera/camera_info",
                              description="CameraInfo of the colour image"),
        DeclareLaunchArgument("use_synthetic_camera", default_value="false",
                              description="publish the synthetic tabletop world as the camera"),
        DeclareLaunchArgument("rviz", default_value="false",
                              description="start rviz2 with config/refseg.rviz"),
    ]
    refseg = Node(
        package=PACKAGE,
        executable="refseg_node",
        name="refseg",
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "checkpoint": LaunchConfiguration("checkpoint"),
                "device": LaunchConfiguration("device"),
                "image_topic": LaunchConfiguration("image_topic"),
                "depth_topic": LaunchConfiguration("depth_topic"),
                "camera_info_topic": LaunchConfiguration("camera_info_topic"),
            },
        ],
    )
    camera = Node(
        package=PACKAGE,
        executable="synthetic_camera",
        name="synthetic_camera",
        output="screen",
        condition=IfCondition(LaunchConfiguration("use_synthetic_camera")),
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", os.path.join(share, "config", "refseg.rviz")],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    # Spoken commands (speech:=true): the microphone, or speech_source:=FILE.wav / a folder.
    arguments += [
        DeclareLaunchArgument("speech", default_value="false",
                              description="start speech_command: spoken commands -> query"),
        DeclareLaunchArgument("speech_source", default_value="microphone",
                              description="microphone, a .wav file or a folder of them"),
    ]
    speech = Node(
        package=PACKAGE,
        executable="speech_command",
        name="speech_command",
        output="screen",
        parameters=[{"source": LaunchConfiguration("speech_source"),
                     "checkpoint": LaunchConfiguration("checkpoint")}],
        condition=IfCondition(LaunchConfiguration("speech")),
    )
    return LaunchDescription([*arguments, refseg, camera, rviz, speech])
