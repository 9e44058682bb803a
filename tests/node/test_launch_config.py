"""The launch file, params file and rviz config: checked statically here, run where ROS is.

``launch`` / ``launch_ros`` are not installable from any registry in this environment, so the
launch file is parsed with ``ast``: every executable it starts must be a console script of
setup.py, every node parameter it sets must be declared by the node, and the arguments the
public contract names must exist. Where ``launch_ros`` is installed and ``refseg`` is in the
ament index (``make setup`` registers it in the venv), the launch file is run for real: a user's
params file reaches the node, a launch argument overrides only what it names, and ``rviz:=true``
without rviz2 leaves no process behind.
"""

import ast

import pytest
import yaml

from refseg_node.parameters import PARAMETERS
from tests.harness import REPO

LAUNCH = REPO / "launch" / "bringup.launch.py"
PARAMS = REPO / "config" / "refseg.params.yaml"
RVIZ = REPO / "config" / "refseg.rviz"
REQUIRED_ARGUMENTS = {"checkpoint", "device", "image_topic", "depth_topic", "camera_info_topic",
                      "use_synthetic_camera", "rviz", "namespace", "node_name"}


def calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def keyword(call, name):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def console_scripts():
    tree = ast.parse((REPO / "setup.py").read_text())
    for call in calls(tree, "setup"):
        entry_points = ast.literal_eval(keyword(call, "entry_points"))
        return {s.split("=")[0].strip(): s.split("=")[1].strip()
                for s in entry_points["console_scripts"]}
    pytest.fail("setup.py has no setup() call")


def literal_args(tree, name):
    return {ast.literal_eval(c.args[0]) for c in calls(tree, name)
            if c.args and isinstance(c.args[0], ast.Constant)}


def launch_arguments(tree):
    """Return ``{name: default}`` of every launch argument (the ARGUMENTS table, params_file)."""
    declared = {name: None for name in literal_args(tree, "DeclareLaunchArgument")}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ARGUMENTS":
            declared.update({name: default for name, default, _ in ast.literal_eval(node.value)})
    return declared


def launch_overrides(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "OVERRIDES":
            return set(ast.literal_eval(node.value))
    pytest.fail("the launch file has no OVERRIDES tuple")


def test_launch_file_starts_existing_executables_with_declared_arguments():
    tree = ast.parse(LAUNCH.read_text())
    defaults = launch_arguments(tree)
    declared = set(defaults)
    assert REQUIRED_ARGUMENTS <= declared
    overrides = launch_overrides(tree)
    used = literal_args(tree, "LaunchConfiguration") | overrides
    assert used <= declared, f"undeclared launch arguments: {used - declared}"
    assert overrides <= {p.name for p in PARAMETERS}, overrides - {p.name for p in PARAMETERS}
    # An override is applied only when given: its default is empty, not a value of its own.
    assert all(defaults[name] == "" for name in overrides), defaults
    scripts = console_scripts()
    nodes = calls(tree, "Node")
    executables = {ast.literal_eval(keyword(n, "executable")) for n in nodes}
    assert {"refseg_node", "synthetic_camera", "speech_command"} <= executables
    for node in nodes:
        package = keyword(node, "package")
        executable = ast.literal_eval(keyword(node, "executable"))
        if isinstance(package, ast.Name) or ast.literal_eval(package) == "refseg":
            assert executable in scripts, f"{executable} is not a console script of setup.py"
        assert keyword(node, "additional_env") is not None, f"{executable}: no Fast DDS profile"
    # Every node started goes into the namespace:= argument; the node's name is node_name:=,
    # "refseg" unless given.
    assert all(getattr(keyword(n, "namespace"), "id", None) == "namespace" for n in nodes)
    refseg = next(n for n in nodes if ast.literal_eval(keyword(n, "executable")) == "refseg_node")
    assert getattr(keyword(refseg, "name"), "id", None) == "node_name"
    assert defaults["node_name"] == "refseg" and defaults["namespace"] == ""
    for module, _, function in (v.partition(":") for v in scripts.values()):
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), module
    source = LAUNCH.read_text()
    assert "refseg.params.yaml" in source and "refseg.rviz" in source
    assert "fastdds.xml" in source and (REPO / "config" / "fastdds.xml").is_file()


def test_params_file_sets_declared_parameters_with_valid_values():
    from refseg_node.parameters import check_value

    values = yaml.safe_load(PARAMS.read_text())["/**"]["ros__parameters"]
    specs = {p.name: p for p in PARAMETERS}
    assert set(values) <= set(specs), set(values) - set(specs)
    for name, value in values.items():
        check_value(name, value)  # the type too: ROS parameters are strictly typed, 0 is not 0.0


def test_setup_installs_the_launch_and_config_files():
    setup = (REPO / "setup.py").read_text()
    assert "launch/*.launch.py" in setup and "config/*.yaml" in setup and "*.rviz" in setup


def test_rviz_config_shows_image_overlay_mask_and_marker():
    config = yaml.safe_load(RVIZ.read_text())
    displays = config["Visualization Manager"]["Displays"]
    topics = {(d["Class"], d.get("Topic", {}).get("Value")) for d in displays}
    assert ("rviz_default_plugins/Image", "/camera/image_raw") in topics
    assert ("rviz_default_plugins/Image", "/refseg/overlay") in topics
    assert ("rviz_default_plugins/Image", "/refseg/mask") in topics
    assert ("rviz_default_plugins/Marker", "/refseg/marker") in topics
    fixed = config["Visualization Manager"]["Global Options"]["Fixed Frame"]
    assert fixed == "camera_color_optical_frame"


LAUNCH_RUNNER = """
import sys
from launch import LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
arguments = [tuple(a.split(":=", 1)) for a in sys.argv[2:]]
service = LaunchService()
service.include_launch_description(IncludeLaunchDescription(
    PythonLaunchDescriptionSource(sys.argv[1]), launch_arguments=arguments))
sys.exit(service.run())
"""


def refseg_share_or_skip():
    pytest.importorskip("launch")
    pytest.importorskip("launch_ros")
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        return get_package_share_directory("refseg")
    except PackageNotFoundError as err:
        pytest.skip(f"refseg is not in the ament index (make setup registers it): {err}")


def children_of(pid):
    """Return the pids of every descendant of ``pid`` (from /proc)."""
    from pathlib import Path

    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def alive(pid):
    from pathlib import Path

    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def load_launch_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bringup", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_node_placement_and_rviz_follow_namespace_and_node_name():
    module = ast.parse(LAUNCH.read_text())
    names = {"node_placement", "rviz_remappings", "RVIZ_NODE_TOPICS", "RVIZ_CAMERA_TOPICS"}
    kept = [n for n in module.body
            if getattr(n, "name", None) in names
            or (isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") in names)]
    scope = {}
    exec(compile(ast.Module(body=kept, type_ignores=[]), str(LAUNCH), "exec"), scope)
    place, remap = scope["node_placement"], scope["rviz_remappings"]
    assert place("", "refseg") == ("", "/refseg")
    assert place("/head/", "refseg") == ("/head", "/head/refseg")
    assert place("robot/wrist", "seg") == ("/robot/wrist", "/robot/wrist/seg")
    assert place("", "") == ("", "/refseg")
    assert remap("", "/refseg") == []                        # the rviz config's own topics
    assert set(remap("/head", "/head/refseg")) == {
        ("/refseg/overlay", "/head/refseg/overlay"), ("/refseg/mask", "/head/refseg/mask"),
        ("/refseg/marker", "/head/refseg/marker"), ("/camera/image_raw", "/head/camera/image_raw")}
    assert ("/refseg/overlay", "/seg/overlay") in remap("", "/seg")
    # What rviz shows is what the remappings name.
    config = yaml.safe_load(RVIZ.read_text())
    shown = {d.get("Topic", {}).get("Value")
             for d in config["Visualization Manager"]["Displays"]} - {None}
    assert shown == {f"/refseg/{t}" for t in scope["RVIZ_NODE_TOPICS"]} | set(
        scope["RVIZ_CAMERA_TOPICS"])


def test_launch_description_builds_where_launch_ros_exists():
    refseg_share_or_skip()
    from launch import LaunchContext
    from launch.actions import OpaqueFunction

    module = load_launch_module()
    description = module.generate_launch_description()
    assert any(isinstance(e, OpaqueFunction) for e in description.entities)
    context = LaunchContext()
    for name, value in {"params_file": str(PARAMS), "use_synthetic_camera": "false",
                        "rviz": "false", "checkpoint": "", "device": "cpu", "image_topic": "",
                        "depth_topic": "", "camera_info_topic": "", "speech": "false",
                        "speech_source": "microphone", "namespace": "head",
                        "node_name": "refseg"}.items():
        context.launch_configurations[name] = value
    share = module.get_package_share_directory("refseg")
    nodes = module.launch_setup(context, share)
    # refseg_node, synthetic_camera and speech_command (conditional); rviz not asked for
    assert len(nodes) == 3


def test_launch_honours_the_params_file_and_a_missing_rviz_orphans_nothing(
        ros_env, graph, checkpoints, tmp_path):
    """``ros2 launch refseg bringup.launch.py params_file:=my.yaml rviz:=true`` for real."""
    import signal
    import subprocess
    import sys

    from tests.harness import wait_active, wait_until

    refseg_share_or_skip()
    from launch_ros.actions import Node  # noqa: F401 - launch_ros is importable here

    rviz_missing = not load_launch_module().rviz_available()
    my_params = tmp_path / "my.yaml"
    my_params.write_text(yaml.safe_dump({"refseg": {"ros__parameters": {
        "checkpoint": str(checkpoints["everything"]), "device": "cpu",
        "image_topic": "/from_file/image", "depth_topic": "/from_file/depth",
        "camera_info_topic": "/from_file/info", "threshold": 0.25, "mode": "once"}}}))
    args = [f"params_file:={my_params}", "camera_info_topic:=/from_cli/info",
            f"rviz:={'true' if rviz_missing else 'false'}"]
    log = open(tmp_path / "launch.log", "wb")
    launch = subprocess.Popen([sys.executable, "-c", LAUNCH_RUNNER, str(LAUNCH), *args],
                              env=ros_env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)

    class Launched:
        def check_alive(self):
            assert launch.poll() is None, (tmp_path / "launch.log").read_text()[-3000:]

    try:
        wait_active(graph, Launched())
        got = graph.get_parameters(["checkpoint", "device", "image_topic", "depth_topic",
                                    "camera_info_topic", "threshold", "mode"])
        assert got == {"checkpoint": str(checkpoints["everything"]), "device": "cpu",
                       "image_topic": "/from_file/image", "depth_topic": "/from_file/depth",
                       "camera_info_topic": "/from_cli/info", "threshold": 0.25,
                       "mode": "once"}
        text = (tmp_path / "launch.log").read_text()
        if rviz_missing:
            assert "rviz2 is not installed" in text
        children = children_of(launch.pid)
        assert children, "the launch started no process"
    finally:
        launch.send_signal(signal.SIGINT)
        try:
            launch.wait(60)
        except subprocess.TimeoutExpired:
            launch.kill()
        log.close()
    wait_until(lambda: not any(alive(p) for p in children), 30.0, "the launched processes to exit")
    assert launch.returncode == 0, (tmp_path / "launch.log").read_text()[-3000:]

