"""The Beat Blender's forward pass in numpy, for queries on the CPU.

Importing torch costs a fresh process about 1.5 s here, most of a ``beatdance search``; a query is a
handful of windows, so numpy embeds it in milliseconds from the same checkpoint (config.json and
model.safetensors, read with safetensors' numpy loader). :class:`NumpyBlender` mirrors
:class:`~beatdance.model.blender.BeatBlender` in eval mode (no dropout) for every ``BlenderConfig`` switch,
and is tested against it. The fixed tables both use (the sinusoidal positions, the rhythm head's tempo
shifts) are made here once.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import CheckpointError, ParameterError
from ..util import read_json
from .config import BlenderConfig
from .prior import MetrePrior

Modality = Literal["music", "dance"]


def sinusoidal_table(*, num_positions: int, dim: int) -> np.ndarray:
    """Fixed sine/cosine position encodings (float32, (num_positions, dim))."""
    pos = np.arange(num_positions, dtype=np.float32)[:, None]
    freq = np.exp(np.arange(0, dim, 2, dtype=np.float32) * np.float32(-math.log(10000.0) / dim))
    table = np.zeros((num_positions, dim), dtype=np.float32)
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq[: dim // 2])
    return table


def shift_matrix(*, bins: int, bins_per_octave: int, octaves: float) -> np.ndarray:
    """(bins, bins) float32 matrix M with ``x @ M.T`` = x moved up the log-tempo axis by ``octaves``.

    Linear interpolation between bins; bins shifted in from beyond the ends are zero.
    """
    source = np.arange(bins, dtype=np.float32) - np.float32(octaves * bins_per_octave)
    low = np.floor(source)
    frac = source - low
    out = np.zeros((bins, bins), dtype=np.float32)
    for offset, weight in ((0, 1.0 - frac), (1, frac)):
        index = (low + offset).astype(np.int64)
        ok = (index >= 0) & (index < bins)
        out[np.flatnonzero(ok), index[ok]] += weight[ok]
    return out


def _linear(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]


def _layer_norm(x: np.ndarray, w: dict[str, np.ndarray], name: str) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * w[f"{name}.weight"] + w[f"{name}.bias"]


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _attention(query: np.ndarray, key: np.ndarray, w: dict[str, np.ndarray], name: str, heads: int) -> np.ndarray:
    """Multi-head attention of (N, L, d) queries over (N, L', d) keys (= values), as ``nn.MultiheadAttention``."""
    d = query.shape[-1]
    wq, wk, wv = np.split(w[f"{name}.in_proj_weight"], 3)
    bq, bk, bv = np.split(w[f"{name}.in_proj_bias"], 3)

    def split(x: np.ndarray) -> np.ndarray:  # (N, L, d) -> (N, heads, L, d / heads)
        return x.reshape(x.shape[0], x.shape[1], heads, d // heads).transpose(0, 2, 1, 3)

    q, k, v = split(query @ wq.T + bq), split(key @ wk.T + bk), split(key @ wv.T + bv)
    weights = _softmax(q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(d // heads)))
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(query.shape)
    return _linear(out, w, f"{name}.out_proj")


def _checked(x: np.ndarray, what: str, shape: tuple[int, int]) -> np.ndarray:
    """``x`` as float32 when it is (batch, *shape), else ParameterError naming the shape the model expects."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3 or tuple(x.shape[1:]) != shape:
        raise ParameterError(
            f"{what} have shape {tuple(x.shape)}; expected (batch, {shape[0]}, {shape[1]}) from the model config. "
            "Extract them with the settings the model was trained on (a library's queries are)."
        )
    return x


class QueryEncoder:
    """What a library embeds query windows with: a model's ``config``, its metre ``prior`` (or None) and
    :meth:`encode`; subclasses run the model's forward pass in ``_encode``."""

    config: BlenderConfig
    prior: MetrePrior | None

    def encode(
        self,
        modality: Modality,
        features: np.ndarray,
        beats: np.ndarray,
        rhythm: np.ndarray | None = None,
        *,
        beats_per_bar: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """``{"fuse", "beat"}`` embeddings of (B, S, D) features, (B, S, K) beat slots and, with the rhythm
        branch or the metre prior, (B, C, R) rhythm arrays: ``BeatBlender.encode_music`` / ``encode_dance`` in
        eval mode, (B, output_dim); with the metre prior, ``fuse`` is joined with it (:meth:`MetrePrior.embed`;
        music: ``beats_per_bar`` of each window's song, None = unknown)."""
        out = self._encode(modality, features, beats, rhythm)
        if self.prior is None:
            return out
        return {**out, "fuse": self.prior.embed(modality, out["fuse"], rhythm=rhythm, beats_per_bar=beats_per_bar)}

    def _encode(
        self, modality: Modality, features: np.ndarray, beats: np.ndarray, rhythm: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        raise NotImplementedError


class NumpyBlender(QueryEncoder):
    """A trained Beat Blender's encoders in numpy: ``NumpyBlender.load(checkpoint).encode("music", ...)``."""

    def __init__(
        self, *, config: BlenderConfig, weights: dict[str, np.ndarray], prior: MetrePrior | None = None
    ) -> None:
        self.config = config
        self.prior = prior
        self._w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()}
        cfg = config
        self._position = (
            sinusoidal_table(num_positions=cfg.num_segments, dim=cfg.embed_dim)
            if cfg.variant == "temporal" and cfg.positional == "sinusoidal"
            else None
        )
        self._shifts = np.stack(
            [
                shift_matrix(bins=cfg.rhythm_bins, bins_per_octave=cfg.rhythm_bins_per_octave, octaves=-math.log2(r))
                for r in cfg.metre_ratios
            ]
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NumpyBlender:
        """The model in checkpoint folder ``path`` (its config.json and model.safetensors)."""
        from safetensors.numpy import load_file

        from .checkpoint import CONFIG, WEIGHTS, load_prior, resolve_checkpoint

        folder = resolve_checkpoint(Path(path))
        config = read_json(folder / CONFIG)
        if "model" not in config:
            raise CheckpointError(f"{folder / CONFIG} has no 'model' entry; it was not written by beatdance.")
        try:
            weights = load_file(str(folder / WEIGHTS))
        except Exception as exc:  # safetensors raises its own error types for corrupt files
            raise CheckpointError(
                f"Cannot read weights {folder / WEIGHTS}: {exc}. The file is corrupt or truncated; re-copy it."
            ) from exc
        prior = load_prior(config, source=str(folder / CONFIG))
        return cls(config=BlenderConfig.from_dict(config["model"]), weights=weights, prior=prior)

    def _encode(
        self, modality: Modality, features: np.ndarray, beats: np.ndarray, rhythm: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        cfg, w = self.config, self._w
        if modality not in ("music", "dance"):
            raise ParameterError(f"modality={modality!r}; expected 'music' or 'dance'.")
        x = _checked(features, f"{modality} features", (cfg.num_segments, getattr(cfg, f"{modality}_dim")))
        b = _checked(beats, f"{modality} beat slots", (cfg.num_segments, cfg.beat_slots))
        if cfg.standardise:
            x = (x - w[f"{modality}_mean"]) / w[f"{modality}_std"]
        out = self._branch(modality, x, b)
        if not cfg.rhythm_branch:
            return out
        if rhythm is None:
            raise ParameterError(
                f"this model has a rhythm branch and needs {modality} rhythm arrays (batch, {cfg.rhythm_channels}, "
                f"{cfg.rhythm_bins}); pass the windows' rhythm arrays (beatdance.beats.rhythm)."
            )
        rhythm = _checked(rhythm, f"{modality} rhythm", (cfg.rhythm_channels, cfg.rhythm_bins))
        r = self._rhythm(f"{modality}_rhythm", x.mean(axis=1), rhythm, modality)
        share = 1.0 / (1.0 + math.exp(-float(w["rhythm_logit"])))
        return {
            "fuse": np.concatenate(
                [np.float32(math.sqrt(1 - share)) * _normalise(out["fuse"]), np.float32(math.sqrt(share)) * r], axis=-1
            ),
            "beat": np.concatenate([out["beat"], np.zeros_like(r)], axis=-1),
        }

    def _branch(self, modality: str, features: np.ndarray, beats: np.ndarray) -> dict[str, np.ndarray]:
        cfg, w = self.config, self._w
        x = self._encoder(f"{modality}.feature_encoder", self._embed(modality, "feature", features))
        if not cfg.beat_branch:
            fused = self._pool(_linear(np.concatenate([x, np.zeros_like(x)], axis=-1), w, f"{modality}.fuse"))
            return {"fuse": fused, "beat": np.zeros_like(fused)}
        b = self._encoder(f"{modality}.beat_encoder", self._embed(modality, "beat", beats))
        fused = _linear(np.concatenate([x + b, x * b], axis=-1), w, f"{modality}.fuse")
        head = _attention(b, x, w, f"{modality}.cross_attention", cfg.num_heads)
        return {"fuse": self._pool(fused), "beat": self._pool(head)}

    def _embed(self, modality: str, part: str, x: np.ndarray) -> np.ndarray:
        """The input projection of a branch part ('feature' or 'beat') plus its position encoding."""
        cfg, w = self.config, self._w
        if part == "feature":
            y = _linear(x, w, f"{modality}.feature_linear")
        else:
            y = _linear(_linear(x, w, f"{modality}.beat_linear.0"), w, f"{modality}.beat_linear.1")
        if cfg.variant == "temporal" and cfg.positional == "learned":
            y = y + w[f"{modality}.{part}_position"]
        elif self._position is not None:
            y = y + self._position
        return y

    def _encoder(self, name: str, x: np.ndarray) -> np.ndarray:
        """``nn.TransformerEncoder`` (post-norm, ReLU) or the MLP stack. ``official`` attends across the batch."""
        cfg, w = self.config, self._w
        for i in range(cfg.num_layers):
            if cfg.encoder == "mlp":
                ff = _linear(np.maximum(_linear(x, w, f"{name}.{i}.ff.0"), 0.0), w, f"{name}.{i}.ff.3")
                x = _layer_norm(x + ff, w, f"{name}.{i}.norm")
                continue
            layer = f"{name}.layers.{i}"
            seq = x if cfg.variant == "temporal" else x.transpose(1, 0, 2)  # official: (S, B, d), over B
            attended = _attention(seq, seq, w, f"{layer}.self_attn", cfg.num_heads)
            attended = attended if cfg.variant == "temporal" else attended.transpose(1, 0, 2)
            x = _layer_norm(x + attended, w, f"{layer}.norm1")
            ff = _linear(np.maximum(_linear(x, w, f"{layer}.linear1"), 0.0), w, f"{layer}.linear2")
            x = _layer_norm(x + ff, w, f"{layer}.norm2")
        return x

    def _pool(self, x: np.ndarray) -> np.ndarray:
        return x.mean(axis=1) if self.config.pool == "mean" else x.reshape(x.shape[0], -1)

    def _rhythm(self, name: str, pooled: np.ndarray, rhythm: np.ndarray, modality: str) -> np.ndarray:
        """The rhythm head: the channel-weighted tempo profile at each metre ratio, weighted by the gate."""
        w = self._w
        gate_in = np.concatenate([pooled, rhythm[:, 1:].reshape(len(rhythm), -1)], axis=1)
        logits = _linear(np.maximum(_linear(gate_in, w, f"{name}.gate.0"), 0.0), w, f"{name}.gate.3")
        c = w[f"{name}.channel_logits"]
        channel = np.where(c > 20, c, np.log1p(np.exp(np.minimum(c, 20))))
        profile = np.einsum("c,bcn->bn", channel, rhythm)
        shifts = self._shifts if modality == "music" else np.broadcast_to(np.eye(rhythm.shape[-1]), self._shifts.shape)
        copies = np.einsum("kmn,bn->bkm", shifts, profile) * _softmax(logits)[:, :, None]
        return _normalise(copies.reshape(len(copies), -1)).astype(np.float32)


def embedding_dim(encoder: Any) -> int:
    """Size of the fused embeddings a model (``BeatBlender`` or a :class:`QueryEncoder`) gives for retrieval:
    the model's ``output_dim``, plus what its metre prior adds."""
    return int(encoder.config.output_dim) + (encoder.prior.extra_dim if encoder.prior is not None else 0)


class TorchEncoder(QueryEncoder):
    """A loaded ``BeatBlender`` (on any torch device, e.g. a GPU) behind :class:`NumpyBlender`'s ``encode``."""

    def __init__(self, net: Any) -> None:
        self.net = net
        self.config = net.config
        self.prior = net.prior

    def _encode(
        self, modality: Modality, features: np.ndarray, beats: np.ndarray, rhythm: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        import torch

        device = next(self.net.parameters()).device
        arrays = [features, beats] + ([rhythm] if self.config.rhythm_branch and rhythm is not None else [])
        encode = self.net.encode_music if modality == "music" else self.net.encode_dance
        with torch.no_grad():
            out = encode(*(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays))
        return {key: out[key].float().cpu().numpy() for key in ("fuse", "beat")}


def query_encoder(path: str | os.PathLike[str], *, device: str = "cpu") -> NumpyBlender | TorchEncoder:
    """The checkpoint at ``path`` ready to embed queries: in numpy on the CPU, else with torch on ``device``."""
    if str(device) == "cpu":
        return NumpyBlender.load(path)
    from .checkpoint import load_checkpoint

    net, _ = load_checkpoint(path, device=device)
    return TorchEncoder(net)
