"""Start the refseg node with a params file, optionally a synthetic camera and rviz.

The params file (``params_file:=``, default ``config/refseg.params.yaml``) is the one place to
configure the node. The launch arguments ``checkpoint``, ``device``, ``image_topic``,
``depth_topic`` and ``camera_info_topic`` override it only when given on the command line.

``namespace:=`` and ``node_name:=`` (default ``refseg``) place the node: its topics and service
are relative to it (``/head/refseg/query`` with ``namespace:=head``), and the camera, rviz and
speech nodes started here go into the same namespace (rviz's displays and the speech node's
commands follow the node), so one launch per camera runs one node per camera. A params file's
top-level key is the node's name (``refseg:``) or ``/**:`` for any name.

Examples: ``ros2 launch refseg bringup.launch.py use_synthetic_camera:=true rviz:=true``;
``ros2 launch refseg bringup.launch.py namespace:=head image_topic:=/head_camera/image_raw``;
``ros2 launch refseg bringup.launch.py params_file:=my.yaml``;
``ros2 launch refseg bringup.launch.py checkpoint:=/path/best.pt device:=cuda
image_topic:=/camera/color/image_raw camera_info_topic:=/camera/color/camera_info
depth_topic:=/camera/aligned_depth_to_color/image_raw``.

Every process started here gets the shipped Fast DDS profile (``config/fastdds.xml``: camera-size
frames over shared memory) through the variable this distribution's Fast DDS reads:
``FASTRTPS_DEFAULT_PROFILES_FILE`` on Jazzy (Fast DDS 2.x), ``FASTDDS_DEFAULT_PROFILES_FILE`` on
Kilted and later (3.x), unless the user set a profile. A camera driver started from another
launch file needs the same variable to deliver best-effort camera-size frames on one host.
With ``rviz:=true`` and no rviz2 installed, a warning says so and the rest runs.
"""

import os

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from refseg_node.ros_io.dds_profile import apply_default_profile

PACKAGE = "refseg"
# Launch arguments that override the params file when set (empty = not set).
OVERRIDES = ("checkpoint", "device", "image_topic", "depth_topic", "camera_info_topic")
# (name, default, description) of the launch arguments besides params_file.
ARGUMENTS = (
    ("namespace", "", "namespace of the node and of the camera, rviz and speech nodes started "
                      "here (one per camera)"),
    ("node_name", "refseg", "name of the refseg node; its topics are "
                            "<namespace>/<node_name>/..."),
    ("checkpoint", "", "model checkpoint; empty = the params file's"),
    ("device", "", "auto, cpu, cuda or cuda:N; empty = the params file's"),
    ("image_topic", "", "colour image topic; empty = the params file's"),
    ("depth_topic", "", "aligned depth topic (16UC1 mm or 32FC1 m); empty = the params file's"),
    ("camera_info_topic", "", "CameraInfo of the colour image; empty = the params file's"),
    ("use_synthetic_camera", "false", "publish the synthetic tabletop world as the camera"),
    ("rviz", "false", "start rviz2 with config/refseg.rviz (if installed)"),
    ("speech", "false", "start speech_command: spoken commands -> query"),
    ("speech_source", "microphone", "microphone, a .wav file or a folder of them"),
)
# The topics config/refseg.rviz shows: the node's (under /refseg) and the camera's.
RVIZ_NODE_TOPICS = ("overlay", "mask", "marker")
RVIZ_CAMERA_TOPICS = ("/camera/image_raw",)


def dds_env():
    """Return the environment additions of every process: the shipped Fast DDS profile."""
    env = dict(os.environ)
    apply_default_profile(env)
    return {name: value for name, value in env.items() if os.environ.get(name) != value}


def rviz_available():
    """Return whether the rviz2 package is installed."""
    try:
        get_package_share_directory("rviz2")
    except PackageNotFoundError:
        return False
    return True


def node_placement(namespace, node_name):
    """Return the namespace (``/head``, ``""`` for none) and the full name of the refseg node."""
    namespace = namespace.strip().strip("/")
    namespace = f"/{namespace}" if namespace else ""
    node_name = node_name.strip() or "refseg"
    return namespace, f"{namespace}/{node_name}"


def rviz_remappings(namespace, full_name):
    """Return remappings of config/refseg.rviz's topics (written for /refseg) onto the node's."""
    if full_name == "/refseg":
        return []
    return [(f"/refseg/{topic}", f"{full_name}/{topic}") for topic in RVIZ_NODE_TOPICS] + [
        (topic, f"{namespace}{topic}") for topic in RVIZ_CAMERA_TOPICS if namespace]


def launch_setup(context, share):
    """Build the actions once the launch arguments are known."""
    overrides = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDES}
    overrides = {name: value for name, value in overrides.items() if value != ""}
    namespace, full_name = node_placement(LaunchConfiguration("namespace").perform(context),
                                          LaunchConfiguration("node_name").perform(context))
    node_name = full_name.rpartition("/")[2]
    env = dds_env()
    actions = [Node(
        package=PACKAGE,
        executable="refseg_node",
        name=node_name,
        namespace=namespace,
        output="screen",
        parameters=[LaunchConfiguration("params_file"), overrides],
        additional_env=env,
    ), Node(
        package=PACKAGE,
        executable="synthetic_camera",
        name="synthetic_camera",
        namespace=namespace,
        output="screen",
        additional_env=env,
        condition=IfCondition(LaunchConfiguration("use_synthetic_camera")),
    )]
    if LaunchConfiguration("rviz").perform(context).lower() in ("true", "1", "yes"):
        if rviz_available():
            actions.append(Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                namespace=namespace,
                arguments=["-d", os.path.join(share, "config", "refseg.rviz")],
                remappings=rviz_remappings(namespace, full_name),
                additional_env=env,
            ))
        else:
            actions.append(LogInfo(msg="[refseg] rviz:=true but rviz2 is not installed "
                                       "(apt install ros-$ROS_DISTRO-rviz2); the node and "
                                       "camera run without it"))
    # Spoken commands (speech:=true): the microphone, or speech_source:=FILE.wav / a folder.
    actions.append(Node(
        package=PACKAGE,
        executable="speech_command",
        name="speech_command",
        namespace=namespace,
        output="screen",
        parameters=[{"source": LaunchConfiguration("speech_source"),
                     "checkpoint": LaunchConfiguration("checkpoint"),
                     "refseg_node": full_name}],
        additional_env=env,
        condition=IfCondition(LaunchConfiguration("speech")),
    ))
    return actions


def generate_launch_description():
    """Return the launch description: refseg node, synthetic camera and rviz (optional)."""
    share = get_package_share_directory(PACKAGE)
    arguments = [
        DeclareLaunchArgument("params_file",
                              default_value=os.path.join(share, "config", "refseg.params.yaml"),
                              description="parameters of the refseg node (the place to "
                                          "configure it)"),
        *(DeclareLaunchArgument(name, default_value=default, description=description)
          for name, default, description in ARGUMENTS),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=launch_setup,
                                                         args=[share])])
