"""Video frames: sampling by presentation time, spans, downscaling and bad input, on videos made in the test."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from test_audio import click_track, write_media

from beatdance.errors import MediaError, ParameterError
from beatdance.media.audio import probe_media
from beatdance.media.video import read_video_frames

FPS = 25
N_FRAMES = 100  # 4 s


def numbered_frames(n: int, *, height: int = 64, width: int = 96) -> np.ndarray:
    """Frame i shows i in two grey halves: tens on the left, units on the right (20 grey levels apart)."""
    frames = np.zeros((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        frames[i, :, : width // 2] = 20 + 20 * (i // 10)
        frames[i, :, width // 2 :] = 20 + 20 * (i % 10)
    return frames


def frame_numbers(frames: np.ndarray) -> np.ndarray:
    """Read back the numbers drawn by :func:`numbered_frames` (from the centre of each half)."""
    h, w = frames.shape[1:3]
    tens = frames[:, h // 4 : 3 * h // 4, w // 8 : 3 * w // 8].mean(axis=(1, 2, 3))
    units = frames[:, h // 4 : 3 * h // 4, 5 * w // 8 : 7 * w // 8].mean(axis=(1, 2, 3))
    return (10 * np.round((tens - 20) / 20) + np.round((units - 20) / 20)).astype(int)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory):
    return write_media(
        tmp_path_factory.mktemp("video") / "numbers.mp4",
        frames=numbered_frames(N_FRAMES),
        fps=FPS,
        audio=click_track(duration_s=N_FRAMES / FPS, sr=44100),
        gop_size=12,
    )


@pytest.mark.parametrize("fps", [10.0, 7.0, 25.0, 50.0])
def test_frames_are_nearest_by_presentation_time(mp4, fps):
    frames, out_fps = read_video_frames(mp4, fps=fps)
    assert out_fps == fps and frames.dtype == np.uint8 and frames.shape[1:] == (64, 96, 3)
    assert len(frames) == round(N_FRAMES / FPS * fps)
    expected = np.arange(len(frames)) * FPS / fps
    assert np.all(np.abs(frame_numbers(frames) - expected) <= 0.5 + 1e-6)


def test_span_seeks_to_the_start(mp4):
    frames, _ = read_video_frames(mp4, fps=10.0, start_s=2.2, duration_s=1.0)
    assert len(frames) == 10
    assert np.all(np.abs(frame_numbers(frames) - (55 + 2.5 * np.arange(10))) <= 0.5 + 1e-6)


def test_span_past_the_end_is_cut(mp4):
    frames, _ = read_video_frames(mp4, fps=10.0, start_s=3.5, duration_s=5.0)
    assert len(frames) == 5


def test_max_side_downscales_keeping_aspect(mp4):
    frames, _ = read_video_frames(mp4, fps=5.0, max_side=48)
    assert frames.shape[1:] == (32, 48, 3)
    assert frame_numbers(frames)[4] == 20


@pytest.mark.parametrize(
    "name,vcodec,acodec",
    [("numbers.webm", "libvpx-vp9", "libopus"), ("numbers.mkv", "libx264", "aac"), ("numbers.mov", "mpeg4", "aac")],
)
def test_other_containers(tmp_path, name, vcodec, acodec):
    path = write_media(
        tmp_path / name,
        frames=numbered_frames(50),
        fps=FPS,
        vcodec=vcodec,
        audio=click_track(duration_s=2.0, sr=48000),
        sr=48000,
        acodec=acodec,
    )
    frames, _ = read_video_frames(path, fps=5.0)
    assert len(frames) == 10
    np.testing.assert_array_equal(frame_numbers(frames), np.arange(0, 50, 5))


def test_bad_input_raises_media_error_naming_the_file(tmp_path, mp4):
    cases = {}
    audio_only = tmp_path / "song.wav"
    sf.write(audio_only, click_track(duration_s=1.0, sr=22050), 22050)
    cases[audio_only] = "no video stream"
    cases[tmp_path / "missing.mp4"] = "does not exist"
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases[empty] = "empty"
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(mp4.read_bytes()[:2000])
    cases[cut] = "corrupt|truncated"
    for path, match in cases.items():
        with pytest.raises(MediaError, match=match) as exc:
            read_video_frames(path, fps=10.0)
        assert path.name in str(exc.value)
    with pytest.raises(MediaError, match="outside") as exc:
        read_video_frames(mp4, fps=10.0, start_s=4.5)
    assert mp4.name in str(exc.value)
    with pytest.raises(ParameterError, match="fps"):
        read_video_frames(mp4, fps=0.0)


@pytest.mark.data
def test_mp3_cover_art_is_not_a_video(shared_data):
    mp3 = shared_data / "dance_with_melody" / "DANCE_C_4" / "audio.mp3"  # carries an MJPEG cover picture
    info = probe_media(mp3)
    assert info.has_audio and not info.has_video and info.video_fps is None and info.container_format == "mp3"
    with pytest.raises(MediaError, match="no video stream"):
        read_video_frames(mp3, fps=10.0)
