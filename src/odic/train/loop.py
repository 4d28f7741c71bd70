"""The training loop behind ``odic train``: one conditional model for every rate and observer.

Each image of a batch gets its own condition: quality ``q ~ U[0, 1]`` and observer ``alpha``
(fixed, or drawn from ``alpha_range`` with extra mass on both ends so the pure observers are
trained as often as the mixes). The loss is ``lambda(q) * D_alpha + bpp`` averaged over the batch;
the entropy bottleneck's auxiliary loss has its own optimizer (CompressAI's recommendation).

Runs unchanged under ``torchrun`` (DistributedDataParallel, gloo on CPU / nccl on GPU): every rank
draws its own crops, gradients are averaged, rank 0 writes checkpoints and logs.
Checkpoints hold model, optimizers, step and every RNG state, so ``--resume`` continues bit for bit.
SIGTERM or Ctrl-C stops after the current step and writes a checkpoint first, so stopping a run
(to change its schedule, or because the session ends) never loses more than one step.
"""

from __future__ import annotations

import csv
import os
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from ..losses import DEFAULT_MACHINE_SCALE, observer_distortion, rate_bpp
from ..model import ModelConfig, OdicModel, lmbda_for
from ..observers import create_observer, observer_kind
from ..options import DEFAULT_CLASSIFIER
from ..weights import read_weights_file
from .checkpoint import load_training_state, save_training_state
from .data import CropSampler, list_images, load_images
from .precision import AutocastObserver, Precision, resolve_precision
from .rate_range import widen_state


@dataclass
class TrainConfig:
    data: list[str] = field(default_factory=lambda: ["../shared/data/train"])
    val: str | None = None
    val_count: int = 24  # when no --val: hold out this many training images
    out: str = "runs/default"
    observer: str = DEFAULT_CLASSIFIER
    layers: list[str] | None = None
    kl_weight: float = 0.1
    machine_scale: float = DEFAULT_MACHINE_SCALE
    mse_weight: float = 10.0  # MS-SSIM alone is nearly colour-blind: early models decode grey
    # MSE weight at quality 1, geometric in quality from ``mse_weight`` at 0 (None: constant).
    # MS-SSIM saturates at high rates and stops asking for PSNR; a rising MSE weight keeps the
    # top of the rate range paying for it (docs/training.md, "PSNR at the top").
    mse_weight_top: float | None = None
    alpha: float | None = None  # fixed alpha; None = sample from alpha_range
    alpha_range: tuple[float, float] = (0.0, 1.0)
    quality: float | None = None  # fixed internal quality in [0, 1]; None = all rates
    steps: int = 100000
    crop: int = 128
    batch: int = 8
    lr: float = 1e-4
    aux_lr: float = 1e-3
    clip: float = 1.0
    seed: int = 0
    ckpt_minutes: float = 5.0
    val_every: int = 500
    log_every: int = 25
    threads: int | None = None
    resume: bool = False
    init: str | None = None  # start from these weights (a .pt checkpoint or exported weights)
    N: int = ModelConfig.N
    M: int = ModelConfig.M
    lambda_min: float = ModelConfig.lambda_min
    lambda_max: float = ModelConfig.lambda_max
    levels: int = ModelConfig.levels  # an --init model with a narrower range is re-sampled
    precision: str = "auto"  # "bf16": transforms and classifier under bf16 autocast; "auto" measures
    balance_rates: bool = False  # weigh each image by 1 / its loss: every rate counts alike (wide ranges)
    human_steps: int = 0  # the first steps train the human observer only (alpha = 0, no classifier)
    lr_drop_step: int | None = None  # from this step on the learning rate is lr * lr_drop
    lr_drop: float = 0.1
    progress: bool = True
    # Train only what the encoder runs (OdicModel.ENCODER_MODULES); the decoder, the entropy
    # models and their tables stay bit for bit as in ``init``, so its streams stay decodable.
    encoder_only: bool = False
    # Hold the machine side while the human side moves: the images with alpha > 0 also pay
    # ``anchor_weight * alpha * MSE(x_hat, anchor's x_hat)``, the anchor being a frozen model
    # (e.g. the shipped weights) run on the same crop and condition.
    anchor: str | None = None
    anchor_weight: float = 100.0
    # "output": compare reconstructions of the student's own latents (a drifting encoder flips
    # roundings, which the straight-through gradient cannot see or undo). "decoder": decode the
    # anchor's rounded latents with both models and compare, so only the decoding side is held.
    anchor_mode: str = "output"
    # Train only a context added to ``init`` (odic.train.context): on latents of
    # ``context_cache`` crops computed once; every other tensor stays ``init``'s.
    context_only: bool = False
    context_cache: int = 2000
    # The model's context (a name of odic.model.context.CONTEXT_MODELS) and LatentBlocks at the
    # end of g_a (an --init model with fewer gains new ones). None: the resumed run's, else --init's
    # (training on keeps them), else none and 0 (--context-only: a checkerboard).
    context: str | None = None
    encoder_blocks: int | None = None

    def mse_weight_at(self, q: torch.Tensor) -> float | torch.Tensor:
        """The human loss's MSE weight for qualities ``q`` in [0, 1] (one per image when it varies)."""
        if self.mse_weight_top is None:
            return self.mse_weight
        return self.mse_weight * (self.mse_weight_top / self.mse_weight) ** q

    def lr_at(self, step: int) -> float:
        """Learning rate for ``step``: constant, then one drop (Balle et al.'s schedule, shortened)."""
        if self.lr_drop_step is not None and step >= self.lr_drop_step:
            return self.lr * self.lr_drop
        return self.lr


class StopRequest:
    """Turns SIGTERM / SIGINT into a flag the loop checks once per step (then it checkpoints)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay as they are
                pass

    def _handle(self, signum, frame) -> None:
        self.requested = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def append_csv(path: Path, rows: list[dict]) -> None:
    """Append ``rows`` to a run's CSV log, with a header when the file is new."""
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            w.writeheader()
        w.writerows(rows)


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _setup_distributed() -> torch.device:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def sample_conditions(cfg: TrainConfig, n: int, g: torch.Generator,
                      step: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (quality, alpha); alpha is 0 during the ``human_steps`` warm-up."""
    if cfg.quality is not None:
        q = torch.full((n,), float(cfg.quality))
    else:
        q = torch.rand(n, generator=g)
    if cfg.alpha is not None:
        a = torch.full((n,), float(cfg.alpha))
    else:
        lo, hi = cfg.alpha_range
        u = torch.rand(n, generator=g)
        pick = torch.rand(n, generator=g)
        a = lo + (hi - lo) * u
        a = torch.where(pick < 0.3, torch.full_like(a, lo), a)
        a = torch.where(pick > 0.7, torch.full_like(a, hi), a)
    if step is not None and step < cfg.human_steps:
        a = torch.zeros_like(a)
    return q, a


def load_anchor(path: str, device: torch.device) -> tuple[OdicModel, str]:
    """A frozen copy of a trained model, in eval mode (rounded latents: its target is deterministic),
    and its weights hash, which the run's checkpoints record."""
    from ..weights import build_model, read_weights_file

    anchor, digest = build_model(read_weights_file(path))
    return anchor.to(device).eval().requires_grad_(False), digest.hex()


def check_same_anchor(ckpt_path: Path, saved: dict, anchor_hash: str | None) -> None:
    """Refuse to resume a run with other anchor weights than it was trained with (``saved``: its config).

    A run anchored to the bundled default (``src/odic/weights/odic-base.pt``) would otherwise be
    pulled towards whatever model a release put under that path, without a word.
    """
    if "anchor_weights_hash" not in saved:  # written before the hash was recorded: nothing to compare
        return
    was = saved["anchor_weights_hash"]
    if was != anchor_hash:
        before = f"anchor weights {was} ({saved.get('anchor')})" if was else "no anchor weights"
        now = f"weights {anchor_hash}" if anchor_hash else "no anchor"
        raise ValueError(f"{ckpt_path} was trained with {before}, --anchor gives {now}: "
                         "pass the same anchor file to resume")


def rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The generator states a forward pass draws its noise from (CPU, and the GPU's when on one)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def anchor_distortion(anchor: OdicModel, x: torch.Tensor, x_hat: torch.Tensor, q: torch.Tensor,
                      alpha: torch.Tensor, noise_state: tuple | None = None) -> torch.Tensor:
    """Per-image MSE between ``x_hat`` and the anchor's reconstruction, 0 where alpha is 0.

    Only the rows with a machine share count: the human rows are free to move. A training
    forward adds uniform noise to the hyper-latent z; with ``noise_state`` (``rng_state`` taken just
    before that forward) the anchor draws the same noise, on the whole batch so that the noise
    tensor has the same shape. Without it the anchor rounds z, and the target differs from the
    student's by what the noise alone moves (MSE about 7e-4 at q 0.2 for s29033 itself), a floor
    the loss could only lower by spending bits.
    """
    out = torch.zeros(x.shape[0], device=x.device, dtype=x_hat.dtype)
    rows = (alpha > 0).nonzero().flatten()
    if not len(rows):
        return out
    with torch.no_grad():
        if noise_state is None:
            target = anchor(x[rows], q[rows], alpha[rows])["x_hat"].clamp(0, 1)
        else:
            cpu_state, device_state = noise_state
            with torch.random.fork_rng(devices=[x.device] if device_state is not None else []):
                torch.set_rng_state(cpu_state)
                if device_state is not None:
                    torch.cuda.set_rng_state(device_state, x.device)
                anchor.entropy_bottleneck.train()
                try:
                    target = anchor(x, q, alpha)["x_hat"][rows].clamp(0, 1)
                finally:
                    anchor.entropy_bottleneck.eval()
    return out.index_put((rows,), (x_hat[rows] - target).pow(2).flatten(1).mean(1))


def decoder_anchor_distortion(model: OdicModel, anchor: OdicModel, x: torch.Tensor, q: torch.Tensor,
                              alpha: torch.Tensor) -> torch.Tensor:
    """Per-image MSE between the student's and the anchor's decoding of the anchor's own latents.

    Rounded as the stream rounds them (no noise, no rounding flips between the two models), so
    the term is 0 for the anchor's copy and moves only when the decoding side (condition embedding,
    inverse gains, h_s, g_s) moves; 0 where alpha is 0.
    """
    out = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    rows = (alpha > 0).nonzero().flatten()
    if not len(rows):
        return out
    xs, qs, als = x[rows], q[rows], alpha[rows]
    with torch.no_grad():
        y_s, z_s = anchor.gained_latents(xs, qs, als)
        target, _ = anchor.decode_rounded(y_s, z_s, qs, als)
    decoded, _ = model.decode_rounded(y_s, z_s, qs, als)
    return out.index_put((rows,), (decoded - target).pow(2).flatten(1).mean(1))  # both unclamped: 0 for a copy


def batch_loss(per_image: torch.Tensor, balance_rates: bool) -> torch.Tensor:
    """The mean of the images' ``lambda * D + bpp``, or, balanced, of each divided by its own value.

    A batch mixes rates whose losses differ as much as their lambdas: with a range of 32000x the
    top rates decide every update alone (runs/v14a lost quality at every rate, the top included).
    Balanced, each image's gradient is ``grad(L_i) / L_i``: every rate pulls on the shared weights
    alike, and each image still descends its own rate-distortion trade-off.
    """
    return (per_image / per_image.detach() if balance_rates else per_image).mean()


def model_config(cfg: TrainConfig, start: ModelConfig | None) -> ModelConfig:
    """The model a run trains: ``cfg``'s shape and rate range; its context and encoder blocks as
    set, else those of ``start`` (the resumed or --init model's configuration)."""
    start = start or ModelConfig()
    context = cfg.context
    if context is None:
        context = "checkerboard" if cfg.context_only and start.context == "none" else start.context
    blocks = start.encoder_blocks if cfg.encoder_blocks is None else cfg.encoder_blocks
    return ModelConfig(N=cfg.N, M=cfg.M, levels=cfg.levels, lambda_min=cfg.lambda_min, lambda_max=cfg.lambda_max,
                       context=context, encoder_blocks=blocks)


def init_model_weights(model: OdicModel, payload: dict, path: str) -> None:
    """Copy the weights of ``payload`` (read from ``path`` by ``odic.weights.read_weights_file``)
    into ``model`` (``--init``); a narrower rate range is widened exactly."""
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    old = ModelConfig(**payload["config"])
    if old.context not in ("none", model.config.context):
        raise ValueError(f"{path}: the model has a {old.context} context; train it with --context {old.context}")
    if old.encoder_blocks > model.config.encoder_blocks:
        raise ValueError(f"{path}: the model has {old.encoder_blocks} encoder blocks; "
                         f"train it with --encoder-blocks {old.encoder_blocks} or more")
    # Parts the file lacks start fresh: a context, and encoder blocks (each the identity at first).
    fresh = ["context."] if old.context != model.config.context else []
    first_new_block = len(model.g_a.layers) - model.config.encoder_blocks + old.encoder_blocks
    fresh += [f"g_a.layers.{i}." for i in range(first_new_block, len(model.g_a.layers))]
    old = replace(old, context=model.config.context, encoder_blocks=model.config.encoder_blocks)
    if old != model.config:
        state = widen_state(state, old, model.config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith(tuple(fresh)) for k in missing):
        raise ValueError(f"{path}: weights do not fit its own configuration")


def _constant_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """The fixed bounds and pedestals of CompressAI's layers (not learned: set at construction)."""
    return {k: v.clone() for k, v in model.named_buffers() if k.endswith(("pedestal", ".bound"))}


def _aux_parameters(model: nn.Module):
    return [p for n, p in model.named_parameters() if n.endswith("quantiles")]


def _main_parameters(model: nn.Module):
    return [p for n, p in model.named_parameters() if not n.endswith("quantiles")]


def freeze_decoder(model: OdicModel) -> list[nn.Parameter]:
    """Encoder-only training: every parameter the decoder reads stops learning; returns the rest."""
    for n, p in model.named_parameters():
        p.requires_grad_(model.is_encoder_key(n))
    return [p for p in model.parameters() if p.requires_grad]


@torch.no_grad()
def validate(model: OdicModel, observer, images: torch.Tensor, points) -> list[dict]:
    """bpp (estimated), MS-SSIM, PSNR and top-1 agreement with the uncompressed prediction per point."""
    from ..losses import human_distortion

    model.eval()
    rows = []
    if observer is not None and observer_kind(observer) != "classifier":
        observer = None  # top-1 agreement means nothing for an embedding or a feature extractor
    ref_top1 = observer(images).argmax(1) if observer is not None else None
    for q, a in points:
        qs = torch.full((images.shape[0],), q)
        als = torch.full((images.shape[0],), a)
        out = model(images, qs, als)
        bpp = rate_bpp(out["likelihoods"], images.shape[-2] * images.shape[-1]).mean().item()
        x_hat = out["x_hat"].clamp(0, 1)
        msssim = 1 - human_distortion(images, x_hat).mean().item()
        psnr = (-10 * torch.log10((x_hat - images).pow(2).flatten(1).mean(1))).mean().item()
        agree = None
        if observer is not None:
            agree = (observer(x_hat).argmax(1) == ref_top1).float().mean().item()
        rows.append({"q": q, "alpha": a, "bpp": bpp, "msssim": msssim, "psnr": psnr, "top1_agree": agree})
    model.train()
    return rows


def _tensorboard_writer(out: Path):
    """A TensorBoard writer into RUN_DIR/tb when tensorboard is installed, else None (CSV only)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tb"))


def _validation_batch(images: list[torch.Tensor], limit: int = 16) -> torch.Tensor | None:
    """Top-left squares of one size (up to 256 px, a multiple of 64) from the validation images."""
    sides = [min(im.shape[-2:]) for im in images]
    if not sides or max(sides) < 64:
        return None
    side = min(256, max(sides) // 64 * 64)
    crops = [im[:, :side, :side] for im in images if min(im.shape[-2:]) >= side][:limit]
    return torch.stack(crops).float() / 255.0


def train(cfg: TrainConfig) -> Path:
    """Run (or resume) a training run; returns the run folder."""
    out = Path(cfg.out)
    ckpt_path = out / "last.pt"
    if cfg.encoder_only and not cfg.init and not (cfg.resume and ckpt_path.exists()):
        raise ValueError("encoder-only training needs a trained model to start from (--init WEIGHTS)")
    if not cfg.resume and ckpt_path.exists():
        # a fresh run would overwrite the folder's checkpoint at its first save: hours of training lost
        raise ValueError(f"{cfg.out} already holds a training run (last.pt): pass --resume to continue it, "
                         "or choose another --out")
    anchor, anchor_hash = None, None
    if cfg.anchor and cfg.anchor_weight > 0:  # loaded on the CPU first: checked before anything else is loaded
        anchor, anchor_hash = load_anchor(cfg.anchor, torch.device("cpu"))
    # The resumed run, read once: its anchor, the precision it measured and its model.
    resumed = torch.load(ckpt_path, map_location="cpu", weights_only=False) \
        if cfg.resume and ckpt_path.exists() else None
    saved = resumed.get("config", {}) if resumed is not None else None
    if saved is not None:
        check_same_anchor(ckpt_path, saved, anchor_hash)
    init = read_weights_file(cfg.init) if cfg.init and resumed is None else None
    start = None  # the configuration the run starts from: the resumed run's, else --init's
    if resumed is not None:
        start = ModelConfig(**resumed["model_config"])
    elif init is not None:
        start = ModelConfig(**init["config"])
    device = _setup_distributed()
    rank, world = _dist_info()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    files = list_images(cfg.data)
    if not files:
        raise FileNotFoundError(f"no images found in {cfg.data}")
    if cfg.val:
        val_files = list_images([cfg.val])
    else:
        val_files, files = files[-cfg.val_count :], files[: -cfg.val_count]
    sampler = CropSampler(load_images(files), cfg.crop, seed=cfg.seed + 1000 * rank)
    val_imgs = _validation_batch(load_images(val_files))

    torch.manual_seed(cfg.seed)
    model = OdicModel(model_config(cfg, start)).to(device)
    trained = freeze_decoder(model) if cfg.encoder_only else _main_parameters(model)
    optimizer = torch.optim.Adam(trained, lr=cfg.lr)
    aux_optimizer = torch.optim.Adam(_aux_parameters(model), lr=cfg.aux_lr)
    cond_gen = torch.Generator().manual_seed(cfg.seed + 7 + 1000 * rank)

    step, elapsed = 0, 0.0
    constants = _constant_buffers(model)
    if resumed is not None:
        step, elapsed = load_training_state(ckpt_path, resumed, model, optimizer, aux_optimizer, sampler, cond_gen,
                                            rank)
    elif init is not None:
        init_model_weights(model, init, cfg.init)
    del resumed, init  # the model holds their weights now
    for name, value in constants.items():  # a file may hold them rounded (old fp16 exports)
        model.get_buffer(name).copy_(value)
    if anchor is not None:
        anchor = anchor.to(device)
    probe_batch = torch.rand(cfg.batch, 3, cfg.crop, cfg.crop, generator=torch.Generator().manual_seed(0))
    asked = cfg.precision
    if asked == "auto" and saved is not None:  # a resumed run keeps what it measured
        asked = saved.get("precision_used", "auto")
    chosen = resolve_precision(asked, model, probe_batch.to(device))
    if world > 1:  # every rank runs what rank 0 measured
        flag = torch.tensor([chosen == "bf16"], dtype=torch.int32, device=device)
        dist.broadcast(flag, 0)
        chosen = "bf16" if bool(flag.item()) else "fp32"
    precision = Precision(chosen, device)
    if rank == 0:
        print(f"precision: {precision.name} (asked: {cfg.precision})", flush=True)
    precision.prepare(model)
    observer = None
    if cfg.alpha != 0.0:
        observer = AutocastObserver(create_observer(cfg.observer, device), precision)
    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,
        )

    log_path = out / "log.csv"
    val_path = out / "val.csv"
    log_fields = ["step", "time", "loss", "bpp", "d_human", "d_machine", "aux", "lr"]
    if rank == 0 and not log_path.exists():
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(log_fields)

    writer = _tensorboard_writer(out) if rank == 0 else None
    val_points = [(0.2, 0.0), (0.6, 0.0), (1.0, 0.0), (0.2, 1.0), (0.6, 1.0)]
    last_ckpt = time.time()
    t0 = time.time() - elapsed  # the log's time column is training wall time across resumes
    acc: dict[str, float] = {}
    skipped = 0  # updates skipped for a non-finite gradient
    progress = None
    if rank == 0 and cfg.progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn("train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
        )
        task = progress.add_task("train", total=cfg.steps, completed=step, info="")
        progress.start()
    model.train()
    stop = StopRequest() if rank == 0 and world == 1 else None
    try:
        while step < cfg.steps and not (stop and stop.requested):
            x = precision.batch(sampler.batch(cfg.batch).to(device))
            q, a = sample_conditions(cfg, x.shape[0], cond_gen, step)
            lr = cfg.lr_at(step)  # set every step: --lr or the schedule given on resume wins over the saved one
            for group in optimizer.param_groups:
                group["lr"] = lr
            q, a = q.to(device), a.to(device)
            noise_state = rng_state(device) if anchor is not None and cfg.anchor_mode == "output" else None
            with precision.autocast():  # the model keeps its entropy part in fp32
                result = ddp_model(x, q, a)
            d = observer_distortion(
                x, result["x_hat"], a, observer, cfg.machine_scale, cfg.mse_weight_at(q),
                cfg.layers, cfg.kl_weight,
            )
            if anchor is not None and cfg.anchor_mode == "decoder":
                d["d_alpha"] = d["d_alpha"] + cfg.anchor_weight * a * decoder_anchor_distortion(
                    model, anchor, x, q, a)  # the wrapped module itself: DDP wraps only its forward
            elif anchor is not None:
                d["d_alpha"] = d["d_alpha"] + cfg.anchor_weight * a * anchor_distortion(
                    anchor, x, result["x_hat"], q, a, noise_state)
            bpp = rate_bpp(result["likelihoods"], x.shape[-2] * x.shape[-1])
            per_image = lmbda_for(q, model.config) * d["d_alpha"] + bpp
            loss = batch_loss(per_image, cfg.balance_rates)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = nn.utils.clip_grad_norm_(trained, cfg.clip or float("inf"))
            finite = bool(torch.isfinite(norm))
            if finite:
                optimizer.step()
            else:  # one bad batch (e.g. MS-SSIM of a degenerate crop) must not turn every weight into NaN
                skipped += 1
                print(f"step {step}: non-finite loss or gradient, update skipped ({skipped} so far)", flush=True)
                optimizer.zero_grad(set_to_none=True)
            aux = model.aux_loss()
            if not cfg.encoder_only:  # the quantiles shape the decoder's tables: frozen with it
                aux_optimizer.zero_grad(set_to_none=True)
                aux.backward()
                aux_optimizer.step()
            step += 1

            if finite:  # the log averages the steps that were applied
                for k, v in (("loss", per_image.mean()), ("bpp", bpp.mean()), ("d_human", d["d_human"].mean()),
                             ("d_machine", d["d_machine"].mean()), ("aux", aux)):
                    acc[k] = acc.get(k, 0.0) + float(v.detach())
                acc["_n"] = acc.get("_n", 0) + 1
            if rank == 0 and step % cfg.log_every == 0 and acc:
                count = acc.pop("_n")
                row = {k: v / count for k, v in acc.items()}  # after a resume fewer steps may be summed
                acc = {}
                with open(log_path, "a", newline="") as f:
                    csv.writer(f).writerow(
                        [step, round(time.time() - t0, 1)]
                        + [f"{row[k]:.5f}" for k in log_fields[2:7]] + [lr]
                    )
                if writer:
                    for k, v in row.items():
                        writer.add_scalar(f"train/{k}", v, step)
                if progress:
                    progress.update(task, completed=step, info=f"loss {row['loss']:.3f} bpp {row['bpp']:.3f}")
            elif progress and step % 5 == 0:
                progress.update(task, completed=step)

            if rank == 0 and cfg.val_every and step % cfg.val_every == 0 and val_imgs is not None:
                rows = validate(model, observer, val_imgs.to(device), val_points)
                append_csv(val_path, [{"step": step, **r} for r in rows])
                if writer:
                    for r in rows:
                        tag = f"val/q{r['q']:g}_a{r['alpha']:g}"
                        for k in ("bpp", "msssim", "psnr", "top1_agree"):
                            if r[k] is not None:
                                writer.add_scalar(f"{tag}/{k}", r[k], step)
            stopping = stop is not None and stop.requested
            if time.time() - last_ckpt > cfg.ckpt_minutes * 60 or step == cfg.steps or stopping:
                save_training_state(ckpt_path, model, optimizer, aux_optimizer, sampler,
                                    cond_gen, step, {**asdict(cfg), "anchor_weights_hash": anchor_hash,
                                                     "precision_used": precision.name}, rank,
                                    world, time.time() - t0)
                last_ckpt = time.time()
    finally:
        if stop:
            stop.restore()
        if progress:
            progress.stop()
        if writer:
            writer.close()
    if world > 1:
        dist.barrier()
    return out

