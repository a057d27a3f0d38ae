"""Perception-level loss: cosine distance of face-recognition embeddings (Deep3DFace, deep3d.txt §4.2, Eq. 4).

``L_per = 1 - <f(I), f(I')> / (||f(I)|| ||f(I')||)``. The paper used an in-house FaceNet; facezoo uses an
ArcFace IResNet (:mod:`facezoo.nn.iresnet`) whose weights the user provides. :class:`FaceEmbedder` wraps the
frozen recogniser with its preprocessing. Where the paper is silent: the official PyTorch code warps both
images to the recogniser's 112x112 ArcFace template from the 5 landmarks (:mod:`facezoo.data.arcface`); give
``FaceEmbedder`` the landmarks and it does the same (kornia's ``warp_affine``, bilinear). Without landmarks
it resizes the whole crop bilinearly to the recogniser's input size (a face in a Deep3DFace crop then sits
higher and smaller than ArcFace expects). Either way it normalises as insightface does, ``(x - 0.5) / 0.5``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facezoo.data.arcface import warp_to_arcface
from facezoo.losses.masks import masked_mean


def cosine_distance(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """``1 - cos(a, b)`` per row: ``[B,D], [B,D] -> [B]`` (Eq. 4 for one image pair per row).

    Example:
        >>> cosine_distance(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]))
        tensor([1.])
    """
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must both be [B,D], got {tuple(a.shape)} and {tuple(b.shape)}")
    return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=eps)


class FaceEmbedder(nn.Module):
    """A frozen face-recognition network with its preprocessing: ``[B,3,H,W]`` in [0, 1] -> ``[B,D]``.

    Args:
        network: the recogniser (e.g. ``facezoo.nn.build("iresnet100")`` with loaded weights); its parameters
            are frozen and it is kept in eval mode.
        input_size: the recogniser's square input (112 for ArcFace).

    Example:
        >>> from facezoo.nn import build
        >>> net = build("iresnet50", layers=(1, 1, 1, 1), width=8)
        >>> FaceEmbedder(net)(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 512])
    """

    def __init__(self, network: nn.Module, input_size: int = 112) -> None:
        super().__init__()
        self.network = network.eval()
        self.input_size = int(input_size)
        for p in self.network.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> FaceEmbedder:
        super().train(False)  # BatchNorm statistics of a pretrained recogniser must never move
        return self

    def forward(self, image: Tensor, landmarks: Tensor | None = None) -> Tensor:
        """Embeddings ``[B,D]`` of ``image [B,3,H,W]`` in [0, 1]; with ``landmarks`` (``[B,68,2]`` or
        ``[B,5,2]`` pixels of ``image``) the face is first warped to the ArcFace template
        (:func:`facezoo.data.arcface.warp_to_arcface`), else the image is resized."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"FaceEmbedder expects image [B,3,H,W] in [0,1], got {tuple(image.shape)}")
        s = self.input_size
        if landmarks is not None:
            if landmarks.ndim != 3 or landmarks.shape[0] != image.shape[0]:
                raise ValueError(
                    f"landmarks: expected [{image.shape[0]},68|5,2] for image {tuple(image.shape)}, "
                    f"got {tuple(landmarks.shape)}"
                )
            image = warp_to_arcface(image, landmarks, s)
        elif image.shape[-2:] != (s, s):
            image = F.interpolate(image, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        return self.network((image - 0.5) / 0.5)

    def distance(
        self,
        image: Tensor,
        rendered: Tensor,
        valid: Tensor | None = None,
        image_landmarks: Tensor | None = None,
        rendered_landmarks: Tensor | None = None,
    ) -> Tensor:
        """Eq. 4 averaged over the batch (scalar; over the ``valid [B]`` rows when given); gradients flow into
        ``rendered`` only. ``image_landmarks`` / ``rendered_landmarks`` align each image to the ArcFace
        template (the official code: the input's ground-truth and the rendering's predicted landmarks)."""
        with torch.no_grad():
            target = self(image, image_landmarks)
        return masked_mean(cosine_distance(target, self(rendered, rendered_landmarks)), valid)
