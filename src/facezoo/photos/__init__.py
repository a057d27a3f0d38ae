"""Real photos in, reconstructions out: landmarks beside the photos or from a detector, alignment, the
method's network and/or fitting (:mod:`facezoo.fitting`), and the exports of ``facezoo reconstruct``."""

from facezoo.photos.detector import DETECTOR_EXTRA, DlibLandmarkDetector
from facezoo.photos.export import contact_sheet, overlay_image, write_exports
from facezoo.photos.models import ResolvedModel, regress_photos, resolve_model
from facezoo.photos.pipeline import PhotoResult, reconstruct_photos
from facezoo.photos.sources import PHOTO_SUFFIXES, Photo, find_landmark_file, find_photos, load_photos

__all__ = [
    "DETECTOR_EXTRA",
    "DlibLandmarkDetector",
    "PHOTO_SUFFIXES",
    "Photo",
    "PhotoResult",
    "ResolvedModel",
    "contact_sheet",
    "find_landmark_file",
    "find_photos",
    "load_photos",
    "overlay_image",
    "reconstruct_photos",
    "regress_photos",
    "resolve_model",
    "write_exports",
]
