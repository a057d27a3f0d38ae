"""Evaluation protocol runners: what ``validate``/``test`` compute for a datamodule (docs/architecture.md,
"Metrics").

A datamodule names its protocol with a class attribute ``protocol`` (default ``"reconstruction"``):

==================  ==========================================  =========================================
protocol            runner                                      datamodules
==================  ==========================================  =========================================
``reconstruction``  :class:`ReconstructionProtocol`: vertex      SyntheticFaces, AFLW2000, 300W-LP, ...
                    error, 68-point NME with yaw buckets
``micc``            :class:`MICCProtocol`: per-sequence shape,   MICC
                    scan RMSE (Deng et al.)
``verification``    :class:`VerificationProtocol`: 10-fold       LFWPairs, SyntheticPairs
                    accuracy on identity params and vertices
==================  ==========================================  =========================================

:class:`~facezoo.methods.base.FaceMethod` asks :func:`protocol_for` for the runner class, feeds it every
evaluation batch (``update``) and, at epoch end, logs its ``compute`` result as ``<val|test>/<key>``; in
``test`` it also prints the result table and writes ``test_results.json``. New protocols register with
:func:`register_protocol`.
"""

from __future__ import annotations

from facezoo.methods.protocols.base import PROTOCOLS, ProtocolResult, ProtocolRunner, neutral_shape
from facezoo.methods.protocols.micc import MICC_LANDMARKS, MICCProtocol, SequenceShapes, micc_nose_tip
from facezoo.methods.protocols.reconstruction import ReconstructionProtocol
from facezoo.methods.protocols.verification import VerificationProtocol

__all__ = [
    "MICC_LANDMARKS",
    "PROTOCOLS",
    "MICCProtocol",
    "ProtocolResult",
    "ProtocolRunner",
    "ReconstructionProtocol",
    "SequenceShapes",
    "VerificationProtocol",
    "micc_nose_tip",
    "neutral_shape",
    "protocol_for",
    "register_protocol",
]


def register_protocol(cls: type[ProtocolRunner]) -> type[ProtocolRunner]:
    """Register a runner class under ``cls.name`` (usable as a decorator)."""
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        raise ValueError(f"{cls.__name__}: a protocol runner needs a non-empty class attribute 'name'")
    PROTOCOLS[cls.name] = cls
    return cls


for _cls in (ReconstructionProtocol, MICCProtocol, VerificationProtocol):
    register_protocol(_cls)


def protocol_for(datamodule) -> type[ProtocolRunner]:
    """The runner class of ``datamodule``'s ``protocol`` attribute (``"reconstruction"`` when it has none or
    when there is no datamodule)."""
    name = getattr(datamodule, "protocol", "reconstruction") if datamodule is not None else "reconstruction"
    if name not in PROTOCOLS:
        raise ValueError(
            f"{type(datamodule).__name__}.protocol = {name!r} is not a registered evaluation protocol "
            f"(known: {sorted(PROTOCOLS)})"
        )
    return PROTOCOLS[name]
