"""An optional 68-point landmark detector: dlib's HOG face detector and its iBUG 300-W shape predictor.

Install with the ``landmarks`` extra (``pip install 'facezoo[landmarks]'``): ``dlib-bin`` (dlib's prebuilt
wheels, Boost Software License) and ``face-recognition-models`` (which ships dlib's
``shape_predictor_68_face_landmarks.dat`` inside the package: no download at run time). **Licence of the
weights**: the predictor was trained on the iBUG 300-W data set, whose licence excludes commercial use;
the predictor inherits that restriction (dlib's own notes say so). Use it for research, or bring your own
landmark files (``.pts`` / ``.txt`` / ``.mat`` beside the photos), which is always preferred when present.

Why this one: it gives the 68 iBUG points facezoo's fitting and metrics use, from a registry package, on
CPU, in tens of milliseconds per photo. The other candidate, ``facenet-pytorch``'s MTCNN, gives five points
only and pins an old torch.

Example:
    >>> try:
    ...     detector = DlibLandmarkDetector()
    ... except ImportError as err:
    ...     print("facezoo[landmarks]" in str(err))
    ... else:
    ...     print(True)
    True
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

__all__ = ["DETECTOR_EXTRA", "DlibLandmarkDetector"]

DETECTOR_EXTRA = "landmarks"


class DlibLandmarkDetector:
    """``detector(image [3,H,W] in [0,1]) -> [68,2]`` iBUG landmarks (photo pixels) of the largest face.

    Args:
        predictor: a dlib ``shape_predictor_68_face_landmarks.dat`` (default: the one in
            ``face-recognition-models``).
        upsample: times the HOG detector upsamples the image (1 finds faces down to ~40 px).

    Raises:
        ImportError: dlib or face-recognition-models is missing (the message names the extra).
    """

    name = "dlib-68"

    def __init__(self, predictor: str | None = None, upsample: int = 1) -> None:
        try:
            import dlib
        except ImportError as err:
            raise ImportError(
                f"the landmark detector needs dlib: pip install 'facezoo[{DETECTOR_EXTRA}]' (dlib-bin + "
                "face-recognition-models; the 68-point predictor is for non-commercial use, see "
                "facezoo.photos.detector), or put landmark files beside the photos"
            ) from err
        if predictor is None:
            try:
                import face_recognition_models
            except ImportError as err:
                raise ImportError(
                    f"the landmark detector needs dlib's 68-point predictor: pip install "
                    f"'facezoo[{DETECTOR_EXTRA}]' (face-recognition-models ships it), or pass its path"
                ) from err
            predictor = face_recognition_models.pose_predictor_model_location()
        self._detect = dlib.get_frontal_face_detector()
        self._predict = dlib.shape_predictor(str(predictor))
        self._rect = dlib.rectangle
        self.upsample = int(upsample)

    def __call__(self, image: Tensor) -> np.ndarray:
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"image: expected [3,H,W], got {tuple(image.shape)}")
        rgb = (image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        faces = self._detect(rgb, self.upsample)
        if len(faces) == 0:
            from facezoo.data.io import BadSampleError

            raise BadSampleError("<image>", "the detector found no face")
        face = max(faces, key=lambda r: r.width() * r.height())
        shape = self._predict(rgb, face)
        # dlib's pixel (c, r) is facezoo's pixel centre (c + 0.5, r + 0.5)
        return np.array([[p.x + 0.5, p.y + 0.5] for p in shape.parts()], dtype=np.float64)
