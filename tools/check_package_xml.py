"""Check ROS package manifests: well-formed XML, package format 3, valid per catkin_pkg.

This is what ``xmllint --schema package_format3.xsd`` checks in a ROS build farm, done with the
parser ROS itself uses (the schema file cannot be downloaded on every machine).
"""

import sys
import xml.etree.ElementTree as ET

from catkin_pkg.package import InvalidPackage, parse_package


def check(path):
    """Return a list of problems found in the manifest at ``path``."""
    problems = []
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        return [f'{path}: not well-formed XML: {exc}']
    if root.tag != 'package' or root.get('format') != '3':
        problems.append(f'{path}: expected <package format="3">')
    try:
        pkg = parse_package(path)
        pkg.validate()
    except InvalidPackage as exc:
        problems.append(f'{path}: invalid ROS package manifest: {exc}')
    return problems


def main(argv=None):
    """Check every manifest named on the command line; exit 1 on any problem."""
    paths = sys.argv[1:] if argv is None else argv
    problems = [p for path in paths for p in check(path)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f'{len(paths)} package.xml file(s) OK')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
