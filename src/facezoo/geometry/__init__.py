"""Geometry: rotations, cameras, 300W-LP poses, mesh ops, ICP, voxels (frames, units: docs/architecture.md)"""

from facezoo.geometry.cameras import Perspective, WeakPerspective
from facezoo.geometry.icp import similarity_icp, umeyama, weak_perspective_icp
from facezoo.geometry.mesh import (
    cotangent_laplacian,
    crop,
    edge_lengths,
    edges,
    face_normals,
    symmetric_pairs,
    uniform_laplacian,
    vertex_neighbours,
    vertex_normals,
)
from facezoo.geometry.pose_300wlp import camera_from_300wlp, pose_300wlp_from_camera, yaw_degrees
from facezoo.geometry.rotations import (
    EULER_CONVENTIONS,
    axis_angle_to_matrix,
    deep3d_row_matrix,
    euler_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_to_matrix,
    rot_x,
    rot_y,
    rot_z,
    rotation_6d_to_matrix,
)
from facezoo.geometry.voxelize import image_space_points, volume_surface, voxelize

__all__ = [
    "EULER_CONVENTIONS",
    "Perspective",
    "WeakPerspective",
    "axis_angle_to_matrix",
    "camera_from_300wlp",
    "cotangent_laplacian",
    "crop",
    "deep3d_row_matrix",
    "edge_lengths",
    "edges",
    "euler_to_matrix",
    "face_normals",
    "matrix_to_axis_angle",
    "matrix_to_euler",
    "matrix_to_quaternion",
    "matrix_to_rotation_6d",
    "pose_300wlp_from_camera",
    "quaternion_to_matrix",
    "rot_x",
    "rot_y",
    "rot_z",
    "rotation_6d_to_matrix",
    "similarity_icp",
    "symmetric_pairs",
    "umeyama",
    "uniform_laplacian",
    "vertex_neighbours",
    "vertex_normals",
    "yaw_degrees",
    "image_space_points",
    "volume_surface",
    "voxelize",
    "weak_perspective_icp",
]
