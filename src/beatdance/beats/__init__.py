"""Stage 2: music beats, dance (kinematic) beats, beat grids and beat alignment."""
