"""The odic model: a conditional mean-scale hyperprior (Minnen et al. 2018), optionally with a
context model (checkerboard or channel slices + checkerboard; ``ModelConfig.context``, :mod:`.context`).

Data flow (``c`` = condition (quality, alpha); ``g``/``ig``/``hg``/``ihg`` = gain tables)::

    x --g_a(., c)--> y --*g--> y_s --h_a--> z --*hg--> z_s --Q/EntropyBottleneck--> z^_s
                                                                                      |
                                                                      *ihg (exact ints)
                                                                                      v
    x^ <--g_s(., c)-- y^ <--*ig-- y^_s <--Q/GaussianConditional(means, scales)-- h_s (exact ints)

One set of weights serves every rate and every observer: the gains pick the rate on a continuous
grid of ``levels`` quality anchors x {human, machine}, FiLM layers let ``g_a``/``g_s`` change what
they keep for each observer. Layers and entropy models are CompressAI's (GDN, EntropyBottleneck,
GaussianConditional with rANS). With a context model, y is coded in passes (for the checkerboard:
anchors with h_s's parameters, then the rest with parameters refined from the decoded anchors),
all in exact integers and all in the same rANS string.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models.base import CompressionModel
from compressai.models.utils import conv, deconv
from torch import Tensor, nn

from ..bitstream import ALPHA_CODE_MAX, MODEL_STRIDE, QUALITY_CODE_MAX, FormatError
from ..entropy import ACT_FRAC_BITS, HyperSynthesis, from_fixed, scale_indexes_fixed, to_fixed
from . import guards, rans
from .conditioning import (
    GAIN_FRAC_BITS,
    ConditionalSequential,
    ConditionEmbedding,
    FiLM,
    GainTable,
    LatentBlock,
)
from .context import CONTEXT_MODELS, round_ste
from .inplace import run_inplace
from .strips import synthesize_in_strips

SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64


def scale_table() -> Tensor:
    return torch.exp(torch.linspace(math.log(SCALES_MIN), math.log(SCALES_MAX), SCALES_LEVELS))


CONTEXTS = ("none", *CONTEXT_MODELS)


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a model; the defaults are the shipped models'. Weights files carry their own."""

    N: int = 96  # channels of the transforms
    M: int = 160  # channels of the latent
    levels: int = 6  # gain anchors over the rate range
    cond_dim: int = 64
    lambda_min: float = 0.5  # rate-distortion weight at quality 0: reaches ~0.1 bpp
    lambda_max: float = 160.0  # ... and at quality 100 (geometric in between)
    context: str = "none"  # a name of CONTEXT_MODELS: y coded in passes, see .context
    encoder_blocks: int = 0  # LatentBlocks at the end of g_a (encoder only: streams unchanged)

    def __post_init__(self) -> None:
        if self.context not in CONTEXTS:
            raise ValueError(f"unknown context model {self.context!r} (known: {', '.join(CONTEXTS)})")

    def to_dict(self) -> dict:
        return asdict(self)

    def decoder_dict(self) -> dict:
        """The fields a stream's decoding depends on (all but the encoder's extra blocks)."""
        return {k: v for k, v in asdict(self).items() if k != "encoder_blocks"}


def z_likelihoods_ste(bottleneck: EntropyBottleneck, z_hat: Tensor) -> Tensor:
    """The bottleneck's likelihoods of already rounded ``z_hat``, with their gradient.

    ``EntropyBottleneck.forward`` re-rounds its input, and rounding has no gradient, so through it
    z's own rate would not steer z (encoder refinement).
    """
    b, c, h, w = z_hat.shape
    values = z_hat.permute(1, 0, 2, 3).reshape(c, 1, -1)
    likelihood, _, _ = bottleneck._likelihood(values)
    if bottleneck.use_likelihood_bound:
        likelihood = bottleneck.likelihood_lower_bound(likelihood)
    return likelihood.reshape(c, b, h, w).permute(1, 0, 2, 3)


def lmbda_for(q: Tensor, cfg: ModelConfig) -> Tensor:
    """Rate-distortion trade-off weight for internal quality ``q`` in [0, 1]."""
    return cfg.lambda_min * (cfg.lambda_max / cfg.lambda_min) ** q


class OdicModel(CompressionModel):
    """Conditional mean-scale hyperprior; see the module docstring for the data flow."""

    def __init__(self, config: ModelConfig | None = None):
        cfg = config or ModelConfig()
        super().__init__()
        self.config = cfg
        N, M, d = cfg.N, cfg.M, cfg.cond_dim
        self.embed = ConditionEmbedding(d)
        self.g_a = ConditionalSequential(
            conv(3, N), GDN(N), FiLM(N, d),
            conv(N, N), GDN(N), FiLM(N, d),
            conv(N, N), GDN(N), FiLM(N, d),
            conv(N, M),
            *[LatentBlock(M, d) for _ in range(cfg.encoder_blocks)],
        )
        self.g_s = ConditionalSequential(
            deconv(M, N), GDN(N, inverse=True), FiLM(N, d),
            deconv(N, N), GDN(N, inverse=True), FiLM(N, d),
            deconv(N, N), GDN(N, inverse=True), FiLM(N, d),
            deconv(N, 3),
        )
        self.h_a = nn.Sequential(
            conv(M, N, stride=1, kernel_size=3), nn.LeakyReLU(inplace=True),
            conv(N, N), nn.LeakyReLU(inplace=True),
            conv(N, N),
        )
        self.h_s = HyperSynthesis(N, M)
        self.context = CONTEXT_MODELS[cfg.context](M) if cfg.context != "none" else None
        levels = cfg.levels
        # Higher quality -> larger gain -> finer effective quantisation. Start geometric.
        ramp = torch.logspace(math.log10(0.35), math.log10(2.5), levels).view(levels, 1, 1)
        self.gain = GainTable(levels, M, ramp)
        self.inv_gain = GainTable(levels, M, 1.0 / ramp)
        self.hyper_gain = GainTable(levels, N, 1.0)
        self.inv_hyper_gain = GainTable(levels, N, 1.0)
        self.entropy_bottleneck = EntropyBottleneck(N)
        self.gaussian_conditional = GaussianConditional(None)
        self.gaussian_conditional.update_scale_table(scale_table())

    # Downsampling factor of the whole model (g_a 16 x h_a 4): inputs are padded to a multiple.
    stride = MODEL_STRIDE
    #: The modules only the encoder runs. Everything else (condition embedding, g_s, h_s, the
    #: inverse gains, the entropy models and their tables) decides what a stream decodes to.
    ENCODER_MODULES = ("g_a", "h_a", "gain", "hyper_gain")

    @classmethod
    def is_encoder_key(cls, name: str) -> bool:
        """Whether a parameter / state-dict entry belongs to ``ENCODER_MODULES`` (unused by decoding)."""
        return name.split(".")[0] in cls.ENCODER_MODULES

    def y_parameters(self, y_s: Tensor, scales: Tensor, means: Tensor) -> tuple[Tensor, Tensor]:
        """Float (scales, means) of every y: h_s's, refined by the context where there is one.

        The context reads the values of earlier passes rounded as the coder rounds them
        (straight-through).
        """
        if self.context is None:
            return scales, means
        return self.context(y_s, scales, means)

    def decode_rounded(self, y_s: Tensor, z_s: Tensor, q: Tensor, alpha: Tensor,
                       cond: Tensor | None = None) -> tuple[Tensor, dict]:
        """``(x_hat, likelihoods)`` with both latents rounded as the real stream rounds them.

        Rounding is straight-through (gradients reach ``y_s`` and ``z_s``) and the likelihoods are
        those of the rounded values, so the rate is what the coder will spend, not the noisy
        training estimate. Used by encoder refinement, which keeps only latents whose real loss
        fell; as a training objective for the encoder it raised the rate for little gain
        (docs/training.md, "Encoder-only training").
        """
        cond = self.embed(q, alpha) if cond is None else cond
        z_hat_s = round_ste(z_s, self.z_medians())
        z_likelihoods = z_likelihoods_ste(self.entropy_bottleneck, z_hat_s)
        scales, means = self.y_parameters(y_s, *self.h_s(z_hat_s * self.inv_hyper_gain(q, alpha)))
        y_hat_s = round_ste(y_s, means)
        gc = self.gaussian_conditional
        y_likelihoods = gc.likelihood_lower_bound(gc._likelihood(y_hat_s, scales, means))
        x_hat = self.g_s(y_hat_s * self.inv_gain(q, alpha), cond)
        return x_hat, {"y": y_likelihoods, "z": z_likelihoods}

    def gained_latents(self, x: Tensor, q: Tensor, alpha: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The unrounded latents ``(y_s, z_s)`` for float conditions (training; ``analyse`` takes codes)."""
        cond = self.embed(q, alpha) if cond is None else cond
        y_s = self.g_a(x, cond) * self.gain(q, alpha)
        return y_s, self.h_a(y_s) * self.hyper_gain(q, alpha)

    def forward(self, x: Tensor, q: Tensor, alpha: Tensor) -> dict:
        """Training/evaluation pass with noise (or STE) quantisation; returns x_hat and likelihoods."""
        cond = self.embed(q, alpha)
        y_s, z_s = self.gained_latents(x, q, alpha, cond)
        # Under a training autocast (odic.train.precision) only the transforms run in bf16: the
        # entropy models and the likelihoods stay in fp32, as the coder's tables are.
        with torch.autocast(x.device.type, enabled=False):
            y_s, z_s = y_s.float(), z_s.float()
            z_hat_s, z_likelihoods = self.entropy_bottleneck(z_s)
            scales, means = self.y_parameters(y_s, *self.h_s(z_hat_s * self.inv_hyper_gain(q, alpha)))
            _, y_likelihoods = self.gaussian_conditional(y_s, scales, means=means)
            # Straight-through rounding for the decoder input (better than noise; Minnen & Singh 2020).
            y_hat_s = round_ste(y_s, means)
        x_hat = self.g_s(y_hat_s * self.inv_gain(q, alpha), cond).float()
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    # ------------------------------------------------------------------ exact coding path
    def z_medians(self) -> Tensor:
        """Per-channel medians of the hyper-latent's distribution (its rounding offsets), (1, N, 1, 1)."""
        return self.entropy_bottleneck.quantiles[:, 0, 1].detach().reshape(1, -1, 1, 1)

    def entropy_parameters(self, z_hat_s: Tensor, quality_code: int, alpha_code: int) -> tuple[Tensor, Tensor]:
        """h_s's (scales, means) of y from the decoded hyper-latent, as integers at ``ACT_FRAC_BITS``.

        Exact integer arithmetic: the encoder and every decoder compute these from the same
        integers, so they agree bit for bit on any machine, thread count or device, which keeps
        entropy decoding in step.
        """
        ihg = self.inv_hyper_gain.interpolate_fixed(quality_code, alpha_code).double()
        z_fixed = torch.floor(to_fixed(z_hat_s) * ihg.view(1, -1, 1, 1) / float(1 << GAIN_FRAC_BITS))
        return self.h_s.forward_fixed(z_fixed)

    def coding_passes(self, height: int, width: int) -> list[Tensor]:
        """The masks of y's positions in coding order (each broadcastable to (1, M, H, W)): all at
        once, or the context's passes."""
        if self.context is None:
            return [torch.ones(1, 1, height, width, dtype=torch.bool)]
        return self.context.passes(height, width)

    def pass_parameters(self, n: int, mask: Tensor, values_fixed: Tensor | None, scales_fixed: Tensor,
                        means_fixed: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(indexes, float means, integer means) of coding pass ``n`` for one image, at the positions
        of its ``mask`` (expanded to y's shape), in (channel, row, column) order.

        ``values_fixed``: the values the passes before decoded (symbols + their means, integers at
        ``ACT_FRAC_BITS``), zero where nothing is decoded yet; without a context, unused.
        """
        if self.context is None:
            scales, means = scales_fixed[mask], means_fixed[mask]
        else:
            scales, means = self.context.pass_fixed(n, values_fixed, scales_fixed, means_fixed)
        indexes = scale_indexes_fixed(scales, self.gaussian_conditional.scale_table)
        return indexes, from_fixed(means), means

    @staticmethod
    def condition_tensors(quality_code: int, alpha_code: int, batch: int, device) -> tuple[Tensor, Tensor]:
        q = torch.full((batch,), quality_code / QUALITY_CODE_MAX, device=device)
        a = torch.full((batch,), alpha_code / ALPHA_CODE_MAX, device=device)
        return q, a

    @torch.no_grad()
    def analyse(self, x: Tensor, quality_code: int, alpha_code: int) -> tuple[Tensor, Tensor]:
        """The (gained) latents ``(y_s, z_s)`` the analysis transforms give a padded batch ``x``."""
        q, a = self.condition_tensors(quality_code, alpha_code, x.shape[0], x.device)
        cond = self.embed(q, a)
        y_s = run_inplace(self.g_a, x, cond) * self.gain(q, a)
        z_s = self.h_a(y_s) * self.hyper_gain(q, a)
        return y_s, z_s

    @torch.no_grad()
    def compress(self, x: Tensor, quality_code: int, alpha_code: int) -> dict:
        """Entropy-code a padded batch ``x`` (B, 3, H, W) in [0, 1]; H and W multiples of 64.

        Returns ``{"strings": [y_strings, z_strings], "shape": z's (h, w)}`` (CompressAI's contract).
        """
        y_s, z_s = self.analyse(x, quality_code, alpha_code)
        return self.compress_latents(y_s, z_s, quality_code, alpha_code)

    @torch.no_grad()
    def compress_latents(self, y_s: Tensor, z_s: Tensor, quality_code: int, alpha_code: int) -> dict:
        """Entropy-code given latents (from :meth:`analyse`, or refined by ``odic.refine``).

        The hyper-latent is rounded first and the entropy parameters of ``y`` come from the
        decoded ``z`` in exact integers, so any latents give a stream the decoder reads back.
        """
        z_s = z_s.float().cpu()
        z_strings = self.entropy_bottleneck.compress(z_s)
        z_hat_s = self.entropy_bottleneck.decompress(z_strings, z_s.shape[-2:])
        scales_fixed, means_fixed = self.entropy_parameters(z_hat_s, quality_code, alpha_code)
        y_s = y_s.float().cpu()
        y_strings = [self._encode_y(y_s[i:i + 1], scales_fixed[i:i + 1], means_fixed[i:i + 1])
                     for i in range(y_s.shape[0])]
        return {"strings": [y_strings, z_strings], "shape": tuple(z_s.shape[-2:])}

    def _encode_y(self, y_s: Tensor, scales_fixed: Tensor, means_fixed: Tensor) -> bytes:
        """One image's y in one rANS string, pass after pass (each pass's positions in (c, h, w) order)."""
        values_fixed = torch.zeros_like(means_fixed)
        all_symbols, all_indexes = [], []
        for n, mask in enumerate(self.coding_passes(*y_s.shape[-2:])):
            mask = mask.expand_as(y_s)
            indexes, means, pass_means_fixed = self.pass_parameters(n, mask, values_fixed, scales_fixed, means_fixed)
            symbols = torch.round(y_s[mask] - means)  # CompressAI's quantize(..., "symbols", means)
            values_fixed[mask] = symbols.double() * float(1 << ACT_FRAC_BITS) + pass_means_fixed
            all_symbols.append(symbols)
            all_indexes.append(indexes)
        return rans.encode(self.gaussian_conditional, torch.cat(all_symbols), torch.cat(all_indexes))

    @torch.no_grad()
    def decode_latents(self, strings: list, shape: tuple[int, int], quality_code: int,
                       alpha_code: int) -> tuple[Tensor, Tensor]:
        """Entropy-decode strings that may be hostile into the gained latents ``(y_hat_s, z_hat_s)``.

        rANS has no redundancy, so a CRC-valid stream with forged strings would decode to a silent
        garbage image. The encoder is deterministic (integer entropy parameters), so re-encoding
        the decoded symbols must give back the same bytes; anything else (random bytes, a string
        cut short or padded, data coded for another quality) raises ``FormatError``. Reads stay
        inside zero padding (:func:`guards.rans_padding`), and symbols are bounded before
        re-encoding (:data:`guards.MAX_SYMBOL`).
        """
        y_strings, z_strings = strings
        zh, zw = shape
        eb = self.entropy_bottleneck
        try:
            z_hat = eb.decompress(guards.padded(z_strings, self.config.N * zh * zw), shape)
            guards.check_symbol_range(z_hat - self.z_medians(), "z")
            if eb.compress(z_hat) != z_strings:
                raise FormatError("corrupted entropy-coded data (z string does not re-encode to itself)")
            scales_fixed, means_fixed = self.entropy_parameters(z_hat, quality_code, alpha_code)
            (y_string,) = y_strings
            y_hat = self._decode_y(y_string, scales_fixed, means_fixed)
        except FormatError:
            raise
        except (RuntimeError, ValueError, IndexError, OverflowError) as exc:
            raise FormatError(f"corrupted entropy-coded data ({type(exc).__name__})") from None
        return y_hat, z_hat

    def _decode_y(self, y_string: bytes, scales_fixed: Tensor, means_fixed: Tensor) -> Tensor:
        """Inverse of :meth:`_encode_y`, checked: bounded symbols that re-encode to ``y_string``."""
        gc = self.gaussian_conditional
        values_fixed = torch.zeros_like(means_fixed)
        decoder = rans.Decoder(gc, guards.padded([y_string], values_fixed.numel())[0])
        all_symbols, all_indexes = [], []
        for n, mask in enumerate(self.coding_passes(*values_fixed.shape[-2:])):
            mask = mask.expand_as(values_fixed)
            indexes, _, pass_means_fixed = self.pass_parameters(n, mask, values_fixed, scales_fixed, means_fixed)
            decoded = decoder.decode(indexes)
            guards.check_symbol_range(decoded, "y")
            values_fixed[mask] = decoded.double() * float(1 << ACT_FRAC_BITS) + pass_means_fixed
            all_symbols.append(decoded)
            all_indexes.append(indexes)
        if rans.encode(gc, torch.cat(all_symbols), torch.cat(all_indexes)) != y_string:
            raise FormatError("corrupted entropy-coded data (y string does not re-encode to itself)")
        # symbol + mean, each exact in float64; one rounding to float32, as symbols + float32 means gives
        return from_fixed(values_fixed)

    @torch.no_grad()
    def synthesize(self, y_hat_s: Tensor, quality_code: int, alpha_code: int,
                   device: str | torch.device = "cpu") -> Tensor:
        """Decoder transform from entropy-decoded (gained) latents; returns x_hat clamped to [0, 1].

        On the CPU it runs in fixed strips of one thread each (:mod:`.strips`), so the pixels do
        not depend on the thread count.
        """
        device = torch.device(device)
        q, a = self.condition_tensors(quality_code, alpha_code, y_hat_s.shape[0], device)
        y_hat = y_hat_s.to(device) * self.inv_gain(q, a)
        cond = self.embed(q, a)
        if device.type == "cpu":
            x_hat = synthesize_in_strips(self.g_s, y_hat, cond)
        else:
            x_hat = run_inplace(self.g_s, y_hat, cond)
        if not torch.isfinite(x_hat).all():
            raise FormatError("corrupted entropy-coded data (decoded values are not finite)")
        return x_hat.clamp_(0, 1)

    @torch.no_grad()
    def decompress(self, strings: list, shape: tuple[int, int], quality_code: int, alpha_code: int,
                   device: str | torch.device = "cpu") -> dict:
        """Inverse of :meth:`compress`, safe on hostile strings: ``{"x_hat": (B, 3, H, W) in [0, 1]}``.

        Raises ``odic.bitstream.FormatError`` for strings an encoder of this model cannot have written.
        """
        y_hat_s, _ = self.decode_latents(strings, shape, quality_code, alpha_code)
        return {"x_hat": self.synthesize(y_hat_s, quality_code, alpha_code, device)}
