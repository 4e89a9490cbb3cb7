"""Stage 1: decoding media (audio, video frames, motion keypoints) into arrays."""
