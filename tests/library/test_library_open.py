"""Opening a library is cheap: the embeddings are memory-mapped and the table's rows are read as searches need them,
with the same search results as a library read whole."""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest
from safetensors.numpy import load_file

from beatdance.errors import CheckpointError
from beatdance.library import Library
from beatdance.library import library as library_module
from beatdance.library.arrays import map_arrays
from beatdance.library.catalog import Catalog, read_catalog


def test_the_embeddings_are_memory_mapped_and_equal_what_safetensors_reads(small_library, tmp_path):
    path = small_library / "embeddings.safetensors"
    mapped, read = map_arrays(path), load_file(str(path))
    assert mapped.keys() == read.keys()
    for name, array in read.items():
        assert isinstance(mapped[name], np.memmap) and not mapped[name].flags.writeable, name
        assert mapped[name].dtype == array.dtype
        np.testing.assert_array_equal(mapped[name], array)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:-10])  # a tensor runs past the end of the file
    with pytest.raises(CheckpointError, match="cut.safetensors.*damaged"):
        map_arrays(cut)
    cut.write_bytes(path.read_bytes()[:40])  # the header runs past the end
    with pytest.raises(CheckpointError, match="header"):
        map_arrays(cut)


def test_open_reads_no_row_and_a_search_only_its_matches(small_library):
    lib = Library.open(small_library)
    assert isinstance(lib._arrays["music_fuse"], np.memmap)
    assert isinstance(lib.items, Catalog) and not lib.items._items and "ids" not in vars(lib)
    reference = read_catalog(small_library / "meta.sqlite")
    assert len(lib) == len(reference) == 12
    result = lib.search(music_id=reference[4].clip_id, top=3)
    assert sorted(lib.items._items) == sorted({4, *(reference.index(m.item) for m in result.matches)})
    assert [m.item for m in result.matches] == [reference[r] for r in [reference.index(m.item) for m in result.matches]]
    assert lib.ids == [it.clip_id for it in reference] and lib.item(reference[7].clip_id) == reference[7]
    assert list(lib.items) == reference and lib.items[2:5] == reference[2:5] and lib.items[-1] == reference[-1]
    with pytest.raises(IndexError):
        lib.items[12]


def test_search_results_equal_a_library_read_whole(small_library, monkeypatch):
    """Matches, scores and items are those of the library opened as before: every row decoded up front and the
    arrays read into memory (``safetensors.numpy.load_file``)."""
    lazy = Library.open(small_library)
    monkeypatch.setattr(library_module, "map_arrays", lambda path: load_file(str(path)))
    whole = Library.open(small_library)
    assert not isinstance(whole._arrays["music_fuse"], np.memmap)
    assert list(whole.items) == read_catalog(small_library / "meta.sqlite") and len(whole.items._items) == 12
    for i in (0, 5, 11):
        for key in ("music_id", "dance_id"):
            a = lazy.search(**{key: lazy.ids[i]}, top=5).to_dict()
            b = whole.search(**{key: lazy.ids[i]}, top=5).to_dict()
            a.pop("seconds"), b.pop("seconds")
            assert a == b and len(a["matches"]) == 5


def test_an_open_library_keeps_reading_after_its_folder_is_replaced(small_library, tmp_path):
    """As its memory-mapped files do, the table stays readable through the connection opened with the library
    (``index --add`` swaps in a new version folder and deletes the old one)."""
    copy = tmp_path / "lib"
    shutil.copytree(small_library, copy)
    lib = Library.open(copy)
    shutil.rmtree(copy)
    result = lib.search(music_id=lib.items[3].clip_id, top=4)
    assert len(result.matches) == 4 and len(lib.embeddings("dance")) == 12


def test_a_table_with_gaps_or_no_table_is_refused(small_library, tmp_path):
    table = tmp_path / "meta.sqlite"
    shutil.copyfile(small_library / "meta.sqlite", table)
    con = sqlite3.connect(table)
    con.execute("DELETE FROM items WHERE row = 3")
    con.commit()
    con.close()
    with pytest.raises(CheckpointError, match="gaps"):
        Catalog(table)
    table.write_bytes(b"not a database" * 100)
    with pytest.raises(CheckpointError, match="not a readable library table"):
        Catalog(table)
    with pytest.raises(CheckpointError, match="missing"):
        Catalog(tmp_path / "none.sqlite")
