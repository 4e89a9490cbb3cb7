"""The JSON API of ``beatdance serve`` on the small real library: summary, items, searches, media, plots, bad input."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import beatdance.cli.serve_cmd  # noqa: F401  (registers the command)
from beatdance.cli.app import app as cli_app
from beatdance.errors import CheckpointError, ParameterError
from beatdance.library import Library
from beatdance.service import create_app

SR = 22050


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("serve-cache")


@pytest.fixture(scope="module")
def client(small_library, cache_dir) -> Iterator[TestClient]:
    app = create_app(small_library, cache_dir=cache_dir)
    yield TestClient(app, raise_server_exceptions=False)
    app.state.service.close()


@pytest.fixture(scope="module")
def first_id(client) -> str:
    return client.get("/api/items", params={"limit": 1}).json()["items"][0]["id"]


def _wav(y: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), SR, format="WAV")
    return buf.getvalue()


def _upload(client: TestClient, name: str, data: bytes, modality: str = "music", **form: str):
    return client.post("/api/search", files={"file": (name, data)}, data={"modality": modality, "top": "3", **form})


def _uploads_left(cache_dir: Path) -> list[Path]:
    return list(cache_dir.glob("upload-*"))


def test_library_summary(client, small_library):
    body = client.get("/api/library").json()
    assert body["items"] == 12
    assert body["model_variant"] == "temporal"
    assert body["window_s"] == 10.0
    assert body["dance_kinds"] == {"keypoints": 12}
    assert body["settings"]["hubness"] == "dis"
    assert ".wav" in body["upload_extensions"]["music"] and ".npz" in body["upload_extensions"]["dance"]


def test_items_paging_and_modality(client):
    page = client.get("/api/items", params={"offset": 10, "limit": 5}).json()
    assert page["total"] == 12 and len(page["items"]) == 2
    music_only = client.get("/api/items", params={"modality": "music", "limit": 3}).json()["items"]
    assert len(music_only) == 3
    assert all(it["dance"] is None and it["music"]["source"].endswith(".wav") for it in music_only)
    assert client.get("/api/items", params={"modality": "video"}).status_code == 422


def test_search_by_id_ranks_dances(client, first_id):
    r = client.get("/api/search", params={"music_id": first_id, "top": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["direction"] == "m2d" and body["query"]["clip_id"] == first_id
    matches = body["matches"]
    assert [m["rank"] for m in matches] == [1, 2, 3, 4, 5]
    assert all(m["modality"] == "dance" and m["source"].endswith(".npz") for m in matches)
    assert matches[0]["score"] >= matches[-1]["score"]
    assert matches[0]["media"]["media_url"].endswith("/dance") and matches[0]["plot_url"].startswith("/api/plot/")


def test_search_by_dance_id_finds_music(client, first_id):
    body = client.get("/api/search", params={"dance_id": first_id, "top": 2}).json()
    assert body["direction"] == "d2m"
    assert all(m["modality"] == "music" and m["media"]["media_kind"] == "audio" for m in body["matches"])


def test_search_by_upload_and_upload_is_deleted(client, small_corpus, cache_dir):
    wav = (small_corpus / "pair_001.wav").read_bytes()
    r = _upload(client, "my song.wav", wav, start_s="0", duration_s="15")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["source"] == "my song.wav" and body["query"]["clip_id"] is None
    assert len(body["matches"]) == 3 and body["query"]["beats_s"]
    assert body["query"]["start_s"] in {w["start_s"] for w in body["windows"]}
    assert _uploads_left(cache_dir) == []


def test_search_by_keypoint_upload(client, small_library, small_corpus):
    """An uploaded keypoint file is searched as the library searches the file itself: same windows, best window,
    matches and scores."""
    r = _upload(client, "dance.npz", (small_corpus / "pair_002.npz").read_bytes(), modality="dance")
    assert r.status_code == 200, r.text
    body = r.json()
    local = Library.open(small_library).search(dance=small_corpus / "pair_002.npz", top=3)
    assert body["direction"] == local.direction == "d2m" and body["query"]["source"] == "dance.npz"
    np.testing.assert_allclose(
        [(w["start_s"], w["best_combined"]) for w in body["windows"]],
        [(w["start_s"], w["best_combined"]) for w in local.windows],
        atol=1e-6,
    )
    assert body["query"]["start_s"] == local.query["start_s"]
    assert [m["id"] for m in body["matches"]] == [m.id for m in local.matches]
    np.testing.assert_allclose(
        [(m["score"], m["beat_alignment"]) for m in body["matches"]],
        [(m.score, m.beat_alignment) for m in local.matches],
        atol=1e-6,
    )
    assert all(m["modality"] == "music" for m in body["matches"])


def test_media_streams_music_with_ranges(client, first_id, small_corpus):
    url = f"/api/media/{first_id}/music"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.headers["content-type"].startswith("audio/")
    assert whole.content == (small_corpus / "pair_000.wav").read_bytes()
    part = client.get(url, headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == whole.content[:100]


def test_media_renders_keypoint_dance_span(client, first_id, cache_dir):
    r = client.get(f"/api/media/{first_id}/dance")
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(r.content)) as c:
        stream = c.streams.video[0]
        assert stream.frames == 250  # the 10-s span at 25 fps
    assert list(cache_dir.glob("*.mp4")), "the render is cached"


def test_plot_png_for_query_beats_and_query_id(client, first_id):
    body = client.get("/api/search", params={"music_id": first_id, "top": 1}).json()
    png = client.get(body["matches"][0]["plot_url"])
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    by_id = client.get(f"/api/plot/{first_id}.png", params={"query_modality": "dance", "query_id": first_id})
    assert by_id.status_code == 200 and by_id.content.startswith(b"\x89PNG")
    bad = client.get(f"/api/plot/{first_id}.png", params={"query_modality": "music", "query_beats": "1,x"})
    assert bad.status_code == 422 and "comma-separated" in bad.json()["detail"]
    huge = client.get(f"/api/plot/{first_id}.png", params={"query_modality": "music", "query_beats": "-1e308,1e308"})
    assert huge.status_code == 422 and "0..3600 s" in huge.json()["detail"]  # was a 500 (arange of 1e308 s)


@pytest.mark.parametrize(
    "url",
    ["/api/search?music_id=nope", "/api/media/nope/music", "/api/plot/nope.png?query_modality=music&query_beats=1"],
)
def test_unknown_ids_are_404(client, url):
    r = client.get(url)
    assert r.status_code == 404 and "'nope' is not in the library" in r.json()["detail"]


def test_search_needs_exactly_one_id(client, first_id):
    r = client.get("/api/search", params={"music_id": first_id, "dance_id": first_id})
    assert r.status_code == 422 and "exactly one" in r.json()["detail"]


def test_oversize_upload_is_413(small_library, tmp_path):
    small = TestClient(create_app(small_library, max_upload_mb=0.01, cache_dir=tmp_path))
    r = _upload(small, "long.wav", _wav(np.zeros(SR)))
    assert r.status_code == 413 and "0.01 MB" in r.json()["detail"]
    assert _uploads_left(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "data", "modality", "needle"),
    [
        ("tool.exe", b"MZ\x90\x00", "music", ".exe is not a music format"),
        ("tool.wav", b"MZ\x90\x00" + bytes(range(256)) * 40, "music", "is not an audio or video file PyAV can open"),
        ("song.wav", b"RIFF", "dance", ".wav is not a dance format"),
        ("fake.npz", b"not a zip archive", "dance", "does not hold .npz keypoints"),
    ],
)
def test_wrong_types_are_415(client, cache_dir, name, data, modality, needle):
    r = _upload(client, name, data, modality=modality)
    assert r.status_code == 415 and needle in r.json()["detail"]
    assert str(cache_dir) not in r.json()["detail"], "messages name the upload, not the server's temp path"
    assert _uploads_left(cache_dir) == []


def test_bad_media_is_422_with_the_beatdance_message(client, small_corpus, cache_dir, caplog):
    wav = (small_corpus / "pair_000.wav").read_bytes()
    beat = np.sin(2 * np.pi * 440 * np.arange(3 * SR) / SR)
    cases = {
        "truncated.wav": (wav[: len(wav) // 3], "shorter than"),
        "silent.wav": (_wav(np.zeros(15 * SR)), "is silent"),
        "short.wav": (_wav(0.5 * beat), "lasts 3.000 s"),
        "empty.wav": (b"", "is empty"),
    }
    for name, (data, needle) in cases.items():
        r = _upload(client, name, data)
        assert r.status_code == 422, (name, r.text)
        assert needle in r.json()["detail"] and f"'{name}'" in r.json()["detail"], (name, r.json())
    with caplog.at_level(logging.CRITICAL, logger="beatdance.service.app"):
        corrupt = _upload(client, "broken.npz", b"PK\x03\x04" + b"\x00" * 200, modality="dance")
    assert corrupt.status_code == 422 and "broken.npz" in corrupt.json()["detail"]
    assert _uploads_left(cache_dir) == []


def test_form_validation_is_422(client, small_corpus):
    r = _upload(client, "a.wav", (small_corpus / "pair_000.wav").read_bytes(), top="0")
    assert r.status_code == 422


def test_openapi_documents_the_endpoints(client):
    spec = client.get("/openapi.json").json()
    assert {
        "/api/library",
        "/api/items",
        "/api/search",
        "/api/media/{clip_id}/{modality}",
        "/api/plot/{clip_id}.png",
    } <= set(spec["paths"])
    assert {"get", "post"} <= set(spec["paths"]["/api/search"])
    assert {"SearchOut", "MatchOut", "LibraryOut", "ItemsOut"} <= set(spec["components"]["schemas"])


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and 'src="/static/app.js"' in page.text
    assert "http" not in page.text.replace("http-equiv", ""), "no external resources"
    assert client.get("/static/app.js").status_code == 200


def test_bad_library_and_limit(tmp_path, small_library):
    with pytest.raises(CheckpointError, match="not a beatdance library"):
        create_app(tmp_path)
    with pytest.raises(ParameterError, match="max_upload_mb=0"):
        create_app(small_library, max_upload_mb=0)


def test_serve_command_is_registered():
    result = CliRunner().invoke(cli_app, ["serve", "--help"])
    assert result.exit_code == 0 and "--max-upload-mb" in result.output


def test_no_page_loads_from_a_cdn(client):
    assert client.head("/").status_code == 200
    assert client.get("/docs").status_code == 404, "Swagger UI would load from a CDN; the schema is /openapi.json"


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_serve_removes_its_temporary_cache_folder_on_sigterm_and_sigint(small_library, tmp_path, sig):
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from conftest import _free_port

    port = _free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "beatdance.cli", "serve", str(small_library), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/library", timeout=2)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.3)
        assert list(tmp_path.glob("beatdance-serve-*"))  # its cache folder exists while it runs
        proc.send_signal(getattr(signal, sig))
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert not list(tmp_path.glob("beatdance-serve-*"))
