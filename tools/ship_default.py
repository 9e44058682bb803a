"""Export a training checkpoint as the shipped default: weights, config, vocabulary; no optimiser.

python tools/ship_default.py runs/tabletop/best.pt model/refseg_model/weights/tabletop.pt
python tools/ship_default.py runs/tabletop/last.pt runs/final/final384.pt --input 384x288
python tools/ship_default.py tabletop.pt runs/ab/init_landmark.pt --context landmark
python tools/ship_default.py runs/final/final384.pt tabletop.pt --exposure-range 93,150

``--input WxH`` sets the network's input size (the network is fully convolutional: the same
weights run at any multiple of the stride; a larger input helps small objects, at the cost of
the pixels). The calibrated threshold of the source is dropped then: calibrate again.
``--context landmark`` adds the landmark grounding (``network.LandmarkGrounding``) to a network
with the relational context, its new convolution at zero: the network answers as before, and a
warm start (``refseg-train --init``) trains the block.
``--exposure-range LOW,HIGH`` sets ``ModelConfig.exposure_range`` (the exposure compensation
before the network; ``none`` removes it): the 5-95% range of the training scenes' mean luma.
"""

import argparse
import dataclasses
import sys

from refseg_model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    model_config_of,
    preprocessing_dict,
    save_inference_checkpoint,
)
from refseg_model.network import build_model


def with_input(payload: dict, width: int, height: int) -> dict:
    """Return ``payload`` set to run at ``width`` x ``height`` (multiples of the stride)."""
    stride = int(payload["preprocessing"].get("stride", 32))
    if width <= 0 or height <= 0 or width % stride or height % stride:
        raise ValueError(f"input {width}x{height}: both sides must be positive multiples of "
                         f"the network's stride {stride}")
    cfg = dataclasses.replace(model_config_of(payload), input_width=width, input_height=height)
    out = dict(payload, model_config=cfg.to_dict(), preprocessing=preprocessing_dict(cfg))
    out.pop("threshold", None)        # chosen at the old size: calibrate again
    out.pop("threshold_sweep", None)
    return out


def with_context(payload: dict, context: str) -> dict:
    """Return ``payload`` with its network's ``context`` changed; new layers keep their start."""
    old = model_config_of(payload)
    if context == old.context:
        return payload
    if old.context == "none" or context == "none":
        raise ValueError(f"--context {context}: only a network with a context block can gain "
                         f"or lose the landmark grounding (this one has {old.context!r})")
    cfg = dataclasses.replace(old, context=context)
    model = build_model(cfg, vocabulary=payload["vocabulary"])
    state = model.state_dict()
    unknown = sorted(set(payload["state_dict"]) - set(state))
    if unknown:
        raise ValueError(f"--context {context}: weights with no place: {unknown}")
    state.update(payload["state_dict"])
    return dict(payload, model_config=cfg.to_dict(), state_dict=state)


def with_exposure_range(payload: dict, text: str) -> dict:
    """Return ``payload`` with ``exposure_range`` set from ``"LOW,HIGH"`` (or ``"none"``)."""
    bounds = None
    if text.lower() != "none":
        try:
            bounds = [float(v) for v in text.split(",")]
        except ValueError:
            raise ValueError(f"--exposure-range {text!r}: expected LOW,HIGH, e.g. 93,150") \
                from None
    cfg = dataclasses.replace(model_config_of(payload), exposure_range=bounds)
    return dict(payload, model_config=cfg.to_dict())


def main(argv=None) -> int:
    """Read ``SRC``, write ``DST`` (float32 weights, written atomically), print its size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--input", help="network input WxH, e.g. 384x288")
    parser.add_argument("--context", choices=("relational", "landmark"),
                        help="change the network's context block (see above)")
    parser.add_argument("--exposure-range", metavar="LOW,HIGH",
                        help="exposure compensation before the network (see above)")
    args = parser.parse_args(argv)
    payload = load_checkpoint(args.src)
    if args.input:
        try:
            width, height = (int(v) for v in args.input.lower().split("x"))
        except ValueError:
            parser.error(f"--input {args.input!r}: expected WxH, e.g. 384x288")
        try:
            payload = with_input(payload, width, height)
        except ValueError as err:
            parser.error(str(err))
    if args.context:
        try:
            payload = with_context(payload, args.context)
        except ValueError as err:
            parser.error(str(err))
    if args.exposure_range:
        try:
            payload = with_exposure_range(payload, args.exposure_range)
        except (ValueError, CheckpointError) as err:
            parser.error(str(err))
    path = save_inference_checkpoint(payload, args.dst)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB) from {args.src}"
          + (f", input {args.input}" if args.input else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
