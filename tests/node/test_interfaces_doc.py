"""docs/INTERFACES.md stays up to date: every parameter and message field is listed."""

import re

from refseg_node.parameters import PARAMETERS
from tests.harness import REPO

DOC = (REPO / "docs" / "INTERFACES.md").read_text()
PARAMETER_SECTION = DOC[DOC.index("## Parameters"):]


def test_every_parameter_is_documented_with_its_default():
    for p in PARAMETERS:
        row = next((line for line in PARAMETER_SECTION.splitlines()
                    if line.startswith(f"| `{p.name}` |")), None)
        assert row is not None, f"parameter {p.name} missing from docs/INTERFACES.md"
        default = '""' if p.default == "" else (
            str(p.default).lower() if isinstance(p.default, bool) else str(p.default))
        assert f"`{default}`" in row, (p.name, row)


def test_every_message_field_is_documented():
    for name in ("Segmentation", "Region"):
        text = (REPO / "refseg_msgs" / "msg" / f"{name}.msg").read_text()
        fields = [m.group(1) for m in re.finditer(r"^\s*[\w/\[\]0-9]+\s+(\w+)", text, re.M)]
        assert fields
        for field in fields:
            assert f"`{field}`" in DOC, f"{name}.{field} missing from docs/INTERFACES.md"
