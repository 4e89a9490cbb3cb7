"""``export_pair`` and ``beatdance export``: synthetic music shifted by a known amount under a beat-locked dance."""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from typer.testing import CliRunner

import beatdance.cli.export_cmd  # noqa: F401  (registers the command)
from beatdance.beats.music import track_music_beats
from beatdance.cli import main
from beatdance.cli.app import app
from beatdance.errors import MediaError, ParameterError
from beatdance.media.audio import load_audio, probe_media
from beatdance.media.keypoints import load_dwm_pair
from beatdance.media.skeletons import COCO17, DWM23
from beatdance.pipeline.export import ExportReport, export_pair
from beatdance.synth.media import SynthPair, synthesize_pair
from beatdance.synth.render import encode_mp4, render_video

DANCE_START_S = 1.0
SHIFT_S = 0.3  # the export should start the music this much after MUSIC_START_S
MUSIC_START_S = DANCE_START_S - SHIFT_S  # the song and the dance are beat-locked on the same clock
START = {"music_start_s": MUSIC_START_S, "dance_start_s": DANCE_START_S}
BPM = 75.0  # the music also aligns 0.8 s (one beat) either side of SHIFT_S, within the default 2-s search
TOLERANCE_S = 0.06  # three search steps: beat trackers place beats up to ~25 ms after the onset
DURATION_S = 8.0
SIZE = 160


@pytest.fixture(scope="module")
def pair() -> SynthPair:
    return synthesize_pair(seed=3, bpm=BPM, style="hiphop", duration_s=DURATION_S + DANCE_START_S + 2.5)


def _write_npz(path: Path, *, joints: np.ndarray, fps: float, skeleton: str) -> Path:
    np.savez(path, joints=joints.astype(np.float32), fps=np.float64(fps), skeleton=np.str_(skeleton))
    return path


@pytest.fixture(scope="module")
def media(pair: SynthPair, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The song (WAV) and its dance's COCO-17 keypoints."""
    root = tmp_path_factory.mktemp("export")
    music = root / "music.wav"
    sf.write(music, pair.music.audio, pair.music.sr)
    dance = _write_npz(root / "dance.npz", joints=pair.motion.joints, fps=pair.motion.fps, skeleton=COCO17.name)
    return {"root": root, "music": music, "dance": dance}


@pytest.fixture(scope="module")
def exported(media: dict[str, Path]) -> ExportReport:
    return export_pair(
        music=media["music"],
        dance=media["dance"],
        out=media["root"] / "out.mp4",
        duration_s=DURATION_S,
        width=SIZE,
        height=SIZE,
        **START,
    )


def _decode(path: Path) -> tuple[np.ndarray, np.ndarray, int, list[str]]:
    """RGB frames, mono audio, its rate and the stream types of an MP4."""
    with av.open(str(path)) as c:
        types = [s.type for s in c.streams]
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    audio, sr = load_audio(path, sr=22050)
    return frames, audio, sr, types


def _assert_drawn(frames: np.ndarray) -> None:
    """Every frame shows something besides the background, and the picture moves."""
    background = frames[:, :1, :1].astype(int)
    drawn = (np.abs(frames.astype(int) - background).sum(axis=3) > 60).mean(axis=(1, 2))
    assert drawn.min() > 0.005
    assert np.abs(np.diff(frames.astype(np.int16), axis=0)).mean() > 0.1


def test_export_finds_the_shift_and_improves_alignment(exported: ExportReport) -> None:
    assert exported.offset_s == pytest.approx(SHIFT_S, abs=TOLERANCE_S)
    assert exported.score_after > exported.score_before + 0.3
    assert exported.music_tempo_bpm == pytest.approx(BPM, rel=0.06)
    # the dancer moves on every beat or every other one
    assert min(abs(exported.dance_tempo_bpm / bpm - 1) for bpm in (BPM, BPM / 2)) < 0.06
    played = np.array(exported.music_beats_s)
    assert played.min() >= 0 and played.max() < DURATION_S and played.size >= 8
    assert exported.to_dict()["offset_s"] == exported.offset_s


def _assert_plays_from(audio: np.ndarray, sr: int, *, song: Path, start_s: float) -> None:
    """``audio`` is the song from exactly ``start_s`` (cross-correlation peak within 5 ms, correlation > 0.95)."""
    reference, _ = load_audio(song, sr=sr, start_s=start_s, duration_s=len(audio) / sr)
    correlation = scipy.signal.correlate(audio, reference, mode="full", method="fft")
    lag = int(np.argmax(correlation)) - (len(reference) - 1)
    assert abs(lag) <= 0.005 * sr
    assert correlation.max() / (np.linalg.norm(audio) * np.linalg.norm(reference)) > 0.95


def test_mp4_has_the_dance_and_the_music_at_the_offset(exported: ExportReport, media: dict[str, Path]) -> None:
    frames, audio, sr, types = _decode(Path(exported.out))
    assert sorted(types) == ["audio", "video"]
    assert len(frames) == round(DURATION_S * 25) and frames.shape[1:] == (SIZE, SIZE, 3)
    assert len(audio) / sr == pytest.approx(DURATION_S, abs=0.1)
    _assert_drawn(frames)
    _assert_plays_from(audio, sr, song=media["music"], start_s=MUSIC_START_S + exported.offset_s)


def test_unshifted_music_keeps_offset_near_zero(pair: SynthPair, media: dict[str, Path], tmp_path: Path) -> None:
    music = tmp_path / "song.flac"
    sf.write(music, pair.music.audio, pair.music.sr)
    report = export_pair(
        music=music,
        dance=media["dance"],
        out=tmp_path / "o.mp4",
        duration_s=4.0,
        dance_start_s=1.0,
        music_start_s=1.0,
        width=SIZE,
        height=SIZE,
        fps=20.0,
    )
    assert report.offset_s == pytest.approx(0.0, abs=TOLERANCE_S)
    assert report.duration_s == pytest.approx(4.0)


# For each DWM23 joint, the COCO-17 joints it is the mean of.
_DWM_FROM_COCO = (
    (4,),
    (3,),
    (5, 6, 11, 12),
    (6,),
    (8,),
    (8, 10),
    (10,),
    (12,),
    (14,),
    (16,),
    (16,),
    (16,),
    (5,),
    (7,),
    (7, 9),
    (9,),
    (11,),
    (13,),
    (15,),
    (15,),
    (15,),
    (9,),
    (10,),
)


def _dwm_folder(path: Path, pair: SynthPair) -> Path:
    """A Dance-with-Melody-like folder: the synthetic dance as 23 3-D joints in cm, y up, around a moving centre
    (a fixed depth per joint, so that the beats are those of the 2-D dance)."""
    assert len(_DWM_FROM_COCO) == DWM23.num_joints
    j = pair.motion.joints.astype(np.float64)
    xy = np.stack([j[:, list(sources)].mean(axis=1) for sources in _DWM_FROM_COCO], axis=1) * 100.0
    depth = np.broadcast_to(np.linspace(-10.0, 10.0, DWM23.num_joints)[None, :, None], (len(j), DWM23.num_joints, 1))
    skeletons = np.concatenate([xy[..., :1], -xy[..., 1:2], depth], axis=2)
    centre = skeletons.mean(axis=1)
    path.mkdir()
    with gzip.open(path / "skeletons.json.gz", "wt", encoding="utf-8") as fh:
        json.dump({"skeletons": (skeletons - centre[:, None]).tolist(), "center": centre.tolist()}, fh)
    (path / "config.json").write_text(json.dumps({"start_position": 0}))
    return path


def test_dance_with_melody_folder_is_drawn_in_3d(pair: SynthPair, media: dict[str, Path], tmp_path: Path) -> None:
    report = export_pair(
        music=media["music"],
        dance=_dwm_folder(tmp_path / "dwm", pair),
        out=tmp_path / "dwm.mp4",
        duration_s=6.0,
        width=SIZE,
        height=SIZE,
        **START,
    )
    assert report.dance_kind == "keypoints"
    assert report.offset_s == pytest.approx(SHIFT_S, abs=TOLERANCE_S)
    frames, _, _, types = _decode(tmp_path / "dwm.mp4")
    assert sorted(types) == ["audio", "video"]
    _assert_drawn(frames)


@pytest.mark.slow
def test_video_dance_uses_mediapipe(pair: SynthPair, media: dict[str, Path], tmp_path: Path) -> None:
    render_video(pair=pair, path=tmp_path / "dancer.mp4", width=256, height=256)
    report = export_pair(
        music=media["music"],
        dance=tmp_path / "dancer.mp4",
        out=tmp_path / "v.mp4",
        duration_s=6.0,
        width=SIZE,
        height=SIZE,
        **START,
    )
    assert report.dance_kind == "video"
    assert report.offset_s == pytest.approx(SHIFT_S, abs=2 * TOLERANCE_S)
    assert report.score_after > report.score_before
    frames, _, _, _ = _decode(tmp_path / "v.mp4")
    assert frames.shape[1:] == (SIZE, SIZE, 3)  # the 256-pixel video is scaled to max(width, height)


def test_cli_json_and_plot(media: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "export",
            "--music",
            str(media["music"]),
            "--dance",
            str(media["dance"]),
            "--out",
            str(tmp_path / "c.mp4"),
            "--music-start",
            str(MUSIC_START_S),
            "--dance-start",
            str(DANCE_START_S),
            "--duration",
            "4",
            "--plot",
            str(tmp_path / "c.png"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["offset_s"] == pytest.approx(SHIFT_S, abs=TOLERANCE_S)
    assert report["plot"] == str(tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "c.mp4").stat().st_size > 1000


def test_cli_summary(media: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "export",
            "--music",
            str(media["music"]),
            "--dance",
            str(media["dance"]),
            "--out",
            str(tmp_path / "s.mp4"),
            "--duration",
            "5",
            "--music-start",
            str(MUSIC_START_S),
            "--dance-start",
            str(DANCE_START_S),
        ],
    )
    assert result.exit_code == 0, result.output
    offset = re.search(r"offset ([-+]\d\.\d+) s", result.stdout)
    assert offset and float(offset.group(1)) == pytest.approx(SHIFT_S, abs=TOLERANCE_S)
    assert re.search(r"beat alignment 0\.\d+ -> 0\.\d+", result.stdout)


def _bad_inputs(root: Path, media: dict[str, Path], pair: SynthPair) -> dict[str, tuple[list[str], type, str, Path]]:
    """name -> (CLI arguments, error type, words of the message, file the message must name)."""
    silent_video = root / "silent.mp4"
    silent_video.write_bytes(encode_mp4(frames=np.zeros((10, 64, 64, 3), np.uint8), fps=10.0, audio=None, sr=None))
    corrupt = root / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + bytes(range(256)) * 8)
    still = _write_npz(
        root / "still.npz", joints=np.repeat(pair.motion.joints[:1], 100, axis=0), fps=25.0, skeleton=COCO17.name
    )
    missing = root / "nowhere.wav"
    music, dance = media["music"], media["dance"]
    return {
        "missing music": (["--music", str(missing), "--dance", str(dance)], MediaError, "does not exist", missing),
        "corrupt music": (["--music", str(corrupt), "--dance", str(dance)], MediaError, "corrupt", corrupt),
        "music without audio": (
            ["--music", str(silent_video), "--dance", str(dance)],
            MediaError,
            "no audio",
            silent_video,
        ),
        "motionless dance": (["--music", str(music), "--dance", str(still)], MediaError, "no dance beats", still),
        "dance span outside": (
            ["--music", str(music), "--dance", str(dance), "--dance-start", "60"],
            MediaError,
            "outside",
            dance,
        ),
        "music span too short": (
            ["--music", str(music), "--dance", str(dance), "--music-start", "9", "--duration", "5"],
            MediaError,
            "shorter --duration",
            music,
        ),
        "bad duration": (
            ["--music", str(music), "--dance", str(dance), "--duration", "-1"],
            ParameterError,
            "duration_s=-1",
            Path("duration_s"),
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing music",
        "corrupt music",
        "music without audio",
        "motionless dance",
        "dance span outside",
        "music span too short",
        "bad duration",
    ],
)
def test_cli_bad_inputs_name_the_file(case: str, pair: SynthPair, media: dict[str, Path], tmp_path: Path) -> None:
    args, error, words, named = _bad_inputs(tmp_path, media, pair)[case]
    result = CliRunner().invoke(app, ["export", *args, "--out", str(tmp_path / "x.mp4")])
    assert isinstance(result.exception, error), result.output
    assert words in str(result.exception) and str(named) in str(result.exception)
    assert not (tmp_path / "x.mp4").exists()


def test_main_exits_2_with_the_message(
    pair: SynthPair,
    media: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args, _, _, named = _bad_inputs(tmp_path, media, pair)["motionless dance"]
    monkeypatch.setattr(sys, "argv", ["beatdance", "export", *args, "--out", str(tmp_path / "x.mp4")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: The dance '{named}'")


def _ba(music_s: np.ndarray, dance_s: np.ndarray, sigma_s: float) -> float:
    """SPEC §5 written out: mean over ``music_s`` of exp(-d^2 / 2 sigma^2), d to the nearest ``dance_s`` beat."""
    if music_s.size == 0 or dance_s.size == 0:
        return 0.0
    return float(np.mean([np.exp(-np.min((dance_s - m) ** 2) / (2 * sigma_s**2)) for m in music_s]))


@pytest.mark.data
def test_dance_with_melody_from_shared_data(shared_data: Path, tmp_path: Path) -> None:
    """A real song under its real motion capture: the reported beats and scores are those of the music that plays,
    and the shift is, by brute force over every 20-ms step, the smallest whose BA is within 5 % of the best."""
    folder = shared_data / "dance_with_melody" / "DANCE_C_4"
    dwm = load_dwm_pair(folder)
    report = export_pair(
        music=dwm.audio_path,
        dance=folder,
        out=tmp_path / "dwm.mp4",
        music_start_s=dwm.music_start_s,
        duration_s=6.0,
        width=SIZE,
        height=SIZE,
    )
    frames, audio, sr, _ = _decode(tmp_path / "dwm.mp4")
    assert len(audio) / sr == pytest.approx(6.0, abs=0.1)
    _assert_drawn(frames)
    _assert_plays_from(audio, sr, song=dwm.audio_path, start_s=dwm.music_start_s + report.offset_s)
    # The music beats that export compares: our tracker on the song from 2 s before to 2 s after the clip.
    window_s = dwm.music_start_s - 2.0
    song, song_sr = load_audio(
        dwm.audio_path, sr=min(probe_media(dwm.audio_path).audio_sr, 48000), start_s=window_s, duration_s=10.0
    )
    music = track_music_beats(y=song, sr=song_sr).times_s + window_s - dwm.music_start_s  # from the music start
    dance, sigma = np.asarray(report.dance_beats_s), report.sigma_s
    assert dance.size >= 4 and sigma == 0.1

    def played(offset: float) -> np.ndarray:  # the music beats heard during the clip, on its clock
        return music[(music >= offset) & (music < offset + 6.0)] - offset

    np.testing.assert_allclose(report.music_beats_s, played(report.offset_s), atol=1e-9)
    assert report.score_after == pytest.approx(_ba(played(report.offset_s), dance, sigma), abs=1e-9)
    assert report.score_before == pytest.approx(_ba(played(0.0), dance, sigma), abs=1e-9)
    shifts = np.round(np.arange(-100, 101) * 0.02, 10)
    from_dance = np.array([_ba(dance + s, music, sigma) for s in shifts])  # each dance beat to its nearest music beat
    good = from_dance >= 0.95 * from_dance.max() - 1e-9
    nearest = np.abs(shifts[good]).min()
    candidates = shifts[good & np.isclose(np.abs(shifts), nearest)]
    chosen = candidates[np.argmax(from_dance[np.isin(shifts, candidates)])]
    if _ba(played(chosen), dance, sigma) < report.score_before:  # a shift that plays worse than none is not applied
        chosen = 0.0
    assert report.offset_s == pytest.approx(chosen, abs=1e-9)
    assert report.score_after >= report.score_before
