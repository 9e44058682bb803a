"""ROS messages in and out, without a graph.

``cdr_image`` (an Image read from its CDR bytes), ``image_conversion`` (Image and CompressedImage
<-> numpy, the one frame decoder), ``pointcloud2``, ``messages`` (the one builder of the node's
output messages) and ``dds_profile`` (the shipped Fast DDS profile).
"""
