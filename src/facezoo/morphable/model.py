"""The morphable model: a linear 3D face model held as an ``nn.Module`` of buffers.

Shape and texture are linear in their coefficients::

    vertices = mean + id_basis @ (id * id_std) + exp_basis @ (exp * exp_std)   (bases_scaled=False)
    vertices = mean + id_basis @ id + exp_basis @ exp                          (bases_scaled=True)
    albedo = tex_mean + tex_basis @ (tex * tex_std)                            (tex_std dropped if scaled)

Coefficients are always in units of standard deviation, so a standard-normal prior is the regulariser,
whichever way a source ships its bases. Units are millimetres in facezoo's model space (right-handed, +y up,
+z out of the face); triangles are wound counter-clockwise seen from outside.

Example:
    >>> import torch
    >>> V = 4
    >>> model = MorphableModel(mean=torch.zeros(V, 3), id_basis=torch.randn(V, 3, 2),
    ...                        exp_basis=torch.randn(V, 3, 1), triangles=torch.tensor([[0, 1, 2], [0, 2, 3]]),
    ...                        landmarks68=torch.zeros(68, dtype=torch.long))
    >>> model(torch.zeros(5, 2), None).shape
    torch.Size([5, 4, 3])
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

ArrayLike = Any  # numpy array, torch tensor, or anything np.asarray accepts

__all__ = ["MorphableModel"]


def _describe(x: Any) -> str:
    if isinstance(x, (Tensor, np.ndarray)):
        return f"shape {tuple(x.shape)} dtype {x.dtype}"
    return f"{type(x).__name__}"


def _as_tensor(name: str, x: ArrayLike) -> Tensor:
    """A detached CPU-or-device tensor view of ``x`` (numpy arrays are shared when already contiguous)."""
    if isinstance(x, Tensor):
        return x.detach()
    try:
        arr = np.asarray(x)
    except Exception as err:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}") from err
    if arr.dtype == object:
        raise TypeError(f"{name}: expected a numeric array, got an object array ({_describe(arr)})")
    arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:  # e.g. np.frombuffer views: torch wants writable memory
        arr = arr.copy()
    return torch.from_numpy(arr)


def _float(name: str, x: ArrayLike, shape: tuple[int | None, ...], shape_text: str) -> Tensor:
    t = _as_tensor(name, x)
    if not (
        t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
    ):
        raise TypeError(
            f"{name}: expected a real floating-point array of shape {shape_text}, got {_describe(x)}"
        )
    if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        raise ValueError(f"{name}: expected shape {shape_text}, got {tuple(t.shape)}")
    t = t.to(torch.float32).contiguous()
    # A sum is finite iff every term is (barring overflow, which the exact check below then settles); it costs
    # one pass and no [N] bool temporary, which matters for 100+ MB bases at load time.
    if t.numel() and not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return t


def _index(
    name: str, x: ArrayLike, shape: tuple[int | None, ...], shape_text: str, n_vertices: int
) -> Tensor:
    t = _as_tensor(name, x)
    if t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise TypeError(f"{name}: expected an integer array of shape {shape_text}, got {_describe(x)}")
    if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        raise ValueError(f"{name}: expected shape {shape_text}, got {tuple(t.shape)}")
    t = t.to(torch.int64).contiguous()
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n_vertices):
        raise ValueError(
            f"{name}: vertex indices must lie in [0, {n_vertices - 1}] (0-based, V={n_vertices}), "
            f"got values in [{int(t.min())}, {int(t.max())}]"
        )
    return t


def _std(name: str, x: ArrayLike | None, k: int) -> Tensor:
    if x is None:
        return torch.ones(k)
    t = _float(
        name, np.asarray(x).reshape(-1) if not isinstance(x, Tensor) else x.reshape(-1), (k,), f"[{k}]"
    )
    if k and not bool((t > 0).all()):
        raise ValueError(f"{name}: standard deviations must be positive, got min {float(t.min())}")
    return t


#: the free-text attributes a state_dict carries (extra state) besides the buffers.
_TEXT_ATTRIBUTES = ("name", "units", "source", "licence")


class _Size:
    """A read-only ``int`` attribute: size ``axis`` of a buffer (``model.n_id`` is ``id_basis.shape[2]``)."""

    def __init__(self, buffer: str, axis: int) -> None:
        self.buffer, self.axis = buffer, axis

    def __get__(self, model, owner=None) -> int:
        return self if model is None else getattr(model, self.buffer).shape[self.axis]


class MorphableModel(nn.Module):
    """A linear 3D morphable model of shape, expression and (optionally) albedo.

    All data are buffers (no parameters), so ``.to(device)``, ``.to(torch.float64)``, ``state_dict`` and DDP
    behave as for any module. Floating-point inputs are stored as contiguous float32; index arrays as int64.

    Args:
        mean: [V,3] mean shape, mm.
        id_basis: [V,3,Kid] identity basis (``None`` = no identity components, Kid=0).
        exp_basis: [V,3,Kexp] expression basis (``None`` = Kexp=0). Need not be orthonormal (blendshapes).
        triangles: [T,3] 0-based vertex indices, counter-clockwise seen from outside.
        landmarks68: [68] vertex indices of the iBUG-68 landmarks, in iBUG order.
        id_std, exp_std, tex_std: [K] positive standard deviations (default ones).
        tex_mean: [V,3] mean albedo, RGB in [0,1].
        tex_basis: [V,3,Ktex] albedo basis (requires ``tex_mean``).
        uv: [V,2] texture coordinates in [0,1], v up.
        masks: named bool [V] vertex masks (e.g. ``skin``, ``front``).
        bases_scaled: whether the bases already hold their std (then the stds are informative only).
        name: a short model name; units: length unit of ``mean`` (``"mm"`` for every facezoo loader).
        landmark_valid: optional [68] bool; False where a source has no vertex for that iBUG point (the index
            there is a stand-in and losses should ignore it). Default: all True.
        source: where the model came from (free text); licence: its licence text or name.

    Example:
        >>> model = MorphableModel(mean=torch.zeros(3, 3), id_basis=torch.eye(9).reshape(3, 3, 9),
        ...                        exp_basis=None, triangles=torch.tensor([[0, 1, 2]]),
        ...                        landmarks68=torch.zeros(68, dtype=torch.long),
        ...                        id_std=torch.full((9,), 2.0))
        >>> model(torch.ones(1, 9), None)[0, 0]
        tensor([2., 2., 2.])
    """

    mean: Tensor
    id_basis: Tensor
    exp_basis: Tensor
    id_std: Tensor
    exp_std: Tensor
    triangles: Tensor
    landmarks68: Tensor
    landmark_valid: Tensor
    tex_mean: Tensor | None
    tex_basis: Tensor | None
    tex_std: Tensor | None
    uv: Tensor | None

    def __init__(
        self,
        *,
        mean: ArrayLike,
        id_basis: ArrayLike | None,
        exp_basis: ArrayLike | None,
        triangles: ArrayLike,
        landmarks68: ArrayLike,
        id_std: ArrayLike | None = None,
        exp_std: ArrayLike | None = None,
        tex_mean: ArrayLike | None = None,
        tex_basis: ArrayLike | None = None,
        tex_std: ArrayLike | None = None,
        uv: ArrayLike | None = None,
        masks: dict[str, ArrayLike] | None = None,
        bases_scaled: bool = False,
        name: str = "",
        units: str = "mm",
        landmark_valid: ArrayLike | None = None,
        source: str = "",
        licence: str = "",
    ) -> None:
        super().__init__()
        mean_t = _float("mean", mean, (None, 3), "[V,3]")
        V = mean_t.shape[0]
        if V == 0:
            raise ValueError("mean: expected at least one vertex, got shape (0, 3)")
        self.register_buffer("mean", mean_t)

        for key, basis, std in (("id", id_basis, id_std), ("exp", exp_basis, exp_std)):
            if basis is None:
                b = torch.zeros(V, 3, 0)
            else:
                b = _float(f"{key}_basis", basis, (V, 3, None), f"[V={V},3,K{key}] (V from mean)")
            self.register_buffer(f"{key}_basis", b)
            self.register_buffer(f"{key}_std", _std(f"{key}_std", std, b.shape[2]))

        # Texture is all-or-nothing around tex_mean.
        if tex_mean is None:
            if tex_basis is not None or tex_std is not None:
                raise ValueError("tex_basis/tex_std: given without tex_mean [V,3]")
            self.register_buffer("tex_mean", None)
            self.register_buffer("tex_basis", None)
            self.register_buffer("tex_std", None)
        else:
            self.register_buffer("tex_mean", _float("tex_mean", tex_mean, (V, 3), f"[V={V},3]"))
            tb = (
                torch.zeros(V, 3, 0)
                if tex_basis is None
                else _float("tex_basis", tex_basis, (V, 3, None), f"[V={V},3,Ktex] (V from mean)")
            )
            self.register_buffer("tex_basis", tb)
            self.register_buffer("tex_std", _std("tex_std", tex_std, tb.shape[2]))

        self.register_buffer("triangles", _index("triangles", triangles, (None, 3), "[T,3]", V))
        self.register_buffer("landmarks68", _index("landmarks68", landmarks68, (68,), "[68]", V))
        if landmark_valid is None:
            valid = torch.ones(68, dtype=torch.bool)
        else:
            valid = _as_tensor("landmark_valid", landmark_valid)
            if valid.dtype != torch.bool or tuple(valid.shape) != (68,):
                raise ValueError(
                    f"landmark_valid: expected a bool array of shape [68], got {_describe(valid)}"
                )
        self.register_buffer("landmark_valid", valid.contiguous())

        if uv is None:
            self.register_buffer("uv", None)
        else:
            self.register_buffer("uv", _float("uv", uv, (V, 2), f"[V={V},2]"))

        self._mask_names: list[str] = []
        for mname, m in (masks or {}).items():
            if not isinstance(mname, str) or not mname.isidentifier():
                raise ValueError(f"masks: names must be identifiers (letters, digits, _), got {mname!r}")
            mt = _as_tensor(f"masks[{mname!r}]", m)
            if mt.dtype != torch.bool or tuple(mt.shape) != (V,):
                raise ValueError(
                    f"masks[{mname!r}]: expected a bool array of shape [V={V}], got {_describe(mt)}"
                )
            self.register_buffer(f"mask_{mname}", mt.contiguous())
            self._mask_names.append(mname)

        self.bases_scaled = bool(bases_scaled)
        self.name = str(name)
        self.units = str(units)
        self.source = str(source)
        self.licence = str(licence)

    # ------------------------------------------------------------------ properties
    n_vertices = _Size("mean", 0)
    n_triangles = _Size("triangles", 0)
    n_id = _Size("id_basis", 2)
    n_exp = _Size("exp_basis", 2)

    @property
    def n_tex(self) -> int:
        return 0 if self.tex_basis is None else self.tex_basis.shape[2]

    @property
    def has_texture(self) -> bool:
        return self.tex_mean is not None

    @property
    def mask_names(self) -> list[str]:
        return list(self._mask_names)

    def mask(self, name: str) -> Tensor:
        """The bool [V] vertex mask ``name`` (e.g. ``"skin"``, ``"front"``)."""
        if name not in self._mask_names:
            raise KeyError(f"mask {name!r}: this model has masks {self._mask_names}")
        return getattr(self, f"mask_{name}")

    # ------------------------------------------------------------------ evaluation
    def _coeffs(self, name: str, x: Tensor | None, k: int) -> Tensor | None:
        if x is None:
            return None
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a torch tensor [B,{k}], got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != k:
            raise ValueError(f"{name}: expected shape [B,{k}], got {tuple(x.shape)}")
        if x.device != self.mean.device:
            raise ValueError(f"{name}: is on {x.device} but the model's buffers are on {self.mean.device}")
        return x.to(self.mean.dtype)

    def _linear(self, mean: Tensor, basis: Tensor, std: Tensor, coeff: Tensor) -> Tensor:
        # [V,3,K] contiguous is a free view as [3V,K]; one GEMM per basis: out[B,3V] = mean + coeff @ basis^T.
        c = coeff if self.bases_scaled else coeff * std
        return torch.addmm(mean.reshape(1, -1), c, basis.reshape(mean.numel(), basis.shape[2]).t())

    def forward(self, id: Tensor | None = None, exp: Tensor | None = None) -> Tensor:
        """Vertices [B,V,3] (mm) for identity [B,Kid] and expression [B,Kexp] coefficients (units of std).

        Either may be ``None`` (zeros); with both ``None`` the mean is returned as a batch of one.
        Differentiable in the coefficients; runs on the device of the model, which must match the inputs'.
        """
        a = self._coeffs("id", id, self.n_id)
        b = self._coeffs("exp", exp, self.n_exp)
        if a is not None and b is not None and a.shape[0] != b.shape[0]:
            raise ValueError(f"id and exp: batch sizes differ ({a.shape[0]} vs {b.shape[0]})")
        V = self.n_vertices
        if a is None and b is None:
            return self.mean.unsqueeze(0)
        if a is not None:
            out = self._linear(self.mean, self.id_basis, self.id_std, a)
            if b is not None:
                c = b if self.bases_scaled else b * self.exp_std
                out = out.addmm(c, self.exp_basis.reshape(3 * V, self.n_exp).t())
        else:
            out = self._linear(self.mean, self.exp_basis, self.exp_std, b)
        return out.view(-1, V, 3)

    def texture(self, tex: Tensor | None = None) -> Tensor:
        """Per-vertex albedo [B,V,3] (RGB, nominally [0,1]; not clamped) for coefficients [B,Ktex] in std."""
        if self.tex_mean is None:
            raise ValueError(f"texture: model {self.name!r} has no texture model (tex_mean is None)")
        t = self._coeffs("tex", tex, self.n_tex)
        if t is None:
            return self.tex_mean.unsqueeze(0)
        return self._linear(self.tex_mean, self.tex_basis, self.tex_std, t).view(-1, self.n_vertices, 3)

    def landmarks(self, vertices: Tensor) -> Tensor:
        """The 68 iBUG landmarks [...,68,3] picked from vertices [...,V,3] (any leading batch dims).

        Entries where ``landmark_valid`` is False are stand-ins (see the loader's docstring).
        """
        if not isinstance(vertices, Tensor) or vertices.dim() < 2 or vertices.shape[-2] != self.n_vertices:
            shape = tuple(vertices.shape) if isinstance(vertices, Tensor) else type(vertices).__name__
            raise ValueError(f"vertices: expected shape [...,V={self.n_vertices},C], got {shape}")
        return vertices.index_select(-2, self.landmarks68.to(vertices.device))

    # ------------------------------------------------------------------ description
    def info(self) -> dict[str, Any]:
        """A JSON-able summary: sizes, units, name, source, licence, masks."""
        return {
            "name": self.name,
            "vertices": self.n_vertices,
            "triangles": self.n_triangles,
            "n_id": self.n_id,
            "n_exp": self.n_exp,
            "n_tex": self.n_tex,
            "landmarks": int(self.landmarks68.numel()),
            "landmarks_valid": int(self.landmark_valid.sum()),
            "units": self.units,
            "bases_scaled": self.bases_scaled,
            "uv": self.uv is not None,
            "masks": self.mask_names,
            "source": self.source,
            "licence": self.licence.splitlines()[0] if self.licence else "",
        }

    def __repr__(self) -> str:
        tex = f", tex={self.n_tex}" if self.has_texture else ""
        masks = f", masks={self.mask_names}" if self._mask_names else ""
        return (
            f"MorphableModel(name={self.name!r}, vertices={self.n_vertices}, triangles={self.n_triangles}, "
            f"id={self.n_id}, exp={self.n_exp}{tex}, landmarks=68, units={self.units!r}, "
            f"bases_scaled={self.bases_scaled}, dtype={self.mean.dtype}, device={self.mean.device}{masks})"
        )

    # Masks are buffers named mask_<name>; keep the name list through state_dict round trips.
    def get_extra_state(self) -> dict[str, Any]:
        texts = {key: getattr(self, key) for key in _TEXT_ATTRIBUTES}
        return {"mask_names": self.mask_names, "bases_scaled": self.bases_scaled, **texts}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if list(state.get("mask_names", [])) != self._mask_names:
            raise ValueError(
                f"state_dict: masks {state.get('mask_names')} do not match this model's {self._mask_names}"
            )
        if bool(state.get("bases_scaled", self.bases_scaled)) != self.bases_scaled:
            raise ValueError("state_dict: bases_scaled differs from this model's")
        for key in _TEXT_ATTRIBUTES:
            if key in state:
                setattr(self, key, str(state[key]))
