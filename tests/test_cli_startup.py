"""Start-up: the top-level help imports no command module; each command loads only its own module."""

from __future__ import annotations

import subprocess
import sys

from beatdance.cli import COMMANDS, load_commands


def test_the_static_listing_names_exactly_the_registered_commands():
    app = load_commands()
    registered = {c.name for c in app.registered_commands if c.callback.__module__.startswith("beatdance.cli.")}
    assert registered == set(COMMANDS)
    for command in app.registered_commands:
        if command.name in COMMANDS:
            assert command.callback.__module__ == f"beatdance.cli.{COMMANDS[command.name][0]}", command.name


def _modules_after(argv: list[str]) -> set[str]:
    code = (
        f"import sys; from beatdance.cli import main; sys.argv = ['beatdance', *{argv!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return set(out.stderr.split())


def test_help_imports_neither_torch_nor_librosa_and_a_command_only_its_module():
    top = _modules_after(["--help"])
    assert "typer" in top and not {"torch", "librosa", "numba"} & top
    assert not any(m.endswith("_cmd") for m in top)
    warm = _modules_after(["warmup", "--help"])
    assert "beatdance.cli.warmup_cmd" in warm and "beatdance.cli.train_cmd" not in warm


def test_a_fresh_music_search_loads_neither_torch_nor_librosa(small_library, small_corpus):
    """A search extracts and embeds its query with numpy (and madmom's networks, for the default tracker) alone:
    torch costs a fresh process about 1.5 s, librosa and numba about 3 s."""
    loaded = _modules_after(["search", str(small_library), "--music", str(small_corpus / "pair_003.wav"), "--json"])
    assert {"faiss", "beatdance.media.spectral", "beatdance.model.inference"} <= loaded  # it did search
    assert not {"torch", "librosa", "numba", "scipy.signal", "scipy.stats"} & loaded
