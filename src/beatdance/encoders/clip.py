"""Optional dance encoder: per-frame CLIP image embeddings of the video (SPEC §1.2, 512-d for ViT-B/32).

The official features are (inference) CLIP ViT-B/32 image embeddings per frame. This encoder loads
CLIPVisionModelWithProjection from a LOCAL folder only (a full CLIPModel folder such as
openai/clip-vit-base-patch32 works too; its text tower is ignored), samples the video at ``fps`` and
returns one L2-normalised projected image embedding per sampled frame.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

import numpy as np
import torch

from ..errors import MediaError, ParameterError
from ..media.types import MediaClip
from .hf_local import PretrainedSource, check_model_dir, load_model, loading, torch_device, weights_sha256
from .registry import Encoder, register_encoder

_SOURCE = PretrainedSource(encoder="clip", modality="dance", repo_id="openai/clip-vit-base-patch32")


def sample_frame_indices(*, num_frames: int, frames_fps: float, fps: float) -> np.ndarray:
    """Indices of the source frames shown at the centre of each output frame when resampling to ``fps``.

    The output has round(num_frames * fps / frames_fps) frames (at least one); frame k covers
    [k / fps, (k + 1) / fps) and takes the source frame on screen at its centre (nearest-neighbour, so a
    slower source repeats frames).
    """
    n_out = max(1, int(round(num_frames * fps / frames_fps)))
    centres_s = (np.arange(n_out) + 0.5) / fps
    return np.minimum(np.floor(centres_s * frames_fps).astype(np.int64), num_frames - 1)


@register_encoder("clip")
class ClipEncoder(Encoder):
    """CLIP image embeddings (T, projection_dim) of a clip's video frames, resampled to ``fps``."""

    modality = "dance"
    needs = frozenset({"frames"})

    def __init__(
        self,
        *,
        model_dir: str | os.PathLike[str] | None = None,
        fps: float = 5.0,
        batch_size: int = 32,
        device: str = "cpu",
    ) -> None:
        if not fps > 0:
            raise ParameterError(f"fps={fps} must be strictly positive (embeddings per second of video).")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ParameterError(f"batch_size={batch_size!r} must be a positive integer (frames per forward pass).")
        self._dir = check_model_dir(model_dir, source=_SOURCE)
        self._device = torch_device(device)
        self._fps = float(fps)
        self._batch_size = batch_size
        with loading(self._dir, source=_SOURCE):
            import transformers
            from transformers.utils import is_torchvision_available

            processor_cls = (
                transformers.CLIPImageProcessor if is_torchvision_available() else transformers.CLIPImageProcessorPil
            )
            self._processor = processor_cls.from_pretrained(self._dir, local_files_only=True)
        self._model = load_model(
            transformers.CLIPVisionModelWithProjection, self._dir, source=_SOURCE, device=self._device
        )

    @property
    def dim(self) -> int:
        cfg: Any = self._model.config
        return int(cfg.projection_dim)

    @property
    def fps(self) -> float:
        return self._fps

    @cached_property
    def _weights_sha256(self) -> str:
        return weights_sha256(self._dir)

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "model_dir": self._dir.name,
            "weights_sha256": self._weights_sha256,
            "layer": "image_embeds",
        }

    def encode(self, clip: MediaClip) -> np.ndarray:
        """Unit-norm image embeddings, float32 (T, dim), T = round(duration of the frames * fps)."""
        frames = _checked_frames(clip)
        assert clip.frames_fps is not None  # checked by _checked_frames
        indices = sample_frame_indices(num_frames=len(frames), frames_fps=float(clip.frames_fps), fps=self._fps)
        unique, inverse = np.unique(indices, return_inverse=True)
        embeddings = np.concatenate(
            [self._embed(frames[unique[a : a + self._batch_size]]) for a in range(0, len(unique), self._batch_size)]
        )
        return embeddings[inverse]

    @torch.inference_mode()
    def _embed(self, images: np.ndarray) -> np.ndarray:
        pixels = self._processor(images=list(images), return_tensors="pt", input_data_format="channels_last")
        out = self._model(pixel_values=pixels["pixel_values"].to(self._device))
        return torch.nn.functional.normalize(out.image_embeds.float(), dim=-1).cpu().numpy()


def _checked_frames(clip: MediaClip) -> np.ndarray:
    """The clip's (T, H, W, 3) uint8 frames, or MediaError naming the source."""
    name = clip.source or "<clip>"
    if clip.frames is None:
        raise MediaError(
            f"{name}: the 'clip' encoder needs video frames, but the clip has none. "
            "Use a video source, or --dance-encoder pose for keypoint-only data."
        )
    if not (clip.frames_fps or 0) > 0:
        raise MediaError(f"{name}: frames_fps={clip.frames_fps}; expected the positive frame rate of the video frames.")
    frames = np.asarray(clip.frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise MediaError(
            f"{name}: frames have shape {frames.shape} and dtype {frames.dtype}; expected (T, H, W, 3) "
            "uint8 RGB. Decode the video to RGB24 frames."
        )
    if len(frames) == 0:
        raise MediaError(
            f"{name}: the clip has 0 video frames; the window lies outside the video. Check its start time."
        )
    return frames
