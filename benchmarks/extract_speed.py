"""Seconds per 10-s clip for each InfoExtractor stage, and the real-time factor, on this machine.

    python benchmarks/extract_speed.py [--repeats 3]

Inputs are made in the run: a rendered synthetic MP4 (320x320, soundtrack muxed; pose from MediaPipe)
and a synthetic WAV + motion-capture NPZ. The baseline is real time: a real-time factor (RTF) below 1
means the stage runs faster than the clip plays.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from beatdance.beats.dance import kinematic_beats
from beatdance.beats.music import track_music_beats
from beatdance.encoders import create_encoder
from beatdance.media.audio import load_audio
from beatdance.media.keypoints import load_keypoints
from beatdance.media.pose import PoseEstimator
from beatdance.media.types import MediaClip
from beatdance.media.video import read_video_frames
from beatdance.synth.media import write_corpus

CLIP_S = 10.0


def timed(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    music_enc, pose_enc = create_encoder("audio-mel"), create_encoder("pose")
    rows: list[tuple[str, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        write_corpus(out_dir=Path(tmp) / "v", num_pairs=1, seed=0, duration_s=CLIP_S, video=True, show_progress=False)
        write_corpus(out_dir=Path(tmp) / "m", num_pairs=1, seed=0, duration_s=CLIP_S, video=False, show_progress=False)
        mp4, wav, npz = Path(tmp) / "v/pair_000.mp4", Path(tmp) / "m/pair_000.wav", Path(tmp) / "m/pair_000.npz"
        for kind, audio_path in (("video", mp4), ("mocap", wav)):
            t, (y, sr) = timed(lambda: load_audio(audio_path, sr=22050, duration_s=CLIP_S), args.repeats)
            rows.append((kind, "decode audio", t))
            if kind == "video":
                t, (frames, fps) = timed(lambda: read_video_frames(mp4, fps=15.0, duration_s=CLIP_S), args.repeats)
                rows.append((kind, "decode frames (15 fps)", t))
                with PoseEstimator() as est:
                    t, motion = timed(lambda: est.process(frames=frames, fps=fps), 1)
                rows.append((kind, "pose (MediaPipe)", t))
            else:
                t, motion = timed(lambda: load_keypoints(npz), args.repeats)
                rows.append((kind, "decode keypoints", t))
            t, _ = timed(lambda: track_music_beats(y=y, sr=sr), args.repeats)
            rows.append((kind, "music beats", t))
            t, _ = timed(lambda: kinematic_beats(motion=motion), args.repeats)
            rows.append((kind, "dance beats", t))
            clip = MediaClip(duration_s=CLIP_S, audio=y, sr=sr, motion=motion)
            t, _ = timed(lambda: (music_enc.encode(clip), pose_enc.encode(clip)), args.repeats)
            rows.append((kind, "features (audio-mel + pose)", t))
    print(f"{'input':<6}  {'stage':<28}  {'s / 10-s clip':>13}  {'RTF':>6}")
    for kind in ("video", "mocap"):
        total = 0.0
        for k, stage, t in rows:
            if k == kind:
                total += t
                print(f"{kind:<6}  {stage:<28}  {t:>13.3f}  {t / CLIP_S:>6.3f}")
        print(f"{kind:<6}  {'TOTAL':<28}  {total:>13.3f}  {total / CLIP_S:>6.3f}")


if __name__ == "__main__":
    main()
