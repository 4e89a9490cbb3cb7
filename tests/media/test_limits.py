"""Query limits: hostile files made here (an hour of FLAC, an .npz bomb, a long static video, files that hide or
understate their length, a frozen "dancer") are refused before the work or stopped at the cap while decoding."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import sys
import time
import tracemalloc
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from test_audio import write_media

from beatdance.beats.dance import DanceBeatConfig
from beatdance.cli import main
from beatdance.errors import LimitError, MediaError, ParameterError
from beatdance.library import Library
from beatdance.media.audio import load_audio, probe_media
from beatdance.media.keypoints import load_keypoints
from beatdance.media.limits import QueryLimits, span_s
from beatdance.media.numpy_pickle import load_numpy_pickle
from beatdance.media.video import read_video_frames
from beatdance.pipeline.extract import analyse_dance

SR = 8000


def _click_flac(path: Path, *, minutes: int) -> Path:
    """``minutes`` of a click every half second at 8 kHz, written a minute at a time (1 h: about 5 MB)."""
    block = np.zeros(60 * SR, dtype=np.float32)
    block[:: SR // 2] = 0.9
    with sf.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16") as fh:
        for _ in range(minutes):
            fh.write(block)
    return path


def _mkv(path: Path, *, seconds: int, video: bool) -> Path:
    """Matroska of ``seconds`` of clicks (FLAC) or of a still 32×32 picture at 10 fps (MPEG-4)."""
    with av.open(str(path), "w", format="matroska") as out:
        if video:
            stream = out.add_stream("mpeg4", rate=10)
            stream.width = stream.height = 32
            stream.pix_fmt = "yuv420p"
            img = np.full((32, 32, 3), 120, np.uint8)
            frames = [av.VideoFrame.from_ndarray(img, format="rgb24") for _ in range(seconds * 10)]
            rate = 10
        else:
            stream = out.add_stream("flac", rate=SR, layout="mono")
            y = np.zeros((1, SR), np.float32)
            y[0, :: SR // 2] = 0.5
            frames = [av.AudioFrame.from_ndarray(y, format="flt", layout="mono") for _ in range(seconds)]
            for f in frames:
                f.sample_rate = SR
            rate = 1
        for i, f in enumerate(frames):
            f.pts, f.time_base = i * (1 if video else SR), Fraction(1, rate if video else SR)
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))
    return path


def _restate_duration(path: Path, seconds: float | None) -> Path:
    """Overwrite the Matroska segment Duration (ms) with ``seconds``, or blank it (an EBML Void) when None."""
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Duration element, 8-byte float
    assert at > 0
    data[at : at + 11] = (
        b"\xec\x89" + bytes(9) if seconds is None else data[at : at + 3] + struct.pack(">d", seconds * 1e3)
    )
    path.write_bytes(bytes(data))
    return path


def test_limits_validate_and_round_trip():
    limits = QueryLimits(max_seconds=30, max_keypoint_values=1000)
    assert QueryLimits.from_dict(limits.to_dict()) == limits
    for bad in ({"max_seconds": 0}, {"max_video_pixel_frames": float("inf")}, {"max_keypoint_values": -5}):
        with pytest.raises(ParameterError, match="positive finite"):
            QueryLimits(**bad)
    assert span_s(start_s=10, duration_s=None, file_duration_s=100) == 90
    assert span_s(start_s=10, duration_s=30, file_duration_s=100) == 30
    assert span_s(start_s=90, duration_s=30, file_duration_s=100) == 10
    assert span_s(start_s=0, duration_s=None, file_duration_s=None) is None


def test_an_hour_of_flac_is_refused_from_its_header(tmp_path):
    path = _click_flac(tmp_path / "hour.flac", minutes=60)
    assert path.stat().st_size < 6e6 and probe_media(path).duration_s == pytest.approx(3600)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(LimitError) as err:
            load_audio(path, sr=22050, limits=QueryLimits())
        seconds, (_, peak_bytes) = time.perf_counter() - t0, tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert "hour.flac" in message and "lasts 3600.0 s" in message and "max_seconds=120" in message
    assert "raise --max-query-seconds (beatdance search / beatdance serve)" in message
    assert seconds < 1.0 and peak_bytes < 1e6  # nothing decoded
    y, _ = load_audio(path, sr=SR, start_s=1800, duration_s=60, limits=QueryLimits())  # a span under the cap is read
    assert y.size == 60 * SR


@pytest.mark.parametrize("declared_s", [2.0, None])
def test_audio_that_understates_or_hides_its_length_stops_at_the_cap(tmp_path, declared_s):
    path = _restate_duration(_mkv(tmp_path / "a.mkv", seconds=60, video=False), declared_s)
    assert probe_media(path).duration_s == declared_s
    assert load_audio(path, sr=SR)[0].size == 60 * SR  # without limits: the whole minute it holds
    declared = "2.0 s" if declared_s else "no duration"
    with pytest.raises(
        LimitError, match=rf"decoding passed 11.5 s of audio \(the file declares {declared}\).*max_seconds=10"
    ):
        load_audio(path, sr=SR, limits=QueryLimits(max_seconds=10))


def test_a_long_static_video_is_refused_from_its_probe(tmp_path):
    path = write_media(tmp_path / "still.mp4", frames=np.full((400, 48, 64, 3), 90, np.uint8), fps=10)
    assert probe_media(path).duration_s == pytest.approx(40, abs=0.2)
    t0 = time.perf_counter()
    with pytest.raises(
        LimitError, match=r"still.mp4: the video to read lasts 40.0 s, over the query limit max_seconds=30"
    ):
        read_video_frames(path, fps=15, limits=QueryLimits(max_seconds=30))
    with pytest.raises(
        LimitError,
        match=r"64×48 pixels × 600 frames at 15 fps = 1.84e\+06 pixel-frames.*"
        r"raise --max-video-pixel-frames",
    ):
        read_video_frames(path, fps=15, limits=QueryLimits(max_video_pixel_frames=1e6))
    assert time.perf_counter() - t0 < 1.0
    frames, _ = read_video_frames(path, fps=15, duration_s=20, limits=QueryLimits(max_seconds=30))
    assert frames.shape[0] == 300


@pytest.mark.parametrize("declared_s", [2.0, None])
def test_video_that_understates_or_hides_its_length_stops_at_the_cap(tmp_path, declared_s):
    path = _restate_duration(_mkv(tmp_path / "v.mkv", seconds=30, video=True), declared_s)
    assert probe_media(path).duration_s == declared_s
    assert read_video_frames(path, fps=10)[0].shape[0] == 300
    with pytest.raises(LimitError, match=r"decoding passed 5 s of video .*max_seconds=5"):
        read_video_frames(path, fps=10, limits=QueryLimits(max_seconds=5))
    with pytest.raises(LimitError, match=r"decoding passed .* pixel-frames at 10 fps.*max_video_pixel_frames=50000"):
        read_video_frames(path, fps=10, limits=QueryLimits(max_video_pixel_frames=5e4))
    # decoding costs too when few frames are sampled: at most 8 decoded frames (and pixels) per frame sampled
    with pytest.raises(LimitError, match=r"decoding passed 113 frames, 8 per frame sampled in 10 s"):
        read_video_frames(path, fps=0.5, limits=QueryLimits(max_seconds=10))
    with pytest.raises(LimitError, match=r"decoding passed 1.61e\+05 pixels, 8× the budget"):
        read_video_frames(path, fps=0.5, limits=QueryLimits(max_video_pixel_frames=2e4))


def _npz_declaring(path: Path, shape: tuple[int, ...]) -> Path:
    """An .npz whose 'joints' header declares ``shape`` float32 but holds 64 bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("joints.npy", header.getvalue() + bytes(64))
        with zf.open("fps.npy", "w") as fh:
            np.lib.format.write_array(fh, np.array(30.0))
    return path


def test_npz_headers_are_checked_before_any_allocation(tmp_path):
    bomb = _npz_declaring(tmp_path / "bomb.npz", (1_000_000_000, 17, 3))
    tracemalloc.start()
    try:
        with pytest.raises(
            LimitError,
            match=r"bomb.npz: the arrays 'joints' \(1000000000, 17, 3\), 'fps' \(\) declare "
            r"51000000001 values, over the query limit max_keypoint_values=20000000",
        ):
            load_keypoints(bomb, limits=QueryLimits())
        assert tracemalloc.get_traced_memory()[1] < 1e6
    finally:
        tracemalloc.stop()
    np.savez_compressed(tmp_path / "zeros.npz", joints=np.zeros((1000, 17, 3), np.float32), fps=30.0)
    with pytest.raises(LimitError, match="51001 values.*raise --max-keypoint-values"):
        load_keypoints(tmp_path / "zeros.npz", limits=QueryLimits(max_keypoint_values=50_000))
    assert load_keypoints(tmp_path / "zeros.npz", limits=QueryLimits(max_keypoint_values=60_000)).num_frames == 1000


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"joints": np.zeros((10, 17), np.float32), "fps": 30.0}, r"'joints' is declared as float32 \(10, 17\)"),
        ({"joints": np.zeros((10, 17, 2)), "fps": np.zeros(3)}, r"'fps' is declared as float64 \(3,\)"),
        ({"joints": np.zeros((10, 17, 2)), "fps": 30.0, "skeleton": np.array("x" * 2000)}, "'skeleton' is declared"),
        ({"joints": np.zeros((10, 17, 2), np.complex64), "fps": 30.0}, "'joints' is declared as complex64"),
    ],
)
def test_npz_arrays_a_motion_cannot_be_made_of_are_refused_from_the_header(tmp_path, arrays, match):
    np.savez(tmp_path / "x.npz", **arrays)
    with pytest.raises(MediaError, match=match):
        load_keypoints(tmp_path / "x.npz", limits=QueryLimits())


def test_npz_member_that_is_not_an_array_is_refused_unread(tmp_path):
    with zipfile.ZipFile(tmp_path / "raw.npz", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("joints", bytes(10_000_000))  # np.load would hand these bytes over whole
    with pytest.raises(MediaError, match="not a readable .npz of plain arrays"):
        load_keypoints(tmp_path / "raw.npz", limits=QueryLimits())


def _aist(frames: int) -> dict:
    return {"keypoints2d": np.zeros((9, frames, 17, 3), np.float32), "timestamps": np.arange(frames) * 16_666}


class _Declares:
    """Pickles as numpy's ``_reconstruct(ndarray, (n,), "f4")``, which allocates n floats before any data is read."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __reduce__(self):
        return (np._core.multiarray._reconstruct, (np.ndarray, (self.n,), b"f"))


def test_pickle_arrays_and_size_are_bounded(tmp_path):
    path = tmp_path / "a.pkl"
    path.write_bytes(pickle.dumps(_aist(100)))
    assert load_numpy_pickle(path, limits=QueryLimits(max_keypoint_values=50_000))["keypoints2d"].shape == (
        9,
        100,
        17,
        3,
    )
    with pytest.raises(LimitError, match="the arrays in the pickle hold 46000 values.*max_keypoint_values=40000"):
        load_numpy_pickle(path, limits=QueryLimits(max_keypoint_values=40_000))
    path.write_bytes(pickle.dumps({"keypoints2d": _Declares(100_000_000)}))
    tracemalloc.start()
    try:
        with pytest.raises(LimitError, match="the arrays in the pickle declare 100000000 values"):
            load_numpy_pickle(path, limits=QueryLimits())
        assert tracemalloc.get_traced_memory()[1] < 1e6
    finally:
        tracemalloc.stop()
    big = tmp_path / "big.pkl"
    big.write_bytes(pickle.dumps(np.zeros(300_000)))  # 2.4 MB, over 8 bytes per allowed value + 1 MiB
    with pytest.raises(LimitError, match=r"the pickle has 24\d{5} bytes"):
        load_numpy_pickle(big, limits=QueryLimits(max_keypoint_values=100_000))


def test_pickle_cannot_call_ndarray_to_allocate(tmp_path):
    """``numpy.ndarray((n,))`` in a pickle would allocate n elements whatever the file holds."""
    path = tmp_path / "alloc.pkl"
    path.write_bytes(b"cnumpy\nndarray\n(I100000000\ntR.")
    with pytest.raises(MediaError, match="refused or unreadable pickle"):
        load_numpy_pickle(path)


def test_csv_rows_and_index_grid_are_bounded(tmp_path):
    rows = "\n".join(f"{f},{j},1.0,2.0" for f in range(300) for j in range(17))
    (tmp_path / "a.csv").write_text(f"# fps=30\nframe,joint,x,y\n{rows}\n")
    assert load_keypoints(tmp_path / "a.csv", limits=QueryLimits(max_keypoint_values=30_000)).num_frames == 300
    with pytest.raises(LimitError, match="the first 2501 rows hold 10004 values"):
        load_keypoints(tmp_path / "a.csv", limits=QueryLimits(max_keypoint_values=10_000))
    (tmp_path / "far.csv").write_text("# fps=30\nframe,joint,x,y\n0,0,1,1\n100000000,100000,1,1\n")
    with pytest.raises(LimitError, match=r"100000001 frames × 100001 joints × 2 coordinates make 2\d+ values"):
        load_keypoints(tmp_path / "far.csv", limits=QueryLimits())
    (tmp_path / "long.csv").write_text("# fps=30\nframe,joint,x,y\n" + "0" * 10_000 + "\n")
    with pytest.raises(MediaError, match="a line longer than 4096 characters"):
        load_keypoints(tmp_path / "long.csv", limits=QueryLimits())


def test_dance_with_melody_json_is_inflated_only_to_the_cap(tmp_path):
    folder = tmp_path / "take"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"start_position": 0}))
    with gzip.open(folder / "skeletons.json.gz", "wt") as fh:
        json.dump({"skeletons": np.zeros((1000, 23, 3)).tolist(), "center": np.zeros((1000, 3)).tolist()}, fh)
    with pytest.raises(LimitError, match="the skeleton JSON inflates past 20000 bytes"):
        load_keypoints(folder, limits=QueryLimits(max_keypoint_values=10_000))


def _moving_npz(path: Path, *, seconds: float, fps: float = 10.0) -> Path:
    t = np.arange(int(seconds * fps)) / fps
    joints = np.random.default_rng(0).uniform(0, 100, (1, 17, 2)) + 20 * np.sin(2 * np.pi * t)[:, None, None]
    np.savez(path, joints=joints.astype(np.float32), fps=fps)
    return path


def test_a_frozen_or_all_zero_dancer_is_no_dance(tmp_path):
    frozen = np.random.default_rng(1).uniform(0, 100, (1, 17, 2)).repeat(300, axis=0)
    for name, joints in (("zero", np.zeros((300, 17, 2))), ("frozen", frozen)):
        np.savez(tmp_path / f"{name}.npz", joints=joints.astype(np.float32), fps=30.0)
        with pytest.raises(MediaError, match=f"{name}.npz: no joint moves"):
            analyse_dance(tmp_path / f"{name}.npz", beat_config=DanceBeatConfig())
    assert analyse_dance(
        _moving_npz(tmp_path / "moving.npz", seconds=20), beat_config=DanceBeatConfig()
    ).beats.times_s.size


def test_a_long_motion_is_refused_before_its_beats(tmp_path):
    path = _moving_npz(tmp_path / "long.npz", seconds=200)
    with pytest.raises(LimitError, match="the motion to analyse lasts 200.0 s, over the query limit max_seconds=120"):
        analyse_dance(path, beat_config=DanceBeatConfig(), limits=QueryLimits())
    assert analyse_dance(path, beat_config=DanceBeatConfig(), duration_s=30, limits=QueryLimits()).duration_s == 30


def _run_cli(monkeypatch, capsys, *args: object) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["beatdance", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_library_search_refuses_an_hour_of_flac_fast(small_library, tmp_path):
    path = _click_flac(tmp_path / "hour.flac", minutes=60)
    lib = Library.open(small_library)
    t0 = time.perf_counter()
    with pytest.raises(LimitError, match="lasts 3600.0 s"):
        lib.search(music=path)
    assert time.perf_counter() - t0 < 2.0


def test_search_options_set_the_caps(small_library, small_corpus, monkeypatch, capsys):
    song = small_corpus / "pair_000.wav"  # 20.5 s
    code, _, err = _run_cli(monkeypatch, capsys, "search", small_library, "--music", song, "--max-query-seconds", 10)
    assert code == 2 and "max_seconds=10" in err and "--max-query-seconds" in err
    code, out, _ = _run_cli(
        monkeypatch, capsys, "search", small_library, "--music", song, "--max-query-seconds", 30, "--top", 2, "--json"
    )
    assert code == 0 and len(json.loads(out)["matches"]) == 2
    code, _, err = _run_cli(
        monkeypatch,
        capsys,
        "search",
        small_library,
        "--dance",
        small_corpus / "pair_000.npz",
        "--max-keypoint-values",
        100,
    )
    assert code == 2 and "max_keypoint_values=100" in err
    code, _, err = _run_cli(
        monkeypatch, capsys, "search", "--server", "http://127.0.0.1:9", "--music", song, "--max-query-seconds", 10
    )
    assert code == 2 and "--max-" in err
