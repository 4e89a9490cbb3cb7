"""Uploaded query files: saved to a private temporary folder by size and extension, deleted after the search.

Only the bytes are handled here, in the server; what the file holds is checked by a worker process
(:func:`beatdance.service.worker.check_content`), which is where any decoder runs.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException, UploadFile

from ..pipeline.inputs import AUDIO_EXTS, KEYPOINT_EXTS, VIDEO_EXTS
from .schemas import Modality

UPLOAD_EXTS: dict[str, set[str]] = {"music": AUDIO_EXTS | VIDEO_EXTS, "dance": VIDEO_EXTS | KEYPOINT_EXTS}
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1 << 20


def too_large(max_upload_mb: float, shown: str = "the upload") -> str:
    """The 413 message: the limit and the option that raises it."""
    return (
        f"{shown} is larger than this service's {max_upload_mb:g} MB upload limit; upload a shorter clip (or "
        "start the server with a larger `beatdance serve --max-upload-mb`)."
    )


@dataclass
class Upload:
    """An upload saved under ``folder`` (deleted by :meth:`close`) as ``path``, named like the client's file."""

    folder: Path
    path: Path
    shown: str

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def clean(self, message: str) -> str:
        """``message`` with the temporary folder removed, so it names the file as the client sent it."""
        return message.replace(f"{self.folder}{os.sep}", "")


async def save_upload(upload: UploadFile, *, modality: Modality, folder: Path, max_upload_mb: float) -> Upload:
    """Stream ``upload`` into a new folder under ``folder``, enforcing the extension (415) and size (413) limits."""
    shown = upload.filename or "upload"
    name = SAFE_NAME.sub("_", Path(shown).name).lstrip(".")
    ext = Path(name).suffix.lower()
    allowed = UPLOAD_EXTS[modality]
    if ext not in allowed:
        raise HTTPException(
            415,
            f"{shown!r}: {ext or 'no extension'} is not a {modality} format this service accepts; "
            f"upload one of {', '.join(sorted(allowed))}.",
        )
    saved = Upload(folder=Path(tempfile.mkdtemp(prefix="upload-", dir=folder)), path=Path(), shown=shown)
    saved.path = saved.folder / name
    size, limit = 0, int(max_upload_mb * 2**20)
    try:
        with open(saved.path, "wb") as fh:
            while chunk := await upload.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, too_large(max_upload_mb, repr(shown)))
                fh.write(chunk)
        if size == 0:
            raise HTTPException(422, f"{shown!r} is empty; upload a {modality} file.")
    except BaseException:
        saved.close()
        raise
    return saved
