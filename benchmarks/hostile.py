"""Hostile inputs for `beatdance serve`, made cheaply, and a client that streams a body and stops at the answer.

Used by benchmarks/load_test.py and tests/service/test_hardening.py:

- ``write_click_flac``: an hour of clicks at 8 kHz (a few MB that declare an hour of audio);
- ``write_npz_bomb``: a keypoint file whose ``joints`` array inflates to gigabytes of zeros;
- ``write_static_mp4``: minutes of one still frame;
- ``stream_upload``: a multipart upload of any size sent with chunked transfer encoding, one chunk at a time,
  watching for the server's answer between chunks (httpx sends the whole body before reading one).
"""

from __future__ import annotations

import io
import select
import socket
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KB, MB = 1024, 1024 * 1024


def write_click_flac(path: Path, *, seconds: float, sr: int = 8000) -> Path:
    """``seconds`` of a click every 0.5 s as 16-bit FLAC, written in one-minute blocks (bounded memory)."""
    import soundfile as sf

    block = np.zeros(60 * sr, dtype=np.int16)
    block[:: sr // 2] = 20000
    with sf.SoundFile(path, "w", samplerate=sr, channels=1, subtype="PCM_16", format="FLAC") as fh:
        for _ in range(int(seconds // 60)):
            fh.write(block)
    return path


def write_npz_bomb(path: Path, *, inflated_bytes: int, joints: int = 17) -> Path:
    """A keypoint .npz whose float32 ``joints`` member (frames, joints, 2) inflates to ``inflated_bytes`` of zeros.

    Made cheaply: 8 MB of zeros are deflated once, ending in a full flush (so the compressed piece does not
    refer back), and the piece is repeated; the zip records around it are written by hand (the file is
    about 1/1000 of what it inflates to).
    """
    piece_bytes, frame_bytes = 8 * MB, joints * 2 * 4
    frames = inflated_bytes // frame_bytes
    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(header, {"descr": "<f4", "fortran_order": False, "shape": (frames, joints, 2)})
    pieces = -(-frames * frame_bytes // piece_bytes)  # whole pieces: the member may run past the array's end
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflate.compress(header.getvalue()) + deflate.flush(zlib.Z_FULL_FLUSH)
    piece = deflate.compress(bytes(piece_bytes)) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.flush()
    crc = zlib.crc32(header.getvalue())
    zeros = bytes(piece_bytes)
    for _ in range(pieces):
        crc = zlib.crc32(zeros, crc)
    fps = io.BytesIO()
    np.save(fps, np.float32(30.0))
    members = [
        ("joints.npy", 8, crc, [head, *[piece] * pieces, tail], len(header.getvalue()) + pieces * piece_bytes),
        ("fps.npy", 0, zlib.crc32(fps.getvalue()), [fps.getvalue()], len(fps.getvalue())),
    ]
    central = b""
    with path.open("wb") as fh:
        for name, method, member_crc, parts, size in members:
            offset, packed = fh.tell(), sum(map(len, parts))
            fields = (method, 0, 0x21, member_crc, packed, size, len(name))
            fh.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, *fields, 0) + name.encode())
            for part in parts:
                fh.write(part)
            central += (
                struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, *fields, 0, 0, 0, 0, 0, offset) + name.encode()
            )
        start = fh.tell()
        fh.write(
            central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), start, 0)
        )
    return path


def write_static_mp4(path: Path, *, seconds: float, fps: float = 4.0, side: int = 96) -> Path:
    """``seconds`` of one grey frame as an H.264 MP4."""
    from beatdance.synth.render import encode_mp4

    frames = np.full((int(seconds * fps), side, side, 3), 128, dtype=np.uint8)
    path.write_bytes(encode_mp4(frames=frames, fps=fps, audio=None, sr=None))
    return path


@dataclass
class StreamResult:
    """How the server answered a streamed upload: status (None: no answer), body, bytes sent before, seconds."""

    status: int | None
    body: bytes
    sent_bytes: int
    seconds: float


def stream_upload(
    *,
    host: str,
    port: int,
    total_bytes: int,
    chunk_bytes: int = 256 * KB,
    path: str = "/api/search",
    timeout_s: float = 30.0,
) -> StreamResult:
    """POST a multipart music upload of ``total_bytes`` with chunked transfer encoding, one chunk at a time,
    watching the socket between chunks, and stop sending as soon as the server answers (or closes)."""
    boundary = "beatdance-load-test"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="modality"\r\n\r\nmusic\r\n--{boundary}\r\n'
        'Content-Disposition: form-data; name="file"; filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n'
    ).encode()
    t0 = time.monotonic()
    sent = 0
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nTransfer-Encoding: chunked\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
            ).encode()
        )
        piece = bytes(chunk_bytes)
        try:
            while sent < total_bytes:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                data = head if sent == 0 else piece[: min(chunk_bytes, total_bytes - sent)]
                sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                sent += len(data)
            else:
                sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server closed the connection while we were still sending
            pass
        status, body = read_response(sock, deadline=t0 + timeout_s)
    return StreamResult(status=status, body=body, sent_bytes=sent, seconds=time.monotonic() - t0)


def read_response(sock: socket.socket, *, deadline: float) -> tuple[int | None, bytes]:
    """Status and body of one HTTP response (body up to Content-Length or EOF); (None, b"") when none came."""
    data = b""
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(64 * KB)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            lengths = [
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            ]
            if sep and lengths and len(body) >= lengths[0]:
                break
    except OSError:
        pass
    if not data.startswith(b"HTTP/"):
        return None, b""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body
