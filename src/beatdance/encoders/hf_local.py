"""Helpers shared by the pretrained encoders that load a Hugging Face model from a local folder.

Nothing is ever downloaded: a missing or incomplete folder raises MissingWeightsError that says which
files are missing and how to fetch them on a machine with internet.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import MissingWeightsError, ParameterError

# In transformers' order of preference: safetensors first, PyTorch pickles only when there are none.
WEIGHT_FILE_PATTERNS = (("model.safetensors", "model-*.safetensors"), ("pytorch_model.bin", "pytorch_model-*.bin"))
_WEIGHT_HINT = "a weights file (model.safetensors or pytorch_model.bin)"
_HASH_CHUNK_BYTES = 1 << 22


@dataclass(frozen=True)
class PretrainedSource:
    """Where an encoder's weights come from, used to word MissingWeightsError."""

    encoder: str
    modality: str
    repo_id: str

    def fix(self) -> str:
        return (
            f"On a machine with internet run `huggingface-cli download {self.repo_id} --local-dir DIR`, copy DIR "
            f"here and pass `--{self.modality}-encoder {self.encoder} --{self.modality}-encoder-dir DIR` "
            "(in Python: model_dir=DIR)."
        )

    def missing(self, problem: str) -> MissingWeightsError:
        return MissingWeightsError(
            f"The {self.encoder!r} encoder needs pretrained weights in a local folder, but {problem}. {self.fix()}"
        )


def weight_files(model_dir: Path) -> list[Path]:
    """The weight files transformers loads from a folder (single or sharded), sorted by name; empty if none."""
    for patterns in WEIGHT_FILE_PATTERNS:
        found = sorted({p for pattern in patterns for p in model_dir.glob(pattern) if p.is_file()})
        if found:
            return found
    return []


def check_model_dir(
    model_dir: str | os.PathLike[str] | None,
    *,
    source: PretrainedSource,
    required: Sequence[str] = ("config.json", "preprocessor_config.json"),
) -> Path:
    """The resolved folder, after checking it holds ``required`` files and at least one weight file."""
    if model_dir is None:
        raise source.missing("no folder was given")
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise source.missing(f"the folder {str(path)!r} does not exist")
    missing = [name for name in required if not (path / name).is_file()]
    if not weight_files(path):
        missing.append(_WEIGHT_HINT)
    if missing:
        raise source.missing(f"the folder {str(path)!r} lacks {', '.join(missing)}")
    return path.resolve()


def weights_sha256(model_dir: Path) -> str:
    """SHA-256 over the names and bytes of all weight files, so a store built with other weights is caught."""
    digest = hashlib.sha256()
    for path in weight_files(model_dir):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def torch_device(device: str) -> torch.device:
    """``device`` as a torch.device, with a clear error for a malformed or unavailable one."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ParameterError(f"device={device!r} is not a torch device; expected 'cpu', 'cuda' or 'cuda:N'.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ParameterError(f"device={device!r} was asked for but CUDA is not available here; pass device='cpu'.")
    return dev


@contextmanager
def loading(model_dir: Path, *, source: PretrainedSource) -> Iterator[None]:
    """Quiet transformers' load reports and turn its errors for an unusable folder into MissingWeightsError."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    except (OSError, ValueError, KeyError, ImportError, AttributeError, RuntimeError) as exc:
        raise source.missing(f"loading {str(model_dir)!r} failed ({type(exc).__name__}: {exc})") from exc
    finally:
        hf_logging.set_verbosity(verbosity)


def load_model(
    model_cls: Any, model_dir: Path, *, source: PretrainedSource, device: torch.device, **kwargs: Any
) -> torch.nn.Module:
    """``model_cls.from_pretrained`` from the folder only, in eval mode on ``device``.

    Weights that do not cover the model (which transformers would silently leave random) are an error.
    """
    with loading(model_dir, source=source):
        model, info = model_cls.from_pretrained(model_dir, local_files_only=True, output_loading_info=True, **kwargs)
    missing = sorted(info.get("missing_keys", ()))
    if missing:
        raise source.missing(
            f"the weights in {str(model_dir)!r} lack {len(missing)} parameters of "
            f"{type(model).__name__} (e.g. {missing[0]!r}); they are for another model"
        )
    return model.to(device).eval()
