"""Optional music encoder: per-frame MERT hidden states (SPEC §1.2 and §7; 768-d at 75 Hz for MERT-v1-95M).

Loads ``AutoModel`` (trust_remote_code=True: MERT ships its model code as .py files in the model folder)
and ``Wav2Vec2FeatureExtractor`` from a LOCAL folder only, resamples the clip's audio to the extractor's
sampling rate and returns the hidden states of one layer, or their mean over all layers.

Layer choice: the official code does not say which layer it used. The third-party recipe stacks all 13
hidden states (the CNN/projection output plus 12 transformer layers) and reduces them with a Conv1d
(13 -> 1) that is randomly initialised and never trained. Its deterministic, weight-free counterpart is the
plain mean over all hidden states, our default ``layer="mean"``; ``layer=k`` picks hidden state k
(0 = CNN/projection output, num_hidden_layers = last transformer layer).
"""

from __future__ import annotations

import math
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import MediaError, ParameterError
from ..media.spectral import resample
from ..media.types import MediaClip
from ..util import read_json
from .hf_local import PretrainedSource, check_model_dir, load_model, loading, torch_device, weights_sha256
from .registry import Encoder, register_encoder

_SOURCE = PretrainedSource(encoder="mert", modality="music", repo_id="m-a-p/MERT-v1-95M")


def _remote_code_files(model_dir: Path) -> list[str]:
    """The .py files named by the config's ``auto_map`` (e.g. modeling_MERT.py), which must be in the folder."""
    auto_map = read_json(model_dir / "config.json").get("auto_map", {})
    return sorted(
        {
            ref.split("--")[-1].rsplit(".", 1)[0] + ".py"
            for refs in auto_map.values()
            for ref in ([refs] if isinstance(refs, str) else refs)
            if ref
        }
    )


@register_encoder("mert")
class MertEncoder(Encoder):
    """MERT features (T, hidden_size) at the model's frame rate (sampling rate / total CNN stride)."""

    modality = "music"
    needs = frozenset({"audio"})

    def __init__(
        self,
        *,
        model_dir: str | os.PathLike[str] | None = None,
        layer: Literal["mean"] | int = "mean",
        device: str = "cpu",
    ) -> None:
        self._dir = check_model_dir(model_dir, source=_SOURCE)
        with loading(self._dir, source=_SOURCE):
            missing_code = [name for name in _remote_code_files(self._dir) if not (self._dir / name).is_file()]
        if missing_code:
            raise _SOURCE.missing(
                f"the folder {str(self._dir)!r} lacks the model code {', '.join(missing_code)} named in its "
                "config.json (MERT runs with trust_remote_code and needs its .py files next to the weights)"
            )
        self._device = torch_device(device)
        with loading(self._dir, source=_SOURCE):
            from transformers import AutoModel, Wav2Vec2FeatureExtractor

            self._extractor = Wav2Vec2FeatureExtractor.from_pretrained(self._dir, local_files_only=True)
        self._model = load_model(AutoModel, self._dir, source=_SOURCE, device=self._device, trust_remote_code=True)
        cfg: Any = self._model.config
        self._num_states = int(cfg.num_hidden_layers) + 1
        self._layer = self._checked_layer(layer)
        self._sr = int(self._extractor.sampling_rate)
        self._strides = [int(s) for s in cfg.conv_stride]
        kernels = [int(k) for k in cfg.conv_kernel]
        # Samples seen by one output frame: the smallest input that yields a frame at all.
        self._min_samples = kernels[0] + sum((k - 1) * math.prod(self._strides[:i]) for i, k in enumerate(kernels) if i)

    def _checked_layer(self, layer: Literal["mean"] | int) -> Literal["mean"] | int:
        if layer == "mean":
            return "mean"
        if isinstance(layer, bool) or not isinstance(layer, int) or not -self._num_states <= layer < self._num_states:
            raise ParameterError(
                f"layer={layer!r} is not usable; expected 'mean' or an integer hidden-state index in "
                f"[0, {self._num_states - 1}] (0 = CNN output, {self._num_states - 1} = last layer; negatives count "
                "from the end)."
            )
        return layer % self._num_states

    @property
    def dim(self) -> int:
        cfg: Any = self._model.config
        return int(cfg.hidden_size)

    @property
    def fps(self) -> float:
        return self._sr / math.prod(self._strides)

    @cached_property
    def _weights_sha256(self) -> str:
        return weights_sha256(self._dir)

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "model_dir": self._dir.name,
            "weights_sha256": self._weights_sha256,
            "layer": self._layer,
            "sr": self._sr,
        }

    @torch.inference_mode()
    def encode(self, clip: MediaClip) -> np.ndarray:
        """Float32 (T, dim) features; T is the model's frame count for the clip's audio at ``fps``."""
        audio = self._audio_at_model_rate(clip)
        inputs = self._extractor(audio, sampling_rate=self._sr, return_tensors="pt")
        out = self._model(input_values=inputs["input_values"].to(self._device), output_hidden_states=True)
        states = out.hidden_states
        assert len(states) == self._num_states, (len(states), self._num_states)
        chosen = torch.stack(states).mean(dim=0) if self._layer == "mean" else states[self._layer]
        return chosen[0].float().cpu().numpy()

    def _audio_at_model_rate(self, clip: MediaClip) -> np.ndarray:
        name = clip.source or "<clip>"
        if clip.audio is None or not clip.sr:
            raise MediaError(
                f"{name}: the 'mert' encoder needs audio with a sample rate, but the clip has none. "
                "Use a source with a music track."
            )
        audio = np.asarray(clip.audio, dtype=np.float32)
        if audio.ndim != 1:
            raise MediaError(f"{name}: audio has shape {audio.shape}; expected mono (n_samples,). Mix it down first.")
        if clip.sr != self._sr:
            audio = resample(y=audio, orig_sr=clip.sr, target_sr=self._sr)
        if len(audio) < self._min_samples:
            raise MediaError(
                f"{name}: {len(audio)} samples at {self._sr} Hz are too short for MERT, which needs at "
                f"least {self._min_samples} ({self._min_samples / self._sr * 1000:.1f} ms)."
            )
        return audio
