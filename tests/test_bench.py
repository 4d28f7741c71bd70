"""The benchmark: worked examples for interpolation and BD-rate, the protocol, a tiny end-to-end run."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from odic.bench import BenchConfig, DatasetError, bd_rate, interp_at_bpp, load_dataset, run_bench
from odic.bench.metrics import msssim, psnr
from odic.bench.protocol import centre_crop, reference_crop
from odic.bench.summary import BASE_COLUMNS

# ----------------------------------------------------------------------------- worked examples


def test_interp_on_log_bpp_worked_example() -> None:
    # Value = log2(bpp / 0.05): exactly linear in log(bpp), so interpolation is exact.
    bpp = [0.1, 0.2, 0.4, 0.8]
    vals = [1.0, 2.0, 3.0, 4.0]
    got = interp_at_bpp(bpp, vals, [0.1, 0.125, 0.25, 0.5, 1.0, 0.05])
    assert got[0] == pytest.approx(1.0)
    assert got[1] == pytest.approx(1 + math.log2(1.25))  # 1.3219
    assert got[2] == pytest.approx(2 + math.log2(1.25))
    assert got[3] == pytest.approx(3 + math.log2(1.25))
    assert got[4] is None and got[5] is None  # outside the measured range: null, not extrapolated
    assert interp_at_bpp([0.3, 0.1], [2.0, None], [0.2]) == [None]  # one usable point only
    assert interp_at_bpp([0.4, 0.1], [2.0, 1.0], [0.2]) == [pytest.approx(1.5)]  # unsorted input


def test_bd_rate_worked_examples() -> None:
    rates = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
    q = 30 + 5 * np.log(rates)  # quality linear in log-rate: the cubic fit is exact
    # The same quality with 20% fewer bits everywhere: BD-rate is exactly -20%.
    assert bd_rate(rates, q, rates * 0.8, q) == pytest.approx(-20.0, abs=1e-6)
    # Identical curves: 0.
    assert bd_rate(rates, q, rates, q) == pytest.approx(0.0, abs=1e-9)
    # +1 dB at every rate with slope 5 dB per e-fold: exp(-1/5) - 1 = -18.127%.
    assert bd_rate(rates, q, rates, q + 1) == pytest.approx((math.exp(-0.2) - 1) * 100, abs=1e-6)
    # Twice the bits: +100%.
    assert bd_rate(rates, q, rates * 2, q) == pytest.approx(100.0, abs=1e-6)
    # No overlap in quality: undefined.
    assert bd_rate(rates, q, rates, q + 100) is None
    assert bd_rate([0.1], [30.0], rates, q) is None
    # Overlap of a sliver of the reference's span: refused rather than extrapolated.
    assert bd_rate(rates, q, rates, q + 0.95 * (q.max() - q.min())) is None
    # Non-linear but monotone curves: PCHIP stays between the points (a cubic fit would overshoot).
    bumpy_q = np.array([30.0, 30.5, 36.0, 36.2, 40.0])
    got = bd_rate(rates, bumpy_q, rates * 1.1, bumpy_q)
    assert got == pytest.approx(10.0, abs=1e-6)


def test_metrics_known_values() -> None:
    a = Image.new("RGB", (64, 64), (100, 100, 100))
    b = Image.new("RGB", (64, 64), (110, 100, 100))  # MSE = 100 / 3
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / (100 / 3)))
    assert psnr(a, a) == math.inf
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
    assert msssim(noise, noise) == pytest.approx(1.0, abs=1e-5)  # small image: window shrinks


def test_protocol_crops_follow_the_classifier_input() -> None:
    from odic.observers import get_spec

    sizes = {n: get_spec(n).crop_size for n in ("efficientnet_lite0", "efficientnet_lite1",
                                                "efficientnet_lite2", "inception_v3")}
    assert sizes == {"efficientnet_lite0": 256, "efficientnet_lite1": 272, "efficientnet_lite2": 304,
                     "inception_v3": 336}
    im = Image.new("RGB", (500, 333))
    crop = reference_crop(im, 256)
    assert crop.size == (256, 256)
    assert centre_crop(crop, 224).size == (224, 224)
    assert reference_crop(Image.new("RGB", (336, 336)), 336).size == (336, 336)


# ----------------------------------------------------------------------------- datasets


def _photos(n: int = 2, size: tuple[int, int] = (96, 80)) -> list[Image.Image]:
    data = pytest.importorskip("skimage.data")
    arrays = [data.astronaut(), data.coffee(), data.chelsea()][:n]
    return [Image.fromarray(a).resize(size, Image.BILINEAR) for a in arrays]


def test_dataset_layouts(tmp_path: Path) -> None:
    ims = _photos(2)
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, im in enumerate(ims):
        im.save(flat / f"img{i}.png")
    ds = load_dataset("flat", str(flat))
    assert (ds.layout, ds.labelled, ds.classify, len(ds)) == ("folder", False, False, 2)

    (flat / "labels.csv").write_text("file,label\nimg0.png,3\nimg1.png,7\n")
    ds = load_dataset("lab", str(flat))
    assert ds.layout == "labels.csv" and [it.label for it in ds.items] == [3, 7]

    tree = tmp_path / "tree"
    for cls, im in zip(("n02", "n01"), ims, strict=True):
        (tree / cls).mkdir(parents=True)
        im.save(tree / cls / "a.jpg")
    ds = load_dataset("tree", str(tree))
    assert ds.layout == "imagefolder"
    assert {it.key: it.label for it in ds.items} == {"n01/a.jpg": 0, "n02/a.jpg": 1}

    val = tmp_path / "val"
    val.mkdir()
    for i, im in enumerate(ims):
        im.save(val / f"ILSVRC2012_val_0000000{i + 1}.JPEG")
    (tmp_path / "val.txt").write_text("ILSVRC2012_val_00000001.JPEG 65\nILSVRC2012_val_00000002.JPEG 970\n")
    ds = load_dataset("val", f"{val}:{tmp_path / 'val.txt'}")
    assert ds.layout == "ilsvrc2012-val" and [it.label for it in ds.items] == [65, 970]

    with pytest.raises(DatasetError):
        load_dataset("missing", str(tmp_path / "nope"))
    with pytest.raises(DatasetError):
        load_dataset("badlabels", f"{flat}:{tmp_path / 'none.csv'}")


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("bench")
    ims = _photos(2)
    human = root / "human"
    human.mkdir()
    for i, im in enumerate(ims):
        im.save(human / f"p{i}.png")
    labelled = root / "labelled"
    labelled.mkdir()
    for i, im in enumerate(_photos(2, (300, 280))):
        im.save(labelled / f"q{i}.png")
    (labelled / "labels.csv").write_text("file,label\nq0.png,1\nq1.png,967\n")
    cfg = BenchConfig(
        datasets=[load_dataset("human", str(human)), load_dataset("labelled", str(labelled))],
        codecs=["jpeg:q=5/30/80", "webp:q=5/50/90", "bpg"], classifiers=["efficientnet_lite0"],
        out=root / "out", progress=False,
    )
    summary = run_bench(cfg)
    return root / "out", summary


def test_tiny_bench_writes_documented_files(tiny_bench) -> None:
    out, summary = tiny_bench
    for name in ("results.csv", "summary.json", "plots/rd-human.png", "plots/rd-human.svg",
                 "plots/rd-labelled.png", "plots/accuracy-labelled.svg"):
        assert (out / name).exists(), name
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert set(BASE_COLUMNS) <= set(rows[0])
    for col in ("top1/efficientnet_lite0", "top5/efficientnet_lite0", "agree/efficientnet_lite0"):
        assert col in rows[0]
    # jpeg + webp + the automatically added hevc-raw reference: 3 settings + 3 + 6, on 2 + 2 images.
    assert len(rows) == (3 + 3 + 6) * 4
    for r in rows:
        assert float(r["bpp"]) == pytest.approx(int(r["bytes"]) * 8 / (int(r["width"]) * int(r["height"])))
        assert 0 < float(r["encode_s"]) < 60 and 0 < float(r["decode_s"]) < 60  # measured, not a placeholder
    assert {r["crop"] for r in rows if r["dataset"] == "labelled"} == {"256"}

    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["schema"] == "odic-bench/1"
    for key in ("created", "command", "odic_version", "seed", "threads", "world_size", "at_bpp_targets",
                "reference_codec", "protocol", "codecs", "odic_model_ids", "skipped_codecs", "classifiers",
                "notes", "datasets", "plots"):
        assert key in on_disk, key
    bpg_installed = bool(shutil.which("bpgenc") and shutil.which("bpgdec"))
    assert ("bpg" in on_disk["codecs"]) == bpg_installed and ("bpg" in on_disk["skipped_codecs"]) != bpg_installed
    assert on_disk["codecs"]["jpeg"]["version"].startswith("libjpeg-turbo")
    ds = on_disk["datasets"]["labelled"]
    assert ds["crops"] == {"efficientnet_lite0": 256} and ds["primary_crop"] == 256
    ref = ds["reference"]["efficientnet_lite0"]
    assert set(ref) >= {"top1", "top5", "agree", "n_images", "crop_size", "input_size"}
    entry = ds["codecs"]["jpeg"]
    assert [e["setting"] for e in entry["curve"]] == [5.0, 30.0, 80.0]
    for e in entry["curve"]:
        for k in ("bpp", "psnr", "ms_ssim", "encode_s", "decode_s", "peak_mem_mb", "n_images",
                  "top1/efficientnet_lite0", "top5/efficientnet_lite0", "agree/efficientnet_lite0",
                  "bpp/efficientnet_lite0"):
            assert k in e, k
    assert set(entry["at_bpp"]) == {"0.125", "0.25", "0.5", "1"}
    assert set(entry["at_bpp"]["0.5"]) >= {"psnr", "ms_ssim", "top1/efficientnet_lite0"}
    assert set(entry["bd_rate"]) == {"reference", "ms_ssim", "psnr"}
    assert ds["codecs"]["hevc-raw"]["bd_rate"]["psnr"] == pytest.approx(0.0, abs=1e-9)
    human = on_disk["datasets"]["human"]
    assert human["crops"] == {} and human["primary_crop"] is None
    assert "top1/efficientnet_lite0" not in human["codecs"]["jpeg"]["curve"][0]


def test_tiny_bench_resumes_without_recomputing(tiny_bench) -> None:
    out, _ = tiny_bench
    before = {p.name: p.stat().st_size for p in (out / "cache").glob("*.jsonl")}
    cfg = BenchConfig(
        datasets=[load_dataset("human", str(out.parent / "human")),
                  load_dataset("labelled", str(out.parent / "labelled"))],
        codecs=["jpeg:q=5/30/80", "webp:q=5/50/90"], classifiers=["efficientnet_lite0"],
        out=out, progress=False, plots=False,
    )
    summary = run_bench(cfg)
    after = {p.name: p.stat().st_size for p in (out / "cache").glob("*.jsonl")}
    assert after == before
    assert summary["datasets"]["labelled"]["codecs"]["webp"]["curve"][0]["n_images"] == 2


def test_cli_bad_input_is_one_line_error(tmp_path: Path, capsys) -> None:
    from odic.cli import main

    rc = main(["bench", "--data", f"x={tmp_path / 'missing'}", "--out", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "imgs" / "a.png")
    for extra in (["--codecs", "nosuchcodec"], ["--codecs", "jpeg:chroma=411"],
                  ["--classifiers", "nosuchnet"], ["--at-bpp", "-1"]):
        rc = main(["bench", "--data", f"x={tmp_path / 'imgs'}", "--out", str(tmp_path / "o"), "-q", *extra])
        err = capsys.readouterr().err
        lines = [ln for ln in err.strip().splitlines() if not ln.startswith("odic bench: skipping")]
        assert rc != 0 and "Traceback" not in err and len(lines) == 1, (extra, err)
        assert lines[0].startswith("odic: error:")


def test_demo_runs_on_scikit_image_photos(tmp_path: Path, capsys) -> None:
    pytest.importorskip("skimage")
    from odic.cli import main

    rc = main(["demo", "--codecs", "jpeg:q=10/50", "--out", str(tmp_path / "demo"), "-q"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "skimage-photos" in printed and "agree" in printed
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    ds = summary["datasets"]["skimage-photos"]
    assert ds["n_images"] == 5 and ds["crops"] == {"efficientnet_lite0": 256}
    assert (tmp_path / "demo" / "plots" / "accuracy-skimage-photos.png").exists()


def test_ilsvrc_devkit_ground_truth_maps_to_sorted_wnid_index(tmp_path: Path) -> None:
    sio = pytest.importorskip("scipy.io")
    # Devkit ids follow ILSVRC's own order; the standard index is the position among sorted wnids.
    synsets = np.array(
        [(1, "n03000000", 0), (2, "n01000000", 0), (3, "n02000000", 0), (1001, "n00001740", 3)],
        dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")],
    )
    sio.savemat(tmp_path / "meta.mat", {"synsets": synsets})
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n2\n3\n")
    val = tmp_path / "val"
    val.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8)).save(val / f"ILSVRC2012_val_0000000{i + 1}.JPEG")
    ds = load_dataset("val", f"{val}:{tmp_path / 'ILSVRC2012_validation_ground_truth.txt'}")
    assert [it.label for it in ds.items] == [2, 0, 1]


def test_stale_rows_from_another_encoder_are_measured_again(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    _photos(1)[0].save(folder / "a.png")

    def run() -> dict:
        return run_bench(BenchConfig([load_dataset("d", str(folder))], ["jpeg:q=50"], tmp_path / "out",
                                     add_reference=False, progress=False, plots=False))

    first = run()
    cache_file = tmp_path / "out" / "cache" / "rows-r0.jsonl"
    row = json.loads(cache_file.read_text())
    assert row["codec_id"]
    row["codec_id"], row["bytes"] = "another-encoder", 1  # as if written by a different version
    cache_file.write_text(json.dumps(row) + "\n")
    second = run()
    assert len(cache_file.read_text().splitlines()) == 2  # measured again, not reused
    assert second["datasets"]["d"]["codecs"]["jpeg"]["curve"][0]["bytes"] == \
        first["datasets"]["d"]["codecs"]["jpeg"]["curve"][0]["bytes"]


# ----------------------------------------------------------------------------- protocol presets


def test_presets_keep_the_protocol_grids() -> None:
    """The grids scripts/gate.sh and scripts/full_protocol.sh benched before they moved into presets.py."""
    from odic.bench import BenchError
    from odic.bench.presets import preset_codecs

    fast = "odic:alpha=0:q=2/8/14/20/25/32/40/48/55/65/90"
    hevc_dense = "hevc-raw:q=3/8/11/14/17/20/23/26/30/34/38/48/58"
    assert preset_codecs("gate-kodak", ["g/new.pt", "odic-base"]) == [
        f"{fast}:model=g/new.pt", f"{fast}:model=odic-base", hevc_dense]
    assert preset_codecs("gate-refine", ["g/new.pt"]) == [
        "odic:alpha=1:q=2/25/55:refine=50:refine_shift=8:model=g/new.pt", "hevc-raw"]
    assert preset_codecs("full-kodak-dense", ["m.pt"]) == [
        "odic:alpha=0:q=2/14/25/32/55/65/90:refine=20:model=m.pt", f"{fast}:model=m.pt", hevc_dense]
    assert preset_codecs("full-lite0", ["m.pt"]) == [
        "odic:alpha=1:q=2/25/55:refine=50:refine_shift=8:model=m.pt", "odic:alpha=1:q=2/25/55:model=m.pt",
        "hevc-raw"]
    assert preset_codecs("refine-kodak", refine=5) == [  # no --model: the installed default model
        "odic:alpha=0:q=2/25/55/90:refine=5", "odic:alpha=0:q=2/25/55/90", "hevc-raw", "webp"]
    assert preset_codecs("release-kodak")[:2] == ["odic:alpha=0:q=2/25/55/90", "odic:alpha=0.25:q=2/25/55/90"]
    with pytest.raises(BenchError, match="known: gate-kodak"):
        preset_codecs("gate")
    with pytest.raises(BenchError, match="no refined encoder"):
        preset_codecs("gate-kodak", refine=10)


def test_cli_preset_sets_dataset_codecs_classifiers_and_limit(tmp_path: Path, monkeypatch, capsys) -> None:
    import odic.bench
    from odic.cli import main

    folder = tmp_path / "data" / "imagenet-sample"
    folder.mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(folder / "a.png")
    (folder / "labels.csv").write_text("file,label\na.png,3\n")
    configs = []
    monkeypatch.setattr(odic.bench, "run_bench", lambda cfg: configs.append(cfg))
    common = ["bench", "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "o"), "-q"]
    assert main([*common, "--preset", "full-unseen", "--model", "m.pt"]) == 0
    assert main([*common, "--preset", "full-unseen", "--limit", "7", "--refine", "0"]) == 0
    first, second = configs
    assert [ds.name for ds in first.datasets] == ["imagenet"] and first.datasets[0].items[0].label == 3
    assert first.codecs == ["odic:alpha=1:q=25/40/55:refine=50:refine_shift=8:model=m.pt", "hevc-raw"]
    assert first.classifiers == ["efficientnet_lite1", "efficientnet_lite2"] and first.limit == 100
    assert second.codecs[0] == "odic:alpha=1:q=25/40/55:refine=0:refine_shift=8" and second.limit == 7
    for extra, why in ((["--preset", "gate-kodak", "--codecs", "jpeg"], "gate-kodak sets --codecs"),
                       (["--preset", "gate-kodak"], "kodak is not a folder"),
                       (["--model", "m.pt", "--data", f"x={folder}"], "--model needs --preset")):
        assert main([*common, *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("odic: error:") and why in err, err
    assert len(configs) == 2
