import torch

import facezoo.nn as fnn
from facezoo.losses import FaceEmbedder


def test_face_embedder_is_frozen_and_gives_identity_distance():
    net = fnn.build("iresnet50", layers=(1, 1, 1, 1), width=8, input_size=32)
    emb = FaceEmbedder(net, input_size=32)
    emb.train()
    assert not emb.network.training and not any(p.requires_grad for p in emb.parameters())
    image = torch.rand(2, 3, 48, 48)
    assert emb(image).shape == (2, 512)
    assert float(emb.distance(image, image)) < 1e-5
    rendered = torch.rand(2, 3, 48, 48, requires_grad=True)
    d = emb.distance(image, rendered)
    d.backward()
    assert float(d) > 0 and rendered.grad.abs().sum() > 0
