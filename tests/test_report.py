"""``odic report``: the self-contained HTML page, checked end to end in headless Chromium."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from odic.report import ReportError, build_report, class_names, frontier_series, pareto_front, write_report

from .browser import Chromium, find_chromium
from .conftest import smooth_image

CODECS = ["odic:alpha=0:q=10/60", "odic:alpha=1:q=10/60", "jpeg:q=10/40/80"]


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory) -> Path:
    """A real (tiny) bench: 2 labelled images, odic at both observers, JPEG, the HEVC reference."""
    from odic.bench import BenchConfig, load_dataset, run_bench

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bench")
    data = root / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(80, 112, seed=i)).save(data / f"img{i}.png")
    (data / "labels.csv").write_text("file,label\nimg0.png,1\nimg1.png,2\n")
    out = root / "out"
    run_bench(BenchConfig([load_dataset("tiny", str(data))], CODECS, out, classifiers=["efficientnet_lite0"],
                          progress=False, plots=False, command="pytest tiny bench"))
    return out


@pytest.fixture(scope="module")
def report_path(bench_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    t0 = time.perf_counter()
    write_report(bench_dir, out, crops=1, crop_bpp=0.5)
    assert time.perf_counter() - t0 < 60
    return out


@pytest.fixture
def chromium() -> str:
    """The browser binary; checked before the (slower) bench fixture so a skip costs nothing."""
    path = find_chromium()
    if path is None:
        msg = "headless Chromium not found (scripts/setup-browser.sh installs chromium and chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg + "; CI must not skip the report's browser test")
        pytest.skip(msg)
    return path


def test_report_loads_in_headless_chromium(chromium, report_path, tmp_path) -> None:
    with Chromium(chromium, width=1400, height=1000) as browser:
        page = browser.open(report_path)
    assert page.errors == [], page.errors
    assert page.title.startswith("odic bench report")
    # rd + accuracy + trade-off plots, then original + 4 codecs for the one image.
    assert len(page.images) == 8, page.images
    undecoded = [i for i in page.images if not (i["complete"] and i["naturalWidth"] > 0)]
    assert undecoded == [], undecoded
    shot = Image.open(io.BytesIO(page.screenshot))
    assert shot.format == "PNG" and shot.size == (1400, 1000)
    assert len(np.unique(np.asarray(shot.convert("L")))) > 10  # not a blank page
    shot.save(tmp_path / "report.png")


def test_report_is_self_contained_and_complete(report_path) -> None:
    page = report_path.read_text(encoding="utf-8")
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    # Exactly the three plots, then the original and each of the four codecs for the one crop.
    assert re.findall(r'<img[^>]*alt="([^"]*)"', page) == [
        "Rate-distortion tiny", "Rate-accuracy tiny", "Trade-off frontier (human vs machine at equal rate) tiny",
        "original", "odic human (α=0)", "odic machine (α=1)", "HEVC (hevc-raw)", "JPEG (jpeg)"]
    assert len(srcs) == 8
    assert not re.search(r'(href|src)="(https?:)?//', page)
    assert "<script" not in page
    for text in ("Rate-distortion", "Rate-accuracy", "Trade-off frontier", "at 0.25 bpp", "BD-rate",
                 "odic human", "odic machine", "HEVC (hevc-raw)", "JPEG (jpeg)", "top1 / efficientnet_lite0",
                 "pytest tiny bench", "Speed"):
        assert text in page, text
    names = class_names()
    assert "(label: goldfish)" in page  # img0.png is labelled 1
    assert len(re.findall(r"<ol>", page)) == 5  # top-5 under the original and each codec
    assert any(n in page for n in names)


def test_missing_pieces_are_reported_not_fatal(bench_dir, tmp_path) -> None:
    folder = tmp_path / "partial"
    folder.mkdir()
    summary = json.loads((bench_dir / "summary.json").read_text())
    for ds in summary["datasets"].values():
        ds["source"] = str(tmp_path / "gone")
    summary["datasets"]["empty"] = {"codecs": {}}
    (folder / "summary.json").write_text(json.dumps(summary))  # no results.csv, no images
    page = build_report(folder, crops=2)
    assert "the dataset images are not at" in page
    assert "results.csv is missing" in page
    assert "No codec results for this dataset" in page
    assert "<h2>Dataset empty</h2>" in page


def test_human_only_summary_without_classifier(tmp_path) -> None:
    curve = [{"setting": q, "n_images": 1, "bpp": b, "psnr": p, "ms_ssim": m}
             for q, b, p, m in ((10, 0.2, 27.0, 0.90), (50, 0.6, 31.0, 0.96))]
    summary = {"schema": "odic-bench/1", "at_bpp_targets": [0.25, 1.0],
               "datasets": {"faces": {"source": str(tmp_path), "layout": "folder", "crops": {}, "codecs": {
                   "jpeg": {"curve": curve, "at_bpp": {"0.25": {"psnr": 27.5, "ms_ssim": 0.91}, "1": {}}}}}}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    Image.fromarray(smooth_image(40, 48)).save(tmp_path / "a.png")
    page = build_report(tmp_path, crops=1, crop_bpp=1.0)
    assert "27.50" in page and "No codec was measured around 1 bpp" in page
    assert "no classifier in this bench" in page
    assert page.count("<ol>") == 0 and "JPEG (jpeg)" in page


@pytest.mark.parametrize("case", ["no-folder", "no-summary", "bad-json", "not-a-summary"])
def test_cli_bad_input_is_one_line_and_nonzero(tmp_path, capsys, case) -> None:
    from odic.cli import main

    folder = tmp_path / "res"
    if case != "no-folder":
        folder.mkdir()
    if case == "bad-json":
        (folder / "summary.json").write_text("{not json")
    if case == "not-a-summary":
        (folder / "summary.json").write_text("[1, 2]")
    code = main(["report", str(folder), "-o", str(tmp_path / "r.html"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and err.startswith("odic: error:"), err
    assert not (tmp_path / "r.html").exists()
    with pytest.raises(ReportError):
        build_report(folder)


def test_cli_writes_and_refuses_to_overwrite(bench_dir, tmp_path, capsys) -> None:
    from odic.cli import main

    out = tmp_path / "r.html"
    assert main(["report", str(bench_dir), "-o", str(out), "--crops", "0", "-q"]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", str(bench_dir), "-o", str(out), "--crops", "0", "-q"]) != 0
    assert "exists" in capsys.readouterr().err
    assert main(["report", str(bench_dir), "-o", str(out), "--crops", "0", "-q", "-f"]) == 0


def test_class_names_and_pareto_front() -> None:
    names = class_names()
    assert len(names) == 1000 and names[0] == "tench" and names[1] == "goldfish"
    assert pareto_front([(0.9, 0.5), (0.8, 0.7), (0.85, 0.4), (0.95, 0.45)]) == [
        (0.8, 0.7), (0.9, 0.5), (0.95, 0.45)]


def test_browser_helper_is_found_consistently() -> None:
    path = find_chromium()
    assert path is None or shutil.which(path)


def test_frontier_series_draws_one_line_per_encoder() -> None:
    """The fast encoder's observer settings form one line, each refine setting its own."""
    points = {
        "odic:alpha=1": (0.92, 0.66), "odic:alpha=0": (0.94, 0.58), "odic:alpha=0.5": (0.93, 0.60),
        "odic:alpha=1:model=run/a.pt:refine=50": (0.91, 0.83), "odic:alpha=0:refine=20": (0.945, None),
        "hevc-raw": (0.944, 0.595),
    }
    assert frontier_series(points) == {
        "odic": [(0.0, (0.94, 0.58)), (0.5, (0.93, 0.60)), (1.0, (0.92, 0.66))],
        "odic:refine=50": [(1.0, (0.91, 0.83))],  # the weights file is not a series of its own
    }  # a point with a missing axis is left out


def _summary_folder(root: Path, name: str, datasets: dict) -> Path:
    folder = root / name
    folder.mkdir()
    summary = {"schema": "odic-bench/1", "at_bpp_targets": [0.25, 0.5], "reference_codec": "hevc-raw",
               "datasets": datasets}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def _at(rate: str, metrics: dict[str, float]) -> dict:
    return {"at_bpp": {rate: metrics}}


def test_frontier_gathers_the_two_axes_from_several_runs(tmp_path, capsys) -> None:
    from odic.cli import main

    kodak = _summary_folder(tmp_path, "kodak", {"kodak": {"codecs": {
        "odic:alpha=0": _at("0.25", {"ms_ssim": 0.94}), "odic:alpha=1": _at("0.25", {"ms_ssim": 0.92}),
        "hevc-raw": _at("0.25", {"ms_ssim": 0.944}), "webp": _at("0.5", {"ms_ssim": 0.95})}}})
    imagenet = _summary_folder(tmp_path, "imagenet", {"imagenet": {
        "crops": {"efficientnet_lite0": 256}, "reference": {"efficientnet_lite0": {"top1": 0.84}},
        "codecs": {"odic:alpha=0": _at("0.25", {"top1/efficientnet_lite0": 0.58}),
                   "odic:alpha=1": _at("0.25", {"top1/efficientnet_lite0": 0.66}),
                   "hevc-raw": _at("0.25", {"top1/efficientnet_lite0": 0.595, "ms_ssim": 0.5})}}})
    stem = tmp_path / "plots" / "frontier"
    stem.parent.mkdir()
    assert main(["report", str(kodak), str(imagenet), "--frontier", "-o", str(stem)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["classifier"] == "efficientnet_lite0" and printed["uncompressed_top1"] == 0.84
    assert printed["points"] == {"odic:alpha=0": [0.94, 0.58], "odic:alpha=1": [0.92, 0.66],
                                 "hevc-raw": [0.944, 0.595], "webp": [None, None]}  # webp: not at 0.25 bpp
    assert Image.open(stem.with_suffix(".png")).format == "PNG"
    svg = stem.with_suffix(".svg").read_text()
    for text in ("odic (one model)", "α=1", "hevc-raw", "uncompressed top-1", "MS-SSIM on kodak at 0.25 bpp",
                 "top-1 (efficientnet_lite0) on imagenet at 0.25 bpp"):
        assert f"<!-- {text} -->" in svg, text
    assert "webp" not in svg
    assert main(["report", str(kodak), str(imagenet), "--frontier", "-o", str(stem), "-q"]) != 0  # exists
    assert main(["report", str(kodak), "--frontier", "-o", str(tmp_path / "f2"), "-q"]) != 0  # no top-1 axis
    assert "no run classified a dataset called 'imagenet'" in capsys.readouterr().err


def test_tables_print_each_runs_at_bpp_and_bd_rate_markdown(tmp_path, capsys) -> None:
    from odic.cli import main

    folder = _summary_folder(tmp_path, "run", {"kodak": {
        "labelled": False, "n_images": 24, "primary_crop": None, "crops": {}, "reference": {},
        "codecs": {"jpeg": {"at_bpp": {"0.25": {"ms_ssim": 0.91234, "psnr": 27.456}, "0.5": {}},
                            "bd_rate": {"ms_ssim": 12.34, "psnr": None}}}}})
    assert main(["report", str(folder), str(folder), "--tables"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"<!-- {folder / 'summary.json'} -->") == 2
    for line in ("**kodak** (24 images; human metrics on whole images)", "| codec | metric | 0.25 bpp | 0.5 bpp |",
                 "| jpeg | ms_ssim | 0.9123 | - |", "| jpeg | psnr | 27.46 | - |", "| jpeg | +12.3% | - |",
                 "BD-rate against hevc-raw (negative = fewer bits):"):
        assert line in out.splitlines(), line
    assert main(["report", str(tmp_path / "missing"), "--tables"]) != 0


def test_tradeoff_plot_draws_one_line_per_encoder(monkeypatch) -> None:
    """Fast and refined settings benched together: each is its own line in order of alpha, never one zig-zag."""
    from odic import report

    def at(h: float, m: float) -> dict:
        return {"at_bpp": {"0.25": {"ms_ssim": h, "top1/efficientnet_lite0": m}}}

    ds = {"labelled": True, "crops": {"efficientnet_lite0": 256}, "codecs": {
        "odic:alpha=1": at(0.92, 0.66), "odic:alpha=0": at(0.94, 0.58),
        "odic:alpha=0:refine=20": at(0.941, 0.59), "odic:alpha=1:refine=50": at(0.913, 0.83),
        "hevc-raw": at(0.933, 0.595)}}
    drawn = {}

    def capture(fig) -> str:
        for line in fig.axes[0].lines:
            drawn[line.get_label()] = list(zip(line.get_xdata(), line.get_ydata(), strict=True))
        return "data:"

    monkeypatch.setattr(report, "_figure_uri", capture)
    assert report.tradeoff_plot("imagenet", ds, {"at_bpp_targets": [0.25]}) == "data:"
    assert drawn["odic, by observer α"] == [(0.94, 0.58), (0.92, 0.66)]
    assert drawn["odic, refine=20, by observer α"] == [(0.941, 0.59)]
    assert drawn["odic, refine=50, by observer α"] == [(0.913, 0.83)]
    assert drawn["hevc-raw"] == [(0.933, 0.595)]
    assert report.observer_series("odic:alpha=0.5:model=a.pt:refine=20") == "odic:model=a.pt:refine=20"
