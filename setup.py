"""ament_python package ``refseg``: the node, its launch files and config."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'refseg'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(include=['refseg_node', 'refseg_node.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.rviz')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='refseg developers',
    maintainer_email='refseg@example.com',
    description='Language-conditioned segmentation node for ROS 2 (Hu et al., ECCV 2016).',
    license='BSD-3-Clause',
    entry_points={
        'console_scripts': [
            'refseg_node = refseg_node.node:main',
            'synthetic_camera = refseg_node.sim.synthetic_camera:main',
            'speech_command = refseg_node.speech.command_node:main',
        ],
    },
)
