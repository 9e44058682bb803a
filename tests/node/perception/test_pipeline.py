"""One frame through the pipeline (perception.pipeline) with a real tiny model and real depth."""

import dataclasses

import numpy as np
import pytest
from std_msgs.msg import Header

from refseg_model import Segmenter
from refseg_model.synth import make_demo_scene
from refseg_node.language.queries import prepare_query
from refseg_node.parameters import PARAMETERS, Settings
from refseg_node.perception.pipeline import NotActiveError, carried_frame, segment_frame
from refseg_node.perception.tracking import Carried
from refseg_node.ros_io.image_conversion import depth16_msg
from refseg_node.sensors import SensorCache
from refseg_node.sim.synthetic_camera import camera_info_msg
from tests.harness import make_checkpoint

W, H = 160, 120


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    path = make_checkpoint(tmp_path_factory.mktemp("ckpt") / "everything.pt", bias=6.0)
    return Segmenter.from_checkpoint(path, device="cpu")


@pytest.fixture(scope="module")
def scene():
    return make_demo_scene(0, W, H)[0]


def settings(**values):
    return dataclasses.replace(Settings.from_values({p.name: p.default for p in PARAMETERS}),
                               **values)


def rgbd(scene, with_depth=True):
    header = Header(frame_id="camera")
    sensors = SensorCache()
    if with_depth:
        sensors.add_depth(depth16_msg(scene.depth_m, header))
        sensors.set_camera_info(camera_info_msg(scene.K, W, H, header))
    return header, sensors


def test_a_frame_with_depth_gives_the_target_its_point_and_extent(segmenter, scene):
    header, sensors = rgbd(scene)
    warnings = []
    query = prepare_query("pick up the jar on the table", "the jar on the table",
                          segmenter.unknown_words)
    result = segment_frame(segmenter, header, scene.rgb, query, settings(), sensors,
                           lambda kind, text: warnings.append(kind))
    assert result.command == "pick up the jar on the table" and result.header is header
    assert result.target.found and result.mask.all() and result.probs.shape == (H, W)
    assert result.threshold == pytest.approx(segmenter.threshold)     # -1: the checkpoint's
    assert result.point is not None and result.point[2] > 0
    assert result.geometry.extent is not None and result.reason == ""
    assert not result.tracked and warnings == []


def test_without_a_depth_stream_the_answer_says_why_there_is_no_point(segmenter, scene):
    header, sensors = rgbd(scene, with_depth=False)
    warnings = []
    query = prepare_query("the jar", "the jar", segmenter.unknown_words)
    result = segment_frame(segmenter, header, scene.rgb, query, settings(), sensors,
                           lambda kind, text: warnings.append(kind))
    assert result.target.found and result.point is None and result.geometry is None
    assert result.reason == "no depth image received on camera/depth/image_raw"
    assert warnings == []                     # no depth stream at all: not a fault


def test_a_query_the_model_knows_nothing_of_segments_nothing(segmenter, scene):
    header, sensors = rgbd(scene)
    warnings = []
    query = prepare_query("ramasse la tasse", "ramasse la tasse", segmenter.unknown_words)
    assert query.nothing_known
    result = segment_frame(segmenter, header, scene.rgb, query, settings(), sensors,
                           lambda kind, text: warnings.append(kind))
    assert not result.target.found and not result.mask.any() and result.probs is None
    assert result.inference_time == 0.0 and "vocabulary" in result.reason
    assert result.unknown_words == ("ramasse", "la", "tasse") and warnings == ["unknown_words"]


def test_a_carried_mask_is_located_afresh_on_its_frame(scene):
    header, sensors = rgbd(scene)
    mask = np.zeros((H, W), bool)
    mask[40:80, 50:100] = True
    query = prepare_query("the cup", "the cup", lambda expression: ())
    result = carried_frame(header, scene.rgb, Carried(5, 2, mask, mask.astype(np.float32), None),
                           query, settings(), sensors, lambda kind, text: None)
    assert result.tracked and result.tracked_age == 3 and result.inference_time == 0.0
    assert result.target.area == 40 * 50 and result.point is not None
    empty = carried_frame(header, scene.rgb, Carried(6, 2, np.zeros((H, W), bool),
                                                     np.zeros((H, W), np.float32), None),
                          query, settings(), sensors, lambda kind, text: None)
    assert not empty.target.found and empty.reason == "the tracked mask is empty"


def test_without_a_model_nothing_is_segmented(scene):
    header, sensors = rgbd(scene)
    query = prepare_query("the cup", "the cup", lambda expression: ())
    with pytest.raises(NotActiveError):
        segment_frame(None, header, scene.rgb, query, settings(), sensors, lambda k, t: None)
