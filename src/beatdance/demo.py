"""The built-in demo: the whole pipeline from raw media, offline, on a fresh machine with no data.

synthesize a corpus (songs + beat-locked motion-capture dances, and one rendered dance video) ->
``prepare`` -> ``train`` (the ``default`` recipe) -> ``evaluate`` on the held-out pairs -> ``index`` a library ->
``search`` it with held-out songs, a held-out dance and the video -> ``export`` the best match -> a
report (Markdown and HTML, with plots) of R@K and of the beat alignment of the top results.

Every stage skips work already on disk, so a second run (or a run after an interruption) is quick.
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .features.loading import dataset_config
from .features.store import FeatureStore
from .library import Library, LibraryConfig, SearchResult, build_library
from .pipeline.export import ExportReport, export_pair
from .pipeline.prepare import PrepareConfig, prepare
from .plots import describe_shift, plot_beat_alignment, plot_recall_curves
from .retrieval.protocol import evaluate_model
from .synth.media import write_corpus
from .train.recipes import RECIPES
from .train.trainer import train
from .util import atomic_write_bytes, atomic_write_json


@dataclass
class DemoConfig:
    """Sizes of the demo; the defaults run in a few minutes on 2 CPU cores."""

    pairs: int = 60
    duration_s: float = 30.5
    hop_s: float = 5.0
    epochs: int = RECIPES["default"].train["epochs"]
    lr: float = RECIPES["default"].train["lr"]
    batch_size: int = 32
    seed: int = 0
    queries: int = 4
    workers: int = 2


def _corpus(out: Path, cfg: DemoConfig, *, show_progress: bool) -> tuple[Path, Path]:
    corpus, videos = out / "corpus", out / "videos"
    if not (corpus / "corpus.json").is_file():
        write_corpus(
            out_dir=corpus,
            num_pairs=cfg.pairs,
            seed=cfg.seed,
            duration_s=cfg.duration_s,
            video=False,
            show_progress=show_progress,
        )
    if not (videos / "corpus.json").is_file():
        write_corpus(out_dir=videos, num_pairs=1, seed=cfg.seed + 1, duration_s=12.0, video=True, show_progress=False)
    return corpus, videos / "pair_000.mp4"


def _train(store: Path, run: Path, cfg: DemoConfig, *, show_progress: bool) -> None:
    """Train the demo model with ``beatdance train``'s default recipe (validated once per epoch); a finished
    run is resumed past its last epoch, which trains nothing."""
    fs = FeatureStore.open(store)
    train_set, val_set = fs.load_split("train"), fs.load_split("val")
    model, config = RECIPES["default"].configs(
        model={"music_dim": train_set.music_dim, "dance_dim": train_set.dance_dim},
        train={
            "epochs": cfg.epochs,
            "lr": cfg.lr,
            "batch_size": cfg.batch_size,
            "seed": cfg.seed,
            "evals_per_epoch": 1,
            "selection_window": 3,
        },
    )
    train(
        train_set=train_set,
        val_set=val_set,
        model_config=model,
        data_info=dataset_config(store),
        out=run,
        config=config,
        resume=(run / "last").is_dir(),
        show_progress=show_progress,
    )


def _query_summary(result: SearchResult, *, truth_group: str | None) -> dict[str, Any]:
    groups = [m.group for m in result.matches]
    return {
        "query": result.query["source"],
        "modality": result.query["modality"],
        "window_start_s": result.query["start_s"],
        "query_tempo_bpm": result.query["tempo_bpm"],
        "truth_group": truth_group,
        "truth_rank": groups.index(truth_group) + 1 if truth_group in groups else None,
        "seconds": result.seconds,
        "matches": [
            {
                "rank": m.rank,
                "id": m.id,
                "group": m.group,
                "span_s": [m.start_s, (m.start_s or 0) + (m.duration_s or 0)],
                "score": m.score,
                "similarity": m.similarity,
                "beat_alignment": m.beat_alignment,
                "tempo_bpm": m.tempo_bpm,
            }
            for m in result.matches
        ],
    }


def run_demo(
    *, out: str | os.PathLike[str], config: DemoConfig | None = None, show_progress: bool = True, log: Any = print
) -> dict[str, Any]:
    """Run every stage into ``out`` and write ``out/report.md``, ``out/report.html`` and ``out/demo_report.json``."""
    cfg = config or DemoConfig()
    out = Path(out)
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t0 = t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        times[name] = round(now - t, 1)
        t = now
        log(f"[{now - t0:6.1f} s] {name} done ({times[name]:.1f} s)")

    corpus, video = _corpus(out, cfg, show_progress=show_progress)
    lap("synthesize media")
    store = out / "store"
    prep = prepare(
        inputs=[corpus],
        out=store,
        config=PrepareConfig(hop_s=cfg.hop_s),
        workers=cfg.workers,
        seed=cfg.seed,
        show_progress=show_progress,
    )
    lap("prepare")
    run = out / "run"
    _train(store, run, cfg, show_progress=show_progress)
    lap("train")
    evaluation = _evaluate(run, store, plots)
    lap("evaluate")
    library = out / "library"
    if not (library / "library.json").is_file():
        build_library(data=store, model=run, out=library, show_progress=show_progress)
    lib = Library.open(library)
    lap("index")
    fs = FeatureStore.open(store)
    test_groups = sorted({fs.meta(c)["group"] for c in fs.split_ids("test")})[: cfg.queries]
    first, queries, mean_ba = _searches(lib, test_groups=test_groups, video=video)
    lap("search")
    export = _export_top_match(first, out=out, plots=plots)
    lap("export")
    random_ba = _random_alignment(lib, seed=cfg.seed)
    summary = {
        "config": asdict(cfg),
        "seconds": round(time.perf_counter() - t0, 1),
        "stage_seconds": times,
        "prepare": {
            "clips": len(fs.ids()),
            "written": prep.clips_written,
            "skipped": prep.skipped,
            "splits": {s: len(fs.split_ids(s)) for s in fs.split_names()},
        },
        "evaluation": evaluation,
        "library": {"items": len(lib), "settings": lib.config.search.to_dict()},
        "queries": queries,
        "top1_beat_alignment": {d: float(np.mean(v)) for d, v in mean_ba.items()},
        "random_pair_beat_alignment": random_ba,
        "export": export.to_dict(),
    }
    atomic_write_json(out / "demo_report.json", summary)
    write_report(out, summary)
    return summary


def _evaluate(run: Path, store: Path, plots: Path) -> dict[str, Any]:
    """Held-out metrics with the library's search settings (DIS on the train querybank), and their plot."""
    lib_settings = LibraryConfig().search
    evaluation = evaluate_model(
        model=run,
        data=store,
        split="test",
        hubness="dis",
        querybank_split="train",
        beat_weight_head=lib_settings.beat_weight_head,
        beat_weight_align=lib_settings.beat_weight_align,
    )
    plot_recall_curves(
        path=plots / "recall.png",
        title="held-out pairs, R@K (clip level)",
        curves={
            f"{d} {h}": evaluation["results"][h][d]["metrics"] for h in evaluation["results"] for d in ("m2d", "d2m")
        },
    )
    return evaluation


def _searches(
    lib: Library, *, test_groups: list[str], video: Path
) -> tuple[SearchResult, list[dict[str, Any]], dict[str, list[float]]]:
    """The first music query's result, every query's summary and the top match's BA per direction: each test
    group's music, the first test group's dance, and the rendered video."""
    group_music = {it.grp: it.music_file for it in lib.items}
    group_dance = {it.grp: it.dance_file for it in lib.items}
    mean_ba: dict[str, list[float]] = {"m2d": [], "d2m": []}
    queries = []
    music_results = [lib.search(music=group_music[group], top=5) for group in test_groups]
    for group, result in zip(test_groups, music_results):
        queries.append(_query_summary(result, truth_group=group))
        mean_ba["m2d"].append(result.matches[0].beat_alignment)
    dance_result = lib.search(dance=group_dance[test_groups[0]], top=5)
    queries.append(_query_summary(dance_result, truth_group=test_groups[0]))
    mean_ba["d2m"].append(dance_result.matches[0].beat_alignment)
    video_result = lib.search(dance=video, top=5)
    queries.append(_query_summary(video_result, truth_group=None))
    return music_results[0], queries, mean_ba


def _export_top_match(first: SearchResult, *, out: Path, plots: Path) -> ExportReport:
    """The beat plot of a query against its top match, and the query's music exported under that dance."""
    best = first.matches[0]
    plot_beat_alignment(
        path=plots / "top_match_beats.png",
        music_beats_s=np.array(first.query["beats_s"]),
        dance_beats_s=np.array(best.beats_s),
        duration_s=float(first.query["duration_s"]),
        score=best.beat_alignment,
        title=f"query {Path(str(first.query['source'])).name} vs top match {best.id}",
    )
    return export_pair(
        music=str(first.query["source"]),
        dance=str(best.source),
        out=out / "top_match.mp4",
        music_start_s=float(first.query["start_s"]),
        dance_start_s=float(best.start_s or 0.0),
        duration_s=float(first.query["duration_s"]),
        plot=plots / "top_match_export.png",
    )


def _random_alignment(lib: Library, *, seed: int, n: int = 500) -> float:
    """Mean BA (music -> dance) of random music/dance item pairs: the level a beat-blind ranking reaches."""
    from .beats.alignment import alignment_matrix

    rng = np.random.default_rng(seed)
    m = lib.embeddings("music", rng.integers(0, len(lib), n)).beat_grid
    d = lib.embeddings("dance", rng.integers(0, len(lib), n)).beat_grid
    return float(np.mean(np.diag(alignment_matrix(music_grids=m, dance_grids=d))))


def _metric_rows(evaluation: dict[str, Any]) -> list[list[str]]:
    rows = []
    for hub, result in evaluation["results"].items():
        for d in ("m2d", "d2m"):
            m, p, b = result[d]["metrics"], result[d]["pair_metrics"], result[d]["beat_similarity"]
            rows.append(
                [
                    d,
                    hub,
                    *(f"{m[k]:.1f}" for k in ("R@1", "R@5", "R@10")),
                    f"{m['MedR']:.1f}",
                    f"{p['R@1']:.1f}",
                    f"{b['BS@1']:.1f}",
                    f"{b['BS@GT']:.1f}",
                ]
            )
    return rows


def _stage_times(times: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.0f} s" for name, seconds in times.items())


def _score_words(settings: dict[str, Any]) -> str:
    terms = [
        f"{settings[key]:g} x {name}"
        for key, name in (("beat_weight_head", "the beat-head cosine"), ("beat_weight_align", "the beat alignment"))
        if settings[key]
    ]
    return "Scores are the fused cosine" + (f" plus {' and '.join(terms)}" if terms else "")


def _report_blocks(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """The report as blocks (heading, paragraph, table, image, video), rendered to Markdown and HTML."""
    ev, prep, export = summary["evaluation"], summary["prepare"], summary["export"]
    n_test = ev["num_clips"]
    splits = ", ".join(f"{name} {count}" for name, count in prep["splits"].items())
    shift = -export["offset_s"]  # the export's offset skips music: its beats come earlier on the clip
    return [
        ("h1", "beatdance demo report"),
        (
            "p",
            f"Whole pipeline on synthetic media in {summary['seconds']:.0f} s: {summary['config']['pairs']} songs with "
            f"beat-locked motion-capture dances, {prep['clips']} windows of 10 s (clips per split: {splits}; split "
            f"by pair), a Beat Blender trained {summary['config']['epochs']} epochs with the default recipe. "
            f"Stage times: {_stage_times(summary['stage_seconds'])}.",
        ),
        ("h2", f"Retrieval on the held-out pairs ({n_test} clips; chance R@1 = {100 / n_test:.1f} %)"),
        ("table", (["dir", "hubness", "R@1", "R@5", "R@10", "MedR", "pair R@1", "BS@1", "BS@GT"], _metric_rows(ev))),
        (
            "p",
            f"{_score_words(summary['library']['settings'])}; DIS uses the train split as querybank. BS@K: mean "
            "beat alignment (%) of the top-K retrieved pairs; BS@GT: of the true pairs.",
        ),
        ("img", "plots/recall.png"),
        ("h2", "Searching the library with files"),
        (
            "p",
            f"Library of {summary['library']['items']} clips. Mean beat alignment of the top-1 match: "
            f"m2d {summary['top1_beat_alignment']['m2d']:.3f}, d2m {summary['top1_beat_alignment']['d2m']:.3f}; "
            f"random music/dance pairs: {summary['random_pair_beat_alignment']:.3f}.",
        ),
        (
            "table",
            (
                ["query", "window (s)", "BPM", "true pair rank", "top match", "BA", "2nd", "3rd", "ms"],
                [
                    [
                        Path(q["query"]).name + f" ({q['modality']})",
                        f"{q['window_start_s']:.0f}",
                        f"{q['query_tempo_bpm']:.0f}",
                        str(q["truth_rank"] or "-") if q["truth_group"] else "n/a",
                        q["matches"][0]["id"],
                        f"{q['matches'][0]['beat_alignment']:.2f}",
                        q["matches"][1]["id"],
                        q["matches"][2]["id"],
                        f"{1000 * q['seconds']:.0f}",
                    ]
                    for q in summary["queries"]
                ],
            ),
        ),
        ("p", "Music beats (red) against the dance beats (blue) of the top match of the first query:"),
        ("img", "plots/top_match_beats.png"),
        (
            "p",
            f"The video below puts that song under the matched dance, {describe_shift(shift)} to maximise the beat "
            f"alignment ({export['score_before']:.3f} -> {export['score_after']:.3f}):",
        ),
        ("video", "top_match.mp4"),
        ("img", "plots/top_match_export.png"),
    ]


def write_report(out: Path, summary: dict[str, Any]) -> None:
    """``report.md`` and ``report.html`` (same content; plots linked from ``plots/``)."""
    md, body = [], []
    for kind, value in _report_blocks(summary):
        if kind in ("h1", "h2"):
            md.append(("# " if kind == "h1" else "## ") + value)
            body.append(f"<{kind}>{html.escape(value)}</{kind}>")
        elif kind == "p":
            md.append(value)
            body.append(f"<p>{html.escape(value)}</p>")
        elif kind == "img":
            md.append(f"![{value}]({value})")
            body.append(f'<img src="{html.escape(value)}" style="max-width:900px">')
        elif kind == "video":
            md.append(f"[{value}]({value})")
            body.append(
                f'<p><video controls src="{html.escape(value)}" style="max-width:640px"></video><br>'
                f'<a href="{html.escape(value)}">{html.escape(value)}</a></p>'
            )
        else:
            head, rows = value
            md.append(
                "\n".join(
                    ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                    + ["| " + " | ".join(r) + " |" for r in rows]
                )
            )
            cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
            trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
            body.append(f"<table border=1 cellpadding=4><tr>{cells}</tr>{trs}</table>")
    atomic_write_bytes(out / "report.md", ("\n\n".join(md) + "\n").encode())
    page = f"<!doctype html><meta charset=utf-8><title>beatdance demo</title><body style='font-family:sans-serif'>{''.join(body)}</body>"
    atomic_write_bytes(out / "report.html", page.encode())
