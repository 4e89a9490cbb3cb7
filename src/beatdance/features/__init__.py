"""Stage 4: the feature store, the official BeatDance layout, segment pooling and in-memory feature sets."""
