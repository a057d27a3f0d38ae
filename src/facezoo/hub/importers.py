"""Importers: officially released weights (downloaded by the user) into facezoo checkpoints.

**deep3d-official** — Deep3DFaceRecon_pytorch's ``epoch_20.pth`` (``checkpoints/<name>/epoch_20.pth`` of the
official PyTorch release) -> a :class:`~facezoo.methods.Deep3DFace` checkpoint with the ``bfm-deep3d`` model.
The official file is ``{"net_recon": state_dict, "opt_00": ..., "sched_00": ...}``
(``BaseModel.save_networks``); ``net_recon`` is ``ReconNetWrapper``: a torchvision-layout ResNet-50
without its ``fc`` under ``backbone.`` and seven 1x1-convolution heads ``final_layers.0..6`` on the pooled
2048-d feature, in the order id 80, exp 64, tex 80, angles 3, SH 27, (tx, ty) 2, tz 1 — 257 outputs.
facezoo's R-Net is the same ResNet-50 (same key names) with one 257-way ``fc`` whose output splits id, exp,
tex, angles, light, translation in the same order, so the mapping is:

* ``backbone.<key>`` -> ``rnet.<key>`` (every backbone tensor, unchanged);
* ``final_layers.k.weight [n_k, 2048, 1, 1]`` stacked in k order -> ``rnet.fc.weight [257, 2048]`` (a 1x1
  convolution on a 1x1 map is a linear layer); the biases stacked -> ``rnet.fc.bias [257]``;
* the official code adds ``init_lit`` (0.8 on the first SH coefficient of each colour channel) to the
  predicted gamma in ``compute_color``; facezoo keeps that ambient term in the fc bias
  (``deep3d.AMBIENT``), so 0.8 is added to the bias rows of light coefficients 0, 9 and 18 (the official
  ``gamma.reshape(B, 3, 9)`` layout is facezoo's ``[3 channels x 9]`` too).

The camera and rotation conventions (focal 1015 for a 224 crop, centre 112, camera distance 10 official units)
are Deep3DFace's defaults; the imported checkpoint records them as init arguments (image_size 224, focal 1015,
camera_distance 1000 mm, ``output_scale`` 1).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["OFFICIAL_HEADS", "import_deep3d_official", "map_deep3d_official"]

#: Deep3DFaceRecon_pytorch's heads (``ReconNetWrapper.final_layers``), in output order
OFFICIAL_HEADS = (("id", 80), ("exp", 64), ("tex", 80), ("angles", 3), ("gamma", 27), ("txy", 2), ("tz", 1))
#: the official ``init_lit`` (added to gamma_0 of each colour channel)
INIT_LIT = 0.8
FEATURE_DIM = 2048


def map_deep3d_official(state: Mapping, what: str = "deep3d-official") -> dict:
    """The official ``net_recon`` state dict mapped onto facezoo's R-Net (``rnet.*`` keys), checked key by key
    against a freshly built ``resnet50`` R-Net (missing, unexpected and mis-shaped keys all named).

    Raises:
        ValueError: the heads or the backbone do not match the official ResNet-50 R-Net.
    """
    import torch

    import facezoo.nn as fnn
    from facezoo.nn.weights import state_dict_mismatch

    heads, problems = [], []
    for k, (name, n) in enumerate(OFFICIAL_HEADS):
        weight, bias = state.get(f"final_layers.{k}.weight"), state.get(f"final_layers.{k}.bias")
        if weight is None or bias is None:
            problems.append(f"final_layers.{k} ({name}, {n} outputs) is missing")
        elif tuple(weight.shape) != (n, FEATURE_DIM, 1, 1) or tuple(bias.shape) != (n,):
            problems.append(
                f"final_layers.{k} ({name}): expected weight ({n}, {FEATURE_DIM}, 1, 1) and bias ({n},), got "
                f"{tuple(weight.shape)} and {tuple(bias.shape)}"
            )
        else:
            heads.append((weight.reshape(n, FEATURE_DIM), bias))
    # backbone.fc exists only in the use_last_fc variant (one 257-way fc, no heads): not this layout
    known = ("backbone.", "final_layers.")
    other = sorted(k for k in state if not k.startswith(known) or k.startswith("backbone.fc."))
    extra_heads = sorted(
        k for k in state if k.startswith("final_layers.") and int(k.split(".")[1]) >= len(OFFICIAL_HEADS)
    )
    if other or extra_heads:
        problems.append(f"unexpected keys: {(other + extra_heads)[:10]}")
    if problems:
        raise ValueError(f"{what}: not Deep3DFaceRecon_pytorch's R-Net: " + "; ".join(problems))

    mapped = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    mapped["fc.weight"] = torch.cat([w for w, _ in heads]).float()
    bias = torch.cat([b for _, b in heads]).clone().float()
    light0 = sum(n for _, n in OFFICIAL_HEADS[:4])
    bias[light0 : light0 + 27 : 9] += INIT_LIT
    mapped["fc.bias"] = bias
    rnet = fnn.build("resnet50", num_outputs=sum(n for _, n in OFFICIAL_HEADS))
    mismatch = state_dict_mismatch(mapped, rnet.state_dict())
    if mismatch:
        raise ValueError(f"{what}: the backbone is not the official ResNet-50: " + "; ".join(mismatch))
    return {f"rnet.{k}": v for k, v in mapped.items()}


def import_deep3d_official(
    file: str | os.PathLike[str],
    output: str | os.PathLike[str],
    morphable_model: str = "models/bfm09_deep3d.h5",
) -> Path:
    """Convert ``epoch_20.pth`` into a facezoo Deep3DFace checkpoint at ``output`` (atomic, with a card).

    Args:
        file: the official file (read with ``weights_only=True``: it never runs code).
        output: the ``.ckpt`` to write.
        morphable_model: the model spec the checkpoint names: the ``bfm-deep3d`` conversion of BFM 2009
            (``facezoo model convert BFM/ --format bfm-deep3d -o models/bfm09_deep3d.h5``; 80/64/80).

    Returns:
        ``output`` as a Path. Load it with ``facezoo.load_pretrained(output)``.
    """
    import lightning

    from facezoo.hub.card import make_card, write_card
    from facezoo.hub.checkpoint import save_atomic
    from facezoo.hub.download import file_sha256
    from facezoo.nn.weights import load_torch_file, unwrap_state_dict

    what = f"deep3d-official {file}"
    expected = (
        "Deep3DFaceRecon_pytorch's epoch_20.pth ({'net_recon': state_dict, ...} or the state dict itself)"
    )
    state = unwrap_state_dict(load_torch_file(file, what), what, expected, containers=("net_recon",))
    hp = {
        "_class_path": "facezoo.methods.Deep3DFace",
        "morphable_model": morphable_model,
        "stage": "rnet",
        "backbone": "resnet50",
        "image_size": 224,
        "focal": 1015.0,
        "camera_distance": 1000.0,
        "output_scale": None,
    }
    source = {
        "imported_from": "Deep3DFaceRecon_pytorch epoch_20.pth (net_recon)",
        "source": Path(file).name,
        "source_sha256": file_sha256(file),
    }
    ckpt = {
        "state_dict": map_deep3d_official(state, what),
        "hyper_parameters": hp,
        "pytorch-lightning_version": lightning.__version__,
        "facezoo": source,
    }
    path = save_atomic(ckpt, output)
    card = make_card(
        path,
        method="facezoo.methods.Deep3DFace",
        hyper_parameters=hp,
        extra=source
        | {
            "licence": "the official Deep3DFaceRecon_pytorch release's terms (see its repository); "
            "BFM 2009's licence for the morphable model"
        },
    )
    write_card(path, card)
    return path
