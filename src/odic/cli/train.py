"""``odic train`` (works unchanged under torchrun) and ``odic export``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ..options import DEFAULT_CLASSIFIER
from . import EXIT_OK, UsageError


def register(sub) -> None:
    t = sub.add_parser(
        "train", help="train a conditional odic model (one model for every rate and observer)",
        description="Train odic. Runs unchanged under `torchrun --nproc-per-node N odic train ...` (DDP).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    t.add_argument("--data", nargs="+", default=["../shared/data/train"], metavar="DIR", help="training image folders")
    t.add_argument("--val", default=None, metavar="DIR",
                   help="validation folder (default: hold out --val-count training images)")
    t.add_argument("--val-count", type=int, default=24, help="training images held out when no --val")
    t.add_argument("--out", default="runs/default", metavar="RUN_DIR", help="run folder: checkpoints and logs")
    t.add_argument("--observer-classifier", default=DEFAULT_CLASSIFIER, metavar="NAME|PKG.MOD:FACTORY",
                   help="machine observer: a name of odic.observers.list_observers() or your own model as "
                        "package.module:factory (docs/api.md, \"Compress for your own model\")")
    t.add_argument("--layers", nargs="+", default=None, metavar="LAYER",
                   help="observer feature layers for the machine loss (default: early and late)")
    t.add_argument("--kl-weight", type=float, default=0.1, help="weight of the KL term on the classifier outputs")
    t.add_argument("--machine-scale", type=float, default=None,
                   help="factor putting the machine loss on the scale of 1-MS-SSIM (default: calibrated 0.12)")
    t.add_argument("--mse-weight", type=float, default=10.0,
                   help="weight of MSE added to 1-MS-SSIM in the human loss (keeps colour; 0 = MS-SSIM only)")
    t.add_argument("--mse-weight-top", type=float, default=None, metavar="W",
                   help="MSE weight at the top quality, geometric from --mse-weight at quality 0 (PSNR at "
                        "high rates, where MS-SSIM saturates); default: --mse-weight at every quality")
    t.add_argument("--alpha", type=float, default=None, help="fixed observer alpha (default: sample per image)")
    t.add_argument("--alpha-range", type=float, nargs=2, default=(0.0, 1.0), metavar=("LO", "HI"),
                   help="range alpha is sampled from (30%% at each end, 40%% uniform)")
    t.add_argument("--quality", type=float, default=None,
                   help="fixed quality 0..100 (default: all rates of the conditional model)")
    t.add_argument("--steps", type=int, default=100000, help="total optimisation steps")
    t.add_argument("--crop", type=int, default=128, help="random crop size in pixels")
    t.add_argument("--batch", type=int, default=8, help="crops per step and process")
    t.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--ckpt-minutes", type=float, default=5.0, help="minutes between checkpoints")
    t.add_argument("--val-every", type=int, default=500, help="steps between validations")
    t.add_argument("--threads", type=int, default=None, help="CPU threads per process")
    t.add_argument("--resume", action="store_true", help="continue RUN_DIR/last.pt bit for bit")
    t.add_argument("--init", default=None, metavar="WEIGHTS", help="start from these weights")
    # Model shape and rate range: unset means odic.model.ModelConfig's defaults (the shipped models').
    t.add_argument("--N", type=int, default=None, help="channels of the transforms (default: the shipped models')")
    t.add_argument("--M", type=int, default=None, help="channels of the latent (default: the shipped models')")
    t.add_argument("--lambda-range", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="rate-distortion weight at quality 0 and 100, geometric in between (default: the shipped "
                        "models')")
    t.add_argument("--levels", type=int, default=None,
                   help="gain anchors over the rate range; an --init model with a narrower --lambda-range is "
                        "re-expressed exactly where the anchors line up (docs/training.md)")
    t.add_argument("--precision", default="auto", metavar="auto|bf16|fp32",
                   help="bf16: transforms and classifier under bf16 autocast, channels_last (entropy models "
                        "and losses in fp32); auto: bf16 where a start-up probe finds it faster")
    t.add_argument("--balance-rates", action="store_true",
                   help="divide each image's loss by its own value, so that every rate of a wide --lambda-range "
                        "pulls on the weights alike (otherwise the highest rates dominate)")
    t.add_argument("--human-steps", type=int, default=0,
                   help="first steps on the human observer only (a colour/structure warm-up)")
    t.add_argument("--lr-drop-step", type=int, default=None, help="step from which the lr is multiplied by 0.1")
    t.add_argument("--encoder-only", action="store_true",
                   help="train only the encoder (from --init): streams of the init model's decoder stay decodable")
    t.add_argument("--context", default=None, metavar="NAME",
                   help="entropy model of y: none, checkerboard (half of y coded first refines the other half's "
                        "parameters) or channel-checkerboard (channel slices, each a checkerboard, each informing "
                        "the next); default: the resumed run's, else --init's, else none (checkerboard with "
                        "--context-only)")
    t.add_argument("--encoder-blocks", type=int, default=None, metavar="K",
                   help="conditioned residual blocks at the end of the analysis transform (encoder capacity; "
                        "new ones start as the identity, train them with --encoder-only); default: the resumed run's, "
                        "else --init's, else 0")
    t.add_argument("--context-only", action="store_true",
                   help="train only a context added to --init, on its latents computed once "
                        "(fast; every other tensor stays --init's)")
    t.add_argument("--context-cache", type=int, default=2000, metavar="CROPS",
                   help="--context-only: crops whose latents are computed once and trained on")
    t.add_argument("--anchor", default=None, metavar="WEIGHTS",
                   help="a frozen model whose reconstructions the images with alpha > 0 are pulled towards "
                        "(keeps the machine side of WEIGHTS while the human side is fine-tuned)")
    t.add_argument("--anchor-weight", type=float, default=100.0,
                   help="weight of alpha * MSE(x_hat, anchor's x_hat) in D_alpha")
    t.add_argument("--anchor-mode", choices=("output", "decoder"), default="output",
                   help="output: compare reconstructions of the student's own latents; decoder: decode the "
                        "anchor's rounded latents with both models (holds only the decoding side)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to the CSV)")
    t.set_defaults(func=run_train)

    e = sub.add_parser("export", help="turn a training checkpoint (or a weights file) into a shippable fp16 "
                       "weights file",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    e.add_argument("checkpoint", metavar="RUN_DIR/last.pt",
                   help="a training checkpoint, or an exported weights file to re-label (same weights, new id)")
    e.add_argument("-o", "--output", required=True, metavar="PATH", help="weights file to write")
    e.add_argument("--model-id", required=True, help="immutable id written into every stream, e.g. odic-base-v1")
    e.add_argument("--meta", default=None, metavar="JSON", help="extra metadata (command, data, wall time)")
    e.add_argument("--same-decoder-as", default=None, metavar="WEIGHTS",
                   help="an earlier weights file whose decoder this one must equal (after --encoder-only "
                        "training): its streams stay decodable; refused if any decoder tensor differs")
    e.add_argument("-f", "--force", action="store_true", help="overwrite the output")
    e.set_defaults(func=run_export)


def run_train(args) -> int:
    from ..losses import DEFAULT_MACHINE_SCALE
    from ..train import TrainConfig, train, train_context
    from ..train.precision import PRECISIONS

    if args.quality is not None and not 0 <= args.quality <= 100:
        raise UsageError("--quality must be in [0, 100]")
    if args.lambda_range is not None and not 0 < args.lambda_range[0] <= args.lambda_range[1]:
        raise UsageError("--lambda-range needs 0 < MIN <= MAX")
    if args.encoder_only and not (args.init or args.resume):
        raise UsageError("--encoder-only needs --init WEIGHTS (the model whose decoder is kept)")
    if args.context_only and not (args.init or args.resume):
        raise UsageError("--context-only needs --init WEIGHTS (the model to add a context to)")
    from ..model.codec import CONTEXTS

    if args.context is not None and args.context not in CONTEXTS:
        raise UsageError(f"unknown --context {args.context!r} (known: {', '.join(CONTEXTS)})")
    if args.context_only and args.context == "none":
        raise UsageError("--context-only trains a context: not with --context none")
    if args.encoder_blocks is not None and args.encoder_blocks < 0:
        raise UsageError("--encoder-blocks must be >= 0")
    if args.context_cache < args.batch:
        raise UsageError("--context-cache must be at least --batch")
    if args.precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}")
    if args.levels is not None and args.levels < 2:
        raise UsageError("--levels must be at least 2")
    if args.mse_weight_top is not None and not (args.mse_weight > 0 and args.mse_weight_top > 0):
        raise UsageError("--mse-weight-top needs --mse-weight > 0 and a positive top weight")
    if args.anchor_weight < 0:
        raise UsageError("--anchor-weight must be >= 0")
    # the loop builds its own classifier on its device; a wrong one is refused here, before any work
    if args.alpha != 0.0 and not args.context_only:
        from .codec import load_classifier

        load_classifier("--observer-classifier", args.observer_classifier, "cpu")
    shape = {k: v for k, v in (("N", args.N), ("M", args.M), ("levels", args.levels)) if v is not None}
    if args.lambda_range is not None:
        shape.update(lambda_min=args.lambda_range[0], lambda_max=args.lambda_range[1])
    cfg = TrainConfig(
        data=args.data, val=args.val, val_count=args.val_count, out=args.out, observer=args.observer_classifier,
        layers=args.layers, kl_weight=args.kl_weight,
        machine_scale=DEFAULT_MACHINE_SCALE if args.machine_scale is None else args.machine_scale,
        mse_weight=args.mse_weight, mse_weight_top=args.mse_weight_top, alpha=args.alpha,
        alpha_range=tuple(args.alpha_range),
        quality=None if args.quality is None else args.quality / 100.0, steps=args.steps, crop=args.crop,
        batch=args.batch, lr=args.lr, seed=args.seed, ckpt_minutes=args.ckpt_minutes, val_every=args.val_every,
        threads=args.threads, resume=args.resume, init=args.init, **shape,
        precision=args.precision, balance_rates=args.balance_rates, human_steps=args.human_steps,
        lr_drop_step=args.lr_drop_step, encoder_only=args.encoder_only,
        anchor=args.anchor, anchor_weight=args.anchor_weight, anchor_mode=args.anchor_mode,
        context=args.context, encoder_blocks=args.encoder_blocks,
        context_only=args.context_only, context_cache=args.context_cache,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    t0 = time.time()
    out = train_context(cfg) if cfg.context_only else train(cfg)
    print(f"trained to {out}/last.pt in {time.time() - t0:.0f} s")
    return EXIT_OK


def run_export(args) -> int:
    from pathlib import Path

    import torch

    from ..model import ModelConfig, OdicModel
    from ..weights import build_model, export_weights, read_weights_file

    if Path(args.output).exists() and not args.force:
        raise FileExistsError(f"{args.output}: exists (use --force to overwrite)")
    extra = json.loads(args.meta) if args.meta else {}
    try:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        kind = type(exc).__name__
        raise ValueError(f"{args.checkpoint}: not a training checkpoint or weights file ({kind})") from None
    same_decoder_as = args.same_decoder_as
    if isinstance(state, dict) and "model" in state:
        model = OdicModel(ModelConfig(**state["model_config"]))
        model.load_state_dict(state["model"])
        meta = {"step": state["step"], "train_config": state.get("config", {})}
    else:
        # An exported weights file: re-label the measured weights (a candidate becomes a release)
        # without a round trip through a checkpoint. The weights stay bit-identical, so the
        # source's streams stay decodable and are listed as such.
        payload = read_weights_file(args.checkpoint)
        model, _ = build_model(payload)
        meta = dict(payload.get("meta", {}))
        same_decoder_as = same_decoder_as or args.checkpoint
    meta.update(extra)
    digest = export_weights(model, args.output, args.model_id, meta, same_decoder_as=same_decoder_as)
    print(f"wrote {args.output} (model id {args.model_id}, weights hash {digest.hex()})")
    return EXIT_OK
