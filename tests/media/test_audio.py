"""Audio decoding: formats, spans, click timing and every bad-input case, on media made in the test."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from beatdance.errors import MediaError, ParameterError
from beatdance.media.audio import check_audio, load_audio, probe_media

SR = 44100
CLICK_S = 1.234


def click_track(*, duration_s: float, sr: int, clicks_s: tuple[float, ...] = (CLICK_S,)) -> np.ndarray:
    """Quiet noise with a loud 5-ms 2 kHz burst starting at each time of ``clicks_s``."""
    rng = np.random.default_rng(0)
    y = 0.001 * rng.standard_normal(int(duration_s * sr))
    n = int(0.005 * sr)
    burst = 0.8 * np.sin(2 * np.pi * 2000 * np.arange(n) / sr) * np.hanning(2 * n)[n:]
    for t in clicks_s:
        a = int(round(t * sr))
        y[a : a + n] += burst[: len(y) - a]
    return y.astype(np.float32)


def write_media(
    path: Path,
    *,
    audio: np.ndarray | None = None,
    sr: int = SR,
    acodec: str = "aac",
    frames: np.ndarray | None = None,
    fps: int = 25,
    vcodec: str = "libx264",
    stereo: bool = False,
    gop_size: int | None = None,
) -> Path:
    """Encode mono ``audio`` and/or RGB ``frames`` (T, H, W, 3) into ``path`` with PyAV."""
    with av.open(str(path), mode="w") as out:
        vs = as_ = None
        if frames is not None:
            vs = out.add_stream(vcodec, rate=fps)
            vs.width, vs.height = frames.shape[2], frames.shape[1]
            vs.pix_fmt = "yuv420p"
            if gop_size is not None:
                vs.codec_context.gop_size = gop_size
        if audio is not None:
            as_ = out.add_stream(acodec, rate=sr, layout="stereo" if stereo else "mono")
        if vs is not None:
            for i, img in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts, vf.time_base = i, Fraction(1, fps)
                out.mux(vs.encode(vf))
            out.mux(vs.encode(None))
        if as_ is not None:
            chans = np.stack([audio, audio]) if stereo else audio[None]
            step = 1024
            for i in range(0, audio.size, step):
                af = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chans[:, i : i + step], dtype=np.float32),
                    format="fltp",
                    layout="stereo" if stereo else "mono",
                )
                af.sample_rate, af.pts, af.time_base = sr, i, Fraction(1, sr)
                out.mux(as_.encode(af))
            out.mux(as_.encode(None))
    return path


def first_click_s(y: np.ndarray, *, sr: int) -> float:
    """Time of the first sample louder than half the peak."""
    return float(np.flatnonzero(np.abs(y) > 0.5 * np.abs(y).max())[0]) / sr


@pytest.fixture(scope="module")
def clicks() -> np.ndarray:
    return click_track(duration_s=3.0, sr=SR)


@pytest.mark.parametrize("suffix,fmt", [(".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG")])
def test_soundfile_formats_keep_duration_rate_and_click_time(tmp_path, clicks, suffix, fmt):
    path = tmp_path / f"clicks{suffix}"
    sf.write(path, clicks, SR, format=fmt)
    y, sr = load_audio(path, sr=22050)
    assert sr == 22050 and y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size / sr - 3.0) < 0.01
    assert abs(first_click_s(y, sr=sr) - CLICK_S) < 0.010


@pytest.mark.parametrize(
    "name,acodec",
    [("clicks.mp3", "libmp3lame"), ("clicks.m4a", "aac"), ("clicks.opus.webm", "libopus"), ("clicks.mkv", "flac")],
)
def test_pyav_audio_formats_keep_click_time(tmp_path, clicks, name, acodec):
    sr_in = 48000 if acodec == "libopus" else SR
    y_in = click_track(duration_s=3.0, sr=sr_in) if sr_in != SR else clicks
    path = write_media(tmp_path / name, audio=y_in, sr=sr_in, acodec=acodec)
    y, sr = load_audio(path, sr=16000)
    assert sr == 16000
    assert abs(y.size / sr - 3.0) < 0.06
    assert abs(first_click_s(y, sr=sr) - CLICK_S) < 0.010


@pytest.mark.parametrize(
    "name,vcodec,acodec",
    [
        ("v.mp4", "libx264", "aac"),
        ("v.mkv", "libx264", "aac"),
        ("v.webm", "libvpx-vp9", "libopus"),
        ("v.mov", "libx264", "aac"),
    ],
)
def test_audio_track_of_videos(tmp_path, name, vcodec, acodec):
    sr_in = 48000
    frames = np.zeros((50, 64, 96, 3), dtype=np.uint8)
    path = write_media(
        tmp_path / name,
        audio=click_track(duration_s=2.0, sr=sr_in),
        sr=sr_in,
        acodec=acodec,
        frames=frames,
        vcodec=vcodec,
        stereo=True,
    )
    info = probe_media(path)
    assert info.has_audio and info.has_video and info.audio_sr == sr_in and info.channels == 2
    assert (info.width, info.height) == (96, 64) and info.video_fps == pytest.approx(25.0)
    assert abs(info.duration_s - 2.0) < 0.1
    y, sr = load_audio(path, sr=22050)
    assert abs(first_click_s(y, sr=sr) - CLICK_S) < 0.010


@pytest.mark.parametrize("name,acodec", [("long.wav", None), ("long.mp3", "libmp3lame"), ("long.mp4", "aac")])
def test_span_is_decoded_from_the_seek_point(tmp_path, name, acodec):
    clicks_s = (2.0, 7.3, 9.1)
    y_in = click_track(duration_s=12.0, sr=SR, clicks_s=clicks_s)
    path = tmp_path / name
    if acodec is None:
        sf.write(path, y_in, SR)
    else:
        write_media(path, audio=y_in, acodec=acodec)
    y, sr = load_audio(path, sr=22050, start_s=7.0, duration_s=2.0)
    assert y.size == 2 * sr
    assert abs(first_click_s(y, sr=sr) - 0.3) < 0.010


def test_span_past_the_end_is_cut_like_librosa(tmp_path, clicks):
    path = tmp_path / "c.wav"
    sf.write(path, clicks, SR)
    y, sr = load_audio(path, sr=SR, start_s=2.5, duration_s=5.0)
    assert abs(y.size / sr - 0.5) < 1e-3


def test_probe_audio_only(tmp_path, clicks):
    path = tmp_path / "c.flac"
    sf.write(path, clicks, SR)
    info = probe_media(path)
    assert not info.has_video and info.audio_sr == SR and info.channels == 1
    assert info.container_format == "flac" and info.codecs == ("flac",)
    assert info.duration_s == pytest.approx(3.0, abs=1e-3)


def _assert_media_error(path: Path, match: str, **kw) -> None:
    with pytest.raises(MediaError, match=match) as exc:
        load_audio(path, **kw)
    assert path.name in str(exc.value)


def test_bad_files_raise_media_error_naming_the_file(tmp_path, clicks):
    _assert_media_error(tmp_path / "missing.wav", "does not exist")
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    _assert_media_error(empty, "empty")
    junk = tmp_path / "junk.xyz"
    junk.write_bytes(np.random.default_rng(1).bytes(4000))
    _assert_media_error(junk, "corrupt|unknown format")
    mp4 = write_media(tmp_path / "cut.mp4", audio=clicks, frames=np.zeros((25, 32, 32, 3), np.uint8))
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    _assert_media_error(cut, "corrupt|truncated")


@pytest.mark.parametrize("name,acodec", [("long.flac", None), ("long.mp3", "libmp3lame")])
def test_truncated_audio_is_detected(tmp_path, name, acodec):
    """FLAC and MP3 (Xing header) declare their length, so a cut file is caught; see load_audio."""
    path = tmp_path / name
    y_in = click_track(duration_s=10.0, sr=SR)
    if acodec is None:
        sf.write(path, y_in, SR)
    else:
        write_media(path, audio=y_in, acodec=acodec)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 5])
    _assert_media_error(path, "truncated")


def test_video_without_audio_and_span_outside(tmp_path, clicks):
    silent_video = write_media(tmp_path / "noaudio.mp4", frames=np.zeros((25, 32, 32, 3), np.uint8))
    _assert_media_error(silent_video, "no audio stream")
    path = tmp_path / "short.wav"
    sf.write(path, clicks, SR)
    _assert_media_error(path, "outside", start_s=3.5)
    with pytest.raises(ParameterError, match="start_s"):
        load_audio(path, start_s=-1.0)
    with pytest.raises(ParameterError, match="duration_s"):
        load_audio(path, duration_s=0.0)


def test_check_audio(clicks):
    check_audio(clicks, sr=SR, min_duration_s=2.0)
    with pytest.raises(MediaError, match="song.wav.*NaN"):
        check_audio(np.array([0.1, np.nan], np.float32), sr=SR, path="song.wav")
    with pytest.raises(MediaError, match="silent"):
        check_audio(np.full(SR, 1e-4, np.float32), sr=SR, path="quiet.wav")
    with pytest.raises(MediaError, match="shorter"):
        check_audio(clicks, sr=SR, path="x.wav", min_duration_s=5.0)
