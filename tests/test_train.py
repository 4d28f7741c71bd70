"""Training: a tiny model learns, --resume continues bit for bit, torchrun with 2 processes runs."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from odic.train import TrainConfig, train

from .conftest import smooth_image


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for i in range(10):
        Image.fromarray(smooth_image(72, 80, seed=i)).save(root / f"img{i}.png")
    Image.fromarray(smooth_image(40, 50, seed=99)).save(root / "small.png")  # smaller than the crop
    return root


def _cfg(data: Path, out: Path, steps: int, **kw) -> TrainConfig:
    base = dict(data=[str(data)], val_count=2, out=str(out), steps=steps, crop=64, batch=4, N=16, M=24,
                lr=1e-3, alpha=0.0, val_every=0, log_every=5, threads=1, progress=False, ckpt_minutes=60,
                precision="fp32")  # "auto" times both on this machine: a test must not depend on the timing
    base.update(kw)
    return TrainConfig(**base)


def _losses(run: Path) -> list[float]:
    with open(run / "log.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_tiny_model_learns(tiny_data, tmp_path):
    run = train(_cfg(tiny_data, tmp_path / "run", 40))
    losses = _losses(run)
    assert len(losses) == 8
    assert sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2, losses


def test_resume_is_bit_exact(tiny_data, tmp_path):
    straight = train(_cfg(tiny_data, tmp_path / "a", 20))
    train(_cfg(tiny_data, tmp_path / "b", 10))
    resumed = train(_cfg(tiny_data, tmp_path / "b", 20, resume=True))
    sa = torch.load(straight / "last.pt", weights_only=False)
    sb = torch.load(resumed / "last.pt", weights_only=False)
    assert sa["step"] == sb["step"] == 20
    for k, v in sa["model"].items():
        assert torch.equal(v, sb["model"][k]), k
    assert _losses(straight) == _losses(resumed)


def test_machine_observer_path_runs(tiny_data, tmp_path):
    run = train(_cfg(tiny_data, tmp_path / "m", 2, alpha=None, batch=2, log_every=1, val_every=2, val_count=2))
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert len(rows) == 2 and all(float(r["d_machine"]) >= 0 for r in rows)
    val = list(csv.DictReader(open(run / "val.csv")))
    assert {"bpp", "msssim", "top1_agree"} <= set(val[0])


def test_export_and_load(tiny_data, tmp_path):
    import odic
    from odic.cli import main

    run = train(_cfg(tiny_data, tmp_path / "e", 2))
    out = tmp_path / "tiny.pt"
    assert main(["export", str(run / "last.pt"), "-o", str(out), "--model-id", "tiny-test"]) == 0
    codec = odic.load(out)
    data = codec.compress(smooth_image(30, 30), quality=50)
    assert codec.info(data)["model_id"] == "tiny-test"
    assert codec.decompress(data).size == (30, 30)
    # parameters are fp16; constant buffers keep values fp16 would round to 0
    state = torch.load(out, weights_only=False)["state_dict"]
    bound = state["gaussian_conditional.likelihood_lower_bound.bound"]
    assert bound.dtype == torch.float32 and bound.item() == pytest.approx(1e-9)
    assert all(v.item() > 0 for k, v in state.items() if k.endswith("pedestal"))
    assert state["g_a.layers.0.weight"].dtype == torch.float16


def test_export_refuses_id_whose_step_count_disagrees_with_meta(tiny_data, tmp_path, capsys):
    from odic.cli import main

    run = train(_cfg(tiny_data, tmp_path / "s", 1))
    out = tmp_path / "tiny.pt"
    args = ["export", str(run / "last.pt"), "-o", str(out), "--model-id"]
    assert main([*args, "tiny-s29033", "--meta", '{"steps": 30033}']) != 0
    assert not out.exists()  # refused before anything is written
    assert main([*args, "tiny-s30033", "--meta", '{"steps": 30033}']) == 0
    # A missing output folder is named in one line (not a temporary file's name), nothing written.
    capsys.readouterr()
    missing = tmp_path / "no-such-folder" / "tiny.pt"
    assert main(["export", str(run / "last.pt"), "-o", str(missing), "--model-id", "tiny"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no-such-folder" in err and "does not exist" in err and ".tmp" not in err
    assert not missing.parent.exists()


def test_export_relabels_a_weights_file_bit_identically(tiny_data, tmp_path):
    """A measured candidate becomes a release under a new id: same weights, its own streams still decode."""
    import odic
    from odic.cli import main
    from odic.weights import state_dict_hash

    candidate, release = tmp_path / "candidate.pt", tmp_path / "release.pt"
    assert main(["export", str(train(_cfg(tiny_data, tmp_path / "r", 2)) / "last.pt"), "-o", str(candidate),
                 "--model-id", "tiny-candidate"]) == 0
    image = smooth_image(40, 48, seed=5)
    stream = odic.load(candidate).compress(image, quality=40)
    assert main(["export", str(candidate), "-o", str(release), "--model-id", "tiny-s12",
                 "--meta", '{"steps": 12, "command": "relabel"}']) == 0
    before, after = (torch.load(p, weights_only=False) for p in (candidate, release))
    assert state_dict_hash(after["state_dict"]) == state_dict_hash(before["state_dict"])
    assert after["model_id"] == "tiny-s12" and after["meta"]["command"] == "relabel"
    assert after["meta"]["step"] == before["meta"]["step"]  # the source's meta is kept, then extended
    assert [d["model_id"] for d in after["decodes"]] == ["tiny-candidate"]
    codec = odic.load(release)
    assert np.array_equal(np.asarray(codec.decompress(stream)), np.asarray(odic.load(candidate).decompress(stream)))
    again = codec.compress(image, quality=40)  # the same payload, only the header's id differs
    assert len(again) == len(stream) + len("tiny-s12") - len("tiny-candidate")
    assert np.array_equal(np.asarray(codec.decompress(again)), np.asarray(codec.decompress(stream)))
    # The step count in the id is still checked against the meta, and junk is a one-line error.
    assert main(["export", str(candidate), "-o", str(tmp_path / "x.pt"), "--model-id", "tiny-s13",
                 "--meta", '{"steps": 12}']) != 0
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["export", str(tmp_path / "junk.pt"), "-o", str(tmp_path / "y.pt"), "--model-id", "t"]) != 0
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()


@pytest.mark.skipif(not shutil.which("torchrun", path=os.path.dirname(sys.executable)), reason="torchrun missing")
def test_torchrun_two_processes(tiny_data, tmp_path):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    out = tmp_path / "ddp"
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "odic", "train", "--data", str(tiny_data),
           "--val-count", "2", "--out", str(out), "--steps", "4", "--crop", "64", "--batch", "2", "--N", "16",
           "--M", "24", "--alpha", "0", "--threads", "1", "--val-every", "0", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["step"] == 4 and state["world"] == 2
    assert (out / "last.pt.rank1").exists()


def test_human_warm_up_and_lr_drop(tiny_data, tmp_path):
    from odic.train.loop import sample_conditions

    cfg = _cfg(tiny_data, tmp_path / "w", 12, alpha=None, human_steps=6, lr_drop_step=8, log_every=1)
    g = torch.Generator().manual_seed(0)
    assert torch.count_nonzero(sample_conditions(cfg, 64, g, step=5)[1]) == 0
    assert torch.count_nonzero(sample_conditions(cfg, 64, g, step=6)[1]) > 0
    assert [cfg.lr_at(s) for s in (0, 7, 8, 11)] == [1e-3, 1e-3, pytest.approx(1e-4), pytest.approx(1e-4)]
    rows = list(csv.DictReader(open(train(cfg) / "log.csv")))
    assert all(float(r["d_machine"]) == 0 for r in rows[:6])  # warm-up: classifier never charged
    assert any(float(r["d_machine"]) > 0 for r in rows[6:])
    assert [float(r["lr"]) for r in rows] == [1e-3] * 8 + [pytest.approx(1e-4)] * 4


def test_sigterm_checkpoints_and_resume_continues(tiny_data, tmp_path):
    """Stopping a run (SIGTERM) writes a checkpoint at the step reached; --resume goes on from it."""
    import signal
    import threading
    import time

    out = tmp_path / "stop"
    log = out / "log.csv"

    def kill_when_logging() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            if log.exists() and len(log.read_text().splitlines()) >= 4:  # header + 3 steps
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    threading.Thread(target=kill_when_logging, daemon=True).start()
    train(_cfg(tiny_data, out, 100000, log_every=1))  # returns instead of dying
    state = torch.load(out / "last.pt", weights_only=False)
    logged = [int(r["step"]) for r in csv.DictReader(open(log))]
    assert 3 <= state["step"] < 100000
    assert state["step"] == logged[-1]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone after the run
    train(_cfg(tiny_data, out, state["step"] + 2, log_every=1, resume=True))
    assert torch.load(out / "last.pt", weights_only=False)["step"] == state["step"] + 2


def test_non_finite_step_is_skipped(tiny_data, tmp_path, monkeypatch):
    """A batch whose loss is NaN (e.g. MS-SSIM of a degenerate crop) skips its update, not the run."""
    import odic.train.loop as loop

    real, calls = loop.observer_distortion, []

    def nan_on_third_call(*args, **kw):
        d = real(*args, **kw)
        calls.append(1)
        if len(calls) == 3:
            d["d_alpha"] = d["d_alpha"] * float("nan")
        return d

    monkeypatch.setattr(loop, "observer_distortion", nan_on_third_call)
    run = train(_cfg(tiny_data, tmp_path / "nan", 10, log_every=1))
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["step"] == 10 and len(calls) == 10
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    steps = [int(r["step"]) for r in csv.DictReader(open(run / "log.csv"))]
    assert steps == [1, 2, 4, 5, 6, 7, 8, 9, 10]  # the skipped step is not averaged into the log


def test_init_restores_constant_buffers(tiny_data, tmp_path):
    """Weights whose fixed bounds were rounded to 0 (old fp16 exports) do not train without a likelihood floor."""
    run = train(_cfg(tiny_data, tmp_path / "c0", 2))
    state = torch.load(run / "last.pt", weights_only=False)
    key = "gaussian_conditional.likelihood_lower_bound.bound"
    state["model"][key] = torch.zeros_like(state["model"][key])
    torch.save(state, tmp_path / "rounded.pt")
    again = train(_cfg(tiny_data, tmp_path / "c1", 2, init=str(tmp_path / "rounded.pt")))
    assert torch.load(again / "last.pt", weights_only=False)["model"][key].item() == pytest.approx(1e-9)


def test_encoder_only_training_keeps_the_decoder_and_old_streams(tiny_data, tmp_path):
    """--encoder-only changes only g_a/h_a/gains; the export proves it and old streams still decode."""
    import odic
    from odic.cli import main
    from odic.weights import decoder_state

    old = tmp_path / "old.pt"
    assert main(["export", str(train(_cfg(tiny_data, tmp_path / "a", 4)) / "last.pt"), "-o", str(old),
                 "--model-id", "tiny-old"]) == 0
    image = smooth_image(40, 48, seed=3)
    old_stream = odic.load(old).compress(image, quality=60)
    old_pixels = np.asarray(odic.load(old).decompress(old_stream))

    run = train(_cfg(tiny_data, tmp_path / "enc", 4, init=str(old), encoder_only=True, lr=1e-2))
    new = tmp_path / "new.pt"
    assert main(["export", str(run / "last.pt"), "-o", str(new), "--model-id", "tiny-new",
                 "--same-decoder-as", str(old)]) == 0
    before, after = (torch.load(p, weights_only=False)["state_dict"] for p in (old, new))
    assert decoder_state(before).keys() == decoder_state(after).keys()
    assert all(torch.equal(v, after[k]) for k, v in decoder_state(before).items())
    encoder_keys = [k for k in before if k not in decoder_state(before)]
    assert any(not torch.equal(before[k], after[k]) for k in encoder_keys)  # the encoder did learn

    codec = odic.load(new)
    assert codec.model_id == "tiny-new" and odic.Codec.info(old_stream)["model_id"] == "tiny-old"
    assert np.array_equal(np.asarray(codec.decompress(old_stream)), old_pixels)

    # A file whose list is malformed is refused with a one-line reason, not a traceback.
    payload = torch.load(new, weights_only=False)
    payload["decodes"] = [{"model_id": "tiny-old", "weights_hash": "not hex"}]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="malformed 'decodes'"):
        odic.load(tmp_path / "bad.pt")

    # A run that trained the decoder too must not claim the old streams; nothing is written.
    full = train(_cfg(tiny_data, tmp_path / "full", 2, init=str(old), lr=1e-2))
    refused = tmp_path / "refused.pt"
    assert main(["export", str(full / "last.pt"), "-o", str(refused), "--model-id", "tiny-full",
                 "--same-decoder-as", str(old)]) != 0
    assert not refused.exists()


def test_encoder_blocks_start_as_the_identity_and_train_under_the_same_decoder(tiny_data, tmp_path):
    """--encoder-blocks adds LatentBlocks that leave --init's latents as they were, learn under
    --encoder-only, and export as a file that still decodes the old model's streams."""
    from dataclasses import replace

    import odic
    from odic.cli import main
    from odic.model import OdicModel
    from odic.train.loop import init_model_weights
    from odic.weights import read_weights_file

    old = tmp_path / "old.pt"
    assert main(["export", str(train(_cfg(tiny_data, tmp_path / "a", 4)) / "last.pt"), "-o", str(old),
                 "--model-id", "tiny-old"]) == 0
    old_codec = odic.load(old)
    grown = OdicModel(replace(old_codec.model.config, encoder_blocks=2)).eval()
    init_model_weights(grown, read_weights_file(old), str(old))
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(grown.analyse(x, 700, 300)[0], old_codec.model.analyse(x, 700, 300)[0])

    run = train(_cfg(tiny_data, tmp_path / "enc", 4, init=str(old), encoder_only=True, encoder_blocks=2, lr=1e-2))
    new = tmp_path / "new.pt"
    assert main(["export", str(run / "last.pt"), "-o", str(new), "--model-id", "tiny-blocks",
                 "--same-decoder-as", str(old)]) == 0
    codec = odic.load(new)
    assert codec.model.config.encoder_blocks == 2
    assert any(torch.count_nonzero(layer.conv2.weight) for layer in codec.model.g_a.layers[-2:])  # they learned
    image = smooth_image(40, 48, seed=3)
    old_stream = old_codec.compress(image, quality=60)
    assert np.array_equal(np.asarray(codec.decompress(old_stream)), np.asarray(old_codec.decompress(old_stream)))
    assert codec.decompress(codec.compress(image, quality=60)).size == (48, 40)

    # Training on from it keeps its blocks; asking for fewer than it has is refused before any step.
    with pytest.raises(ValueError, match="2 encoder blocks"):
        train(_cfg(tiny_data, tmp_path / "fewer", 2, init=str(new), encoder_blocks=1))
    assert main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "neg"), "--init", str(new),
                 "--encoder-blocks", "-1"]) == 2


def test_encoder_only_needs_a_trained_model(tiny_data, tmp_path):
    from odic.cli import main

    with pytest.raises(ValueError, match="--init"):
        train(_cfg(tiny_data, tmp_path / "x", 2, encoder_only=True))
    assert main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "y"), "--encoder-only"]) == 2


def test_a_fresh_run_never_overwrites_a_run_folder(tiny_data, tmp_path):
    """Without --resume a folder holding last.pt is refused before anything is written; --resume goes on."""
    from odic.cli import main

    run = train(_cfg(tiny_data, tmp_path / "r", 2))
    before = (run / "last.pt").read_bytes()
    with pytest.raises(ValueError, match="--resume"):
        train(_cfg(tiny_data, run, 4))
    assert main(["train", "--data", str(tiny_data), "--out", str(run), "--steps", "4"]) == 1
    assert (run / "last.pt").read_bytes() == before
    resumed = train(_cfg(tiny_data, run, 3, resume=True))
    assert torch.load(resumed / "last.pt", weights_only=False)["step"] == 3


def _anchor_and_student(data: Path, tmp_path: Path, steps: int):
    """A tiny trained model exported as the anchor (frozen, eval) and a trainable copy of it."""
    from odic.cli import main
    from odic.train.loop import load_anchor
    from odic.weights import build_model, read_weights_file

    weights = tmp_path / "anchor.pt"
    assert main(["export", str(train(_cfg(data, tmp_path / "a", steps)) / "last.pt"), "-o", str(weights),
                 "--model-id", "tiny-anchor"]) == 0
    student, _ = build_model(read_weights_file(weights))
    return load_anchor(str(weights), torch.device("cpu"))[0], student, weights


def test_anchor_distortion_is_zero_for_the_anchor_itself_and_for_human_rows(tiny_data, tmp_path):
    from odic.train.loop import anchor_distortion

    anchor, student, _ = _anchor_and_student(tiny_data, tmp_path, 2)
    assert not any(p.requires_grad for p in anchor.parameters()) and not anchor.training
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    q, a = torch.full((3,), 0.5), torch.tensor([0.0, 0.5, 1.0])
    with torch.no_grad():
        same = anchor_distortion(anchor, x, student(x, q, a)["x_hat"].clamp(0, 1), q, a)
        for p in student.g_s.parameters():
            p.mul_(0.5)
        moved = anchor_distortion(anchor, x, student(x, q, a)["x_hat"].clamp(0, 1), q, a)
    assert same[0] == 0 and (same < 1e-12).all(), same  # equal up to the batch's rounding
    assert moved[0] == 0 and (moved[1:] > 1e-4).all(), moved


def test_anchor_draws_the_students_noise_in_training(tiny_data, tmp_path):
    """In a training forward z is noisy: the anchor must draw the same noise, else its own copy differs."""
    from odic.train.loop import anchor_distortion, rng_state

    anchor, student, _ = _anchor_and_student(tiny_data, tmp_path, 6)
    student.train()
    x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    q, a = torch.tensor([0.1, 0.3, 0.6, 0.9]), torch.tensor([0.0, 1.0, 1.0, 0.5])
    torch.manual_seed(7)
    state = rng_state(torch.device("cpu"))
    with torch.no_grad():
        noisy = student(x, q, a)["x_hat"].clamp(0, 1)
    after = torch.get_rng_state()
    matched = anchor_distortion(anchor, x, noisy, q, a, state)
    assert torch.equal(torch.get_rng_state(), after)  # the anchor leaves the training's generator alone
    rounded = anchor_distortion(anchor, x, noisy, q, a)
    assert not anchor.training and matched[0] == rounded[0] == 0
    assert (matched < 1e-12).all(), matched
    assert rounded[1:].sum() > 1e3 * matched[1:].sum(), (rounded, matched)


def test_decoder_anchor_sees_only_the_decoding_side(tiny_data, tmp_path):
    """--anchor-mode decoder: 0 for the anchor's copy and for a changed encoder; > 0 once g_s moves."""
    from odic.train.loop import decoder_anchor_distortion

    anchor, student, weights = _anchor_and_student(tiny_data, tmp_path, 4)
    student.train()
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    q, a = torch.full((3,), 0.5), torch.tensor([0.0, 0.5, 1.0])
    assert (decoder_anchor_distortion(student, anchor, x, q, a) < 1e-12).all()
    with torch.no_grad():
        for p in student.g_a.parameters():
            p.mul_(0.5)
    same = decoder_anchor_distortion(student, anchor, x, q, a)
    assert (same < 1e-12).all(), same  # the encoder is not held: refinement re-finds latents anyway
    with torch.no_grad():
        for p in student.g_s.parameters():
            p.mul_(0.9)
    moved = decoder_anchor_distortion(student, anchor, x, q, a)
    assert moved[0] == 0 and (moved[1:] > 1e-6).all(), moved
    moved.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.g_s.parameters())
    assert all(p.grad is None for p in student.g_a.parameters())
    # the option runs end to end
    run = train(_cfg(tiny_data, tmp_path / "d", 2, alpha=1.0, anchor=str(weights), anchor_mode="decoder",
                     init=str(weights)))
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 2


def test_resume_refuses_other_anchor_weights(tiny_data, tmp_path):
    """A release that puts new weights under the anchor's path must not silently change a resumed run's loss."""
    from odic.cli import main

    _anchor, _student, weights = _anchor_and_student(tiny_data, tmp_path, 2)
    run = train(_cfg(tiny_data, tmp_path / "r", 2, alpha=1.0, anchor=str(weights), anchor_mode="decoder"))
    saved = torch.load(run / "last.pt", weights_only=False)["config"]
    assert saved["anchor_weights_hash"] and saved["anchor"] == str(weights)
    before = (run / "last.pt").read_bytes()
    other = tmp_path / "other.pt"
    assert main(["export", str(run / "last.pt"), "-o", str(other), "--model-id", "tiny-other"]) == 0
    for anchor in (str(other), None):
        with pytest.raises(ValueError, match="anchor weights"):
            train(_cfg(tiny_data, run, 3, alpha=1.0, anchor=anchor, anchor_mode="decoder", resume=True))
    assert (run / "last.pt").read_bytes() == before
    resumed = train(_cfg(tiny_data, run, 3, alpha=1.0, anchor=str(weights), anchor_mode="decoder", resume=True))
    assert torch.load(resumed / "last.pt", weights_only=False)["step"] == 3
    plain = train(_cfg(tiny_data, tmp_path / "plain", 1, alpha=1.0))  # no anchor: none may appear on resume
    with pytest.raises(ValueError, match="no anchor weights"):
        train(_cfg(tiny_data, plain, 2, alpha=1.0, anchor=str(weights), anchor_mode="decoder", resume=True))


def test_anchor_keeps_machine_reconstructions_near_the_anchor(tiny_data, tmp_path):
    """Fine-tuning at alpha 1 with --anchor drifts less from the anchor's reconstructions than without."""
    from odic.cli import main
    from odic.train.loop import anchor_distortion, load_anchor
    from odic.weights import build_model, read_weights_file

    start = tmp_path / "start.pt"
    assert main(["export", str(train(_cfg(tiny_data, tmp_path / "a", 6)) / "last.pt"), "-o", str(start),
                 "--model-id", "tiny-start"]) == 0
    anchor, _ = load_anchor(str(start), torch.device("cpu"))
    x = torch.stack([torch.from_numpy(smooth_image(64, 64, seed=s)).permute(2, 0, 1) for s in (5, 6)]).float() / 255
    q, a = torch.full((2,), 0.5), torch.ones(2)

    drift = {}
    for weight in (0.0, 1e4):
        run = train(_cfg(tiny_data, tmp_path / f"w{weight:g}", 6, alpha=1.0, batch=2, lr=1e-3, init=str(start),
                         anchor=str(start), anchor_weight=weight))
        tuned, _ = build_model(read_weights_file(run / "last.pt"))
        with torch.no_grad():
            drift[weight] = anchor_distortion(anchor, x, tuned(x, q, a)["x_hat"].clamp(0, 1), q, a).mean().item()
    assert drift[1e4] < 0.5 * drift[0.0], drift

    assert main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "bad"), "--anchor-weight", "-1"]) == 2


def test_mse_weight_top_rises_geometrically_with_quality():
    q = torch.tensor([0.0, 0.5, 1.0])
    assert TrainConfig(mse_weight=2.0).mse_weight_at(q) == 2.0  # no top weight: one constant
    rising = TrainConfig(mse_weight=2.0, mse_weight_top=50.0).mse_weight_at(q)
    assert rising.tolist() == pytest.approx([2.0, 10.0, 50.0])


def test_mse_weight_top_lowers_the_top_quality_mse(tiny_data, tmp_path):
    """Trained at quality 1, a heavy top MSE weight ends with reconstructions nearer in MSE than MS-SSIM alone."""
    from odic.weights import build_model, read_weights_file

    x = torch.stack([torch.from_numpy(smooth_image(64, 64, seed=s)).permute(2, 0, 1) for s in (3, 4)]).float() / 255
    mse = {}
    for top in (None, 1e4):
        run = train(_cfg(tiny_data, tmp_path / f"top{top}", 40, quality=1.0, mse_weight=0.01, mse_weight_top=top))
        model, _ = build_model(read_weights_file(run / "last.pt"))
        with torch.no_grad():
            x_hat = model(x, torch.ones(2), torch.zeros(2))["x_hat"].clamp(0, 1)
        mse[top] = torch.mean((x_hat - x) ** 2).item()
    assert mse[1e4] < 0.8 * mse[None], mse


def test_mse_weight_top_needs_positive_weights(tiny_data, tmp_path):
    from odic.cli import main

    for flags in (["--mse-weight-top", "0"], ["--mse-weight", "0", "--mse-weight-top", "50"]):
        assert main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "m"), *flags]) == 2
    assert not (tmp_path / "m").exists()


def test_bf16_training_learns_and_keeps_fp32_weights(tiny_data, tmp_path):
    run = train(_cfg(tiny_data, tmp_path / "bf16", 40, precision="bf16"))
    losses = _losses(run)
    assert sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2, losses
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["config"]["precision_used"] == "bf16"
    assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())


def test_bf16_autocast_leaves_the_entropy_models_in_fp32():
    from odic.model import ModelConfig, OdicModel

    model = OdicModel(ModelConfig(N=16, M=24)).train()
    x = torch.rand(2, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, torch.tensor([0.2, 0.8]), torch.tensor([0.0, 1.0]))
        inner = model.g_a(x, model.embed(torch.tensor([0.2]), torch.tensor([0.0])))
    assert inner.dtype == torch.bfloat16  # the transforms do run in bf16 under the autocast
    assert out["x_hat"].dtype == torch.float32
    assert {k: v.dtype for k, v in out["likelihoods"].items()} == {"y": torch.float32, "z": torch.float32}


def test_auto_precision_resumes_with_what_it_measured(tiny_data, tmp_path, monkeypatch):
    import odic.train.loop as loop

    monkeypatch.setattr(loop, "resolve_precision", lambda name, model, x: "bf16" if name == "auto" else name)
    train(_cfg(tiny_data, tmp_path / "auto", 5, precision="auto"))
    asked = []
    monkeypatch.setattr(loop, "resolve_precision", lambda name, model, x: asked.append(name) or "fp32")
    run = train(_cfg(tiny_data, tmp_path / "auto", 10, precision="auto", resume=True))
    assert asked == ["bf16"]  # the checkpoint's choice, not a new measurement
    assert torch.load(run / "last.pt", weights_only=False)["config"]["precision_used"] == "fp32"


def test_auto_precision_picks_the_faster_measurement(monkeypatch):
    from odic.train import precision

    x = torch.rand(1, 3, 64, 64)
    monkeypatch.setattr(precision, "probe_seconds", lambda model, x, bf16: 1.0 if bf16 else 2.0)
    assert precision.resolve_precision("auto", None, x) == "bf16"
    monkeypatch.setattr(precision, "probe_seconds", lambda model, x, bf16: 1.0 if bf16 else 1.1)
    assert precision.resolve_precision("auto", None, x) == "fp32"  # under the margin: not worth the rounding
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve_precision("fp16", None, x)


def test_probe_leaves_the_model_and_the_random_state_alone():
    from odic.model import ModelConfig, OdicModel
    from odic.train.precision import probe_seconds

    model = OdicModel(ModelConfig(N=16, M=24))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 64, 64)
    rng = torch.get_rng_state()
    assert probe_seconds(model, x, bf16=True, reps=1) > 0
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in model.parameters())


def test_train_cli_refuses_an_unknown_precision(tiny_data, tmp_path, capsys):
    from odic.cli import main

    assert main(["train", "--data", str(tiny_data), "--out", str(tmp_path / "p"), "--precision", "fp8"]) == 2
    assert "--precision must be one of auto, bf16, fp32" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_balanced_rates_give_every_image_the_same_pull():
    from odic.train.loop import batch_loss

    losses = torch.tensor([0.3, 4.0, 900.0], requires_grad=True)
    batch_loss(losses, balance_rates=False).backward()
    assert torch.allclose(losses.grad, torch.full((3,), 1 / 3))  # plain: the 900 image's gradient is 3000x larger
    losses.grad = None
    batch_loss(losses, balance_rates=True).backward()
    assert torch.allclose(losses.grad * losses.detach(), torch.full((3,), 1 / 3))  # d(L_i)/L_i: equal relative pull


def test_balanced_training_learns(tiny_data, tmp_path):
    run = train(_cfg(tiny_data, tmp_path / "balanced", 40, balance_rates=True, lambda_min=0.1, lambda_max=5000.0))
    losses = _losses(run)  # the log keeps the plain mean of lambda * D + bpp
    assert sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2, losses


def test_the_bf16_wrapper_keeps_the_observers_kind():
    from torch import nn

    from odic.observers import create_observer, observer_kind, register_observer
    from odic.train.precision import AutocastObserver, Precision

    torch.manual_seed(0)
    embed = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    register_observer("test-train-embedding", embed, kind="embedding", input_size=32, overwrite=True)
    wrapped = AutocastObserver(create_observer("test-train-embedding"), Precision("bf16", torch.device("cpu")))
    assert observer_kind(wrapped) == "embedding"  # so the loss matches its cosine, not a KL of "logits"


@pytest.mark.parametrize("kind", ["checkerboard", "channel-checkerboard"])
def test_context_only_training_saves_bits_and_keeps_every_other_tensor(tiny_data, tmp_path, kind):
    """--context-only adds a context to --init and trains nothing else; its streams decode."""
    import odic
    from odic.cli import main
    from odic.train import train_context

    base_run = train(_cfg(tiny_data, tmp_path / "base", 40))
    base = tmp_path / "base.pt"
    assert main(["export", str(base_run / "last.pt"), "-o", str(base), "--model-id", "tiny-base"]) == 0
    run = train_context(_cfg(tiny_data, tmp_path / "ctx", 150, init=str(base), context_only=True, context_cache=16,
                             lr=1e-3, context=kind), log=lambda _: None)
    with open(run / "val.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(float(r["y_bits"]) < float(r["y_bits_hyperprior"]) for r in rows), rows
    trained = torch.load(run / "last.pt", weights_only=False)
    assert trained["model_config"]["context"] == kind and trained["step"] == 150
    init_state = torch.load(base, weights_only=False)["state_dict"]
    for k, v in trained["model"].items():
        if not k.startswith("context."):
            assert torch.equal(v.to(init_state[k].dtype), init_state[k]), k
    out = tmp_path / "ctx.pt"
    assert main(["export", str(run / "last.pt"), "-o", str(out), "--model-id", "tiny-ctx"]) == 0
    codec = odic.load(str(out))
    image = Image.fromarray(smooth_image(64, 96, seed=5))
    assert codec.decompress(codec.compress(image, quality=50)).size == image.size
    if kind == "channel-checkerboard":  # the channels ordered by cost, the order kept by the weights file
        order = trained["model"]["context.channel_order"]
        assert not torch.equal(order, torch.arange(len(order)))
        assert torch.equal(codec.model.context.channel_order, order)


def test_context_only_cli_needs_a_model(tiny_data, tmp_path, capsys):
    from odic.cli import main

    assert main(["train", "--context-only", "--data", str(tiny_data), "--out", str(tmp_path / "r")]) != 0
    assert "--context-only needs --init" in capsys.readouterr().err


def test_end_to_end_training_of_a_context_model(tiny_data, tmp_path):
    """A model with a context trains end to end (its context included) from a --init with or without one,
    and a run from it keeps the context unless told otherwise."""
    run = train(_cfg(tiny_data, tmp_path / "a", 10, context="checkerboard"))
    first = torch.load(run / "last.pt", weights_only=False)
    assert first["model_config"]["context"] == "checkerboard"
    on = train(_cfg(tiny_data, tmp_path / "b", 10, context="checkerboard", init=str(run / "last.pt")))
    second = torch.load(on / "last.pt", weights_only=False)
    moved = [k for k in first["model"] if k.startswith("context.") and not torch.equal(first["model"][k],
                                                                                        second["model"][k])]
    assert moved, "the context did not train"
    kept = train(_cfg(tiny_data, tmp_path / "c", 1, init=str(run / "last.pt")))  # unset: --init's context
    assert torch.load(kept / "last.pt", weights_only=False)["model_config"]["context"] == "checkerboard"
    with pytest.raises(ValueError, match="--context checkerboard"):  # dropping it is refused
        train(_cfg(tiny_data, tmp_path / "d", 1, context="none", init=str(run / "last.pt")))


def test_a_run_keeps_the_context_and_encoder_blocks_of_its_start_unless_told():
    """Unset, the context and encoder blocks are the start's (resumed or --init model);
    --context-only adds a checkerboard to a model without one; set values win."""
    from odic.model import ModelConfig
    from odic.train.loop import model_config

    start = ModelConfig(N=8, M=20, context="channel-checkerboard", encoder_blocks=2)

    def resolved(start, **kw) -> tuple[str, int]:
        config = model_config(TrainConfig(**kw), start)
        return config.context, config.encoder_blocks

    assert resolved(start) == ("channel-checkerboard", 2)
    assert resolved(start, context_only=True) == ("channel-checkerboard", 2)
    assert resolved(None) == ("none", 0)
    assert resolved(None, context_only=True) == ("checkerboard", 0)
    assert resolved(start, context="checkerboard", encoder_blocks=3) == ("checkerboard", 3)
