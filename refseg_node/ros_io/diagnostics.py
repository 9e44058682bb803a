"""``/diagnostics`` messages of the node's health (``refseg_node.health.HealthReport``).

One ``diagnostic_msgs/DiagnosticStatus`` per report, named ``<node name>: segmentation`` as
``diagnostic_updater`` names a task, with the device as ``hardware_id`` and every figure as a
``KeyValue``; the node publishes it in a ``DiagnosticArray`` once a second.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from refseg_node.health import ERROR, OK, WARN, HealthReport

DIAGNOSTICS_TOPIC = "/diagnostics"
TASK = "segmentation"
LEVELS = {OK: DiagnosticStatus.OK, WARN: DiagnosticStatus.WARN, ERROR: DiagnosticStatus.ERROR}


def diagnostic_array(report: HealthReport, node_name: str, hardware_id: str,
                     stamp) -> DiagnosticArray:
    """Return the ``DiagnosticArray`` of ``report`` (``stamp``: a ``builtin_interfaces/Time``)."""
    status = DiagnosticStatus(level=LEVELS[report.level], name=f"{node_name}: {TASK}",
                              message=report.message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=v) for k, v in report.values])
    msg = DiagnosticArray(status=[status])
    msg.header.stamp = stamp
    return msg
