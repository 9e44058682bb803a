"""The debug lines of the node's frame timings (what each stage of one answer took).

Pure: the worker and the tracker pass wall-clock seconds; the lines go to the node's debug log.
"""

from __future__ import annotations


def frame_timings(stamp: float, received: float, start: float, inference: float,
                  segmented: float, published: float, handed: float) -> str:
    """Return the debug line of one segmented frame's timings (wall-clock seconds in).

    ``handed``: when the tracker had the answer (after the publish, off the answer's latency).
    """
    return (f"frame timings ms: stamp->received {1e3 * (received - stamp):.1f}, waited "
            f"{1e3 * (start - received):.1f}, model {1e3 * inference:.1f}, rest of "
            f"segmentation {1e3 * (segmented - start - inference):.1f}, publish "
            f"{1e3 * (published - segmented):.1f}, tracker hand-off "
            f"{1e3 * (handed - published):.1f}")


def tracked_frame_timings(age: int, received: float, times: tuple[float, ...],
                          cpu: float) -> str:
    """Return the debug line of one tracked frame's timings (wall-clock seconds in).

    ``times``: when the tracker started on the frame, had converted it, had tracked it, had its
    result (the wait for its depth frame included) and had published it; ``cpu``: the tracker
    thread's CPU seconds for it (what the frame costs whatever the machine's load).
    """
    start, converted, tracked, computed, published = times
    return (f"tracked frame timings ms (age {age}): waited {1e3 * (start - received):.1f}, "
            f"convert {1e3 * (converted - start):.1f}, track {1e3 * (tracked - converted):.1f}, "
            f"depth wait and rest of the frame {1e3 * (computed - tracked):.1f}, publish "
            f"{1e3 * (published - computed):.1f}; thread cpu {1e3 * cpu:.1f}")


def header_seconds(header) -> float:
    """Return a header's stamp in seconds."""
    return header.stamp.sec + header.stamp.nanosec * 1e-9
