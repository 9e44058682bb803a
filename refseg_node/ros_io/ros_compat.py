"""What differs between the ROS 2 distributions refseg runs on (Jazzy, the LTS, and Kilted).

- ``rclpy.init`` returns a context manager on Kilted and None on Jazzy: :func:`ros_session`
  is ``with rclpy.init(args=args):`` on both.
- On Jazzy an invalid lifecycle transition asked for over ``~/change_state`` (``activate``
  while active) raises ``RCLError`` out of ``spin()`` and ends the process; Kilted answers
  ``success=False``. :func:`refuse_invalid_transitions` makes both answer ``success=False``.

The Fast DDS profile variable (``FASTRTPS_...`` on Jazzy, ``FASTDDS_...`` on Kilted) is in
``refseg_node.ros_io.dds_profile``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import rclpy
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy


@contextmanager
def ros_session(args=None) -> Iterator[None]:
    """Initialise rclpy's default context for the ``with`` block; shut it down after.

    Kilted's ``rclpy.init`` returns a context manager and is used as one; Jazzy's returns None
    (``with rclpy.init()`` raises ``TypeError``), so the block is closed here the same way.
    """
    manager = rclpy.init(args=args)
    if manager is not None and hasattr(manager, "__enter__"):
        with manager:
            yield
        return
    try:
        yield
    finally:
        rclpy.try_shutdown()


def transition_of(available, transition_id: int, label: str) -> tuple[int, str] | None:
    """Return the (id, label) of the requested transition among ``available``, else None.

    ``available``: rclpy's ``available_transitions`` (tuples that start with id and label). A
    request names its transition by ``label`` when one is given (as rclpy reads it), else by
    ``transition_id``.
    """
    for available_id, available_label, *_ in available:
        if (label and available_label == label) or (not label and available_id == transition_id):
            return available_id, available_label
    return None


def refuse_invalid_transitions(node, warn: Callable[[str], None]) -> None:
    """Answer an invalid ``~/change_state`` request of lifecycle ``node`` with success=False.

    The request is checked against the transitions the node's current state offers; a valid one
    goes to rclpy's own handler unchanged. ``warn`` gets one line per refused request.
    """
    service = node._service_change_state      # rclpy's ChangeState server of the lifecycle node
    handle = service.callback

    def on_change_state(request, response):
        machine = node._state_machine
        wanted = request.transition
        if transition_of(list(machine.available_transitions), wanted.id, wanted.label) is None:
            state = machine.current_state[1]
            name = wanted.label or f"id {wanted.id}"
            warn(f"lifecycle transition {name!r} refused: not available in state {state!r}")
            response.success = False
            return response
        try:
            return handle(request, response)
        except _rclpy.RCLError as err:  # Jazzy: refused by rcl; it must not end the node
            warn(f"lifecycle transition {wanted.label or wanted.id!r} failed: "
                 f"{type(err).__name__}: {err}")
            response.success = False
            return response

    service.callback = on_change_state
