"""The procedural tabletop world: RGB-D scenes of everyday objects with referring expressions.

Needs only numpy and OpenCV (no torch)::

    from refseg_model.synth import generate_scene
    scene = generate_scene(seed=3)            # Scene: rgb, depth_m, K, objects, regions
    for region in scene.regions:
        print(region.region_id, region.kind, region.expressions, region.mask.sum())
"""

from refseg_model.synth.scene import (
    DEMO_COMMAND,
    DEMO_EXPRESSION,
    GENERATOR_VERSION,
    Region,
    Scene,
    SceneObject,
    generate_scene,
    make_demo_scene,
)

__all__ = ["DEMO_COMMAND", "DEMO_EXPRESSION", "GENERATOR_VERSION", "Region", "Scene",
           "SceneObject", "generate_scene", "make_demo_scene"]
