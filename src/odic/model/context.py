"""Context models: y coded in passes, each informed by the values the passes before it decoded.

* ``checkerboard`` (He et al., CVPR 2021). The latent's positions are split like a checkerboard.
  *Anchors* ((row + col) even) are coded with the hyperprior's (scales, means) alone, the other
  half next, with (scales, means) refined from the hyperprior's and from the decoded anchors
  around it (a 5x5 convolution of the anchors, the other half zeroed). Two passes instead of one
  per position (a serial autoregressive context), so decoding stays fast.
* ``channel-checkerboard`` (ELIC, He et al., CVPR 2022). The channels are also split, into
  uneven slices coded one after the other, each slice a checkerboard of its own: a slice's
  parameters are refined from every channel of the slices before it (a 3x3 convolution) and, at
  its non-anchors, from its own anchors. The channels go into slices in ``channel_order``, a
  permutation stored with the weights: training on the latents of frozen transforms puts the
  channels that cost the most bits first, so that the later slices learn from them.

Every refinement is a residual on the hyperprior's parameters whose last layer starts at zero, so
a new context codes exactly like the hyperprior alone and training can only take bits away. Like
the hyper-synthesis, the refinement runs in exact integer arithmetic when coding
(:func:`odic.entropy.fixed_matmul`), so encoder and decoder agree on every index on any machine:
each pass is computed at its own positions only, as float64 matrix products over gathered taps.
The float path (``forward``) is what training uses; it rounds each value around the means its
pass codes it with (straight-through), as the coder does.
"""

from __future__ import annotations

from functools import partial
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..derived import derived
from ..entropy import fixed_matmul, fixed_weights

SPATIAL_KERNEL = 5
CHANNEL_KERNEL = 3


def round_ste(x: Tensor, offset: Tensor) -> Tensor:
    """``round(x - offset) + offset`` forward, identity gradient (straight-through rounding)."""
    return x + (torch.round(x - offset) + offset - x).detach()


def anchor_mask(height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
    """(1, 1, H, W) bool: True at the anchors, the positions coded first."""
    rows = torch.arange(height, device=device).view(-1, 1)
    cols = torch.arange(width, device=device).view(1, -1)
    return ((rows + cols) % 2 == 0).view(1, 1, height, width)


#: The taps of the spatial kernel that fall on anchors when centred on a non-anchor.
ANCHOR_TAPS = [(dy, dx) for dy in range(SPATIAL_KERNEL) for dx in range(SPATIAL_KERNEL) if (dy + dx) % 2 == 1]
#: Every tap of the channel kernel (the earlier slices are decoded everywhere).
CHANNEL_TAPS = [(dy, dx) for dy in range(CHANNEL_KERNEL) for dx in range(CHANNEL_KERNEL)]


def _gather(values: Tensor, positions: Tensor, kernel: int, taps: list[tuple[int, int]]) -> Tensor:
    """(C * len(taps), P): ``values`` (C, H, W) at the taps around each of the P ``positions`` (H, W)."""
    height, width = values.shape[-2:]
    padded = F.pad(values, [kernel // 2] * 4)
    return torch.cat([padded[:, dy:dy + height, dx:dx + width][:, positions] for dy, dx in taps])


def _tap_matrix(conv: nn.Conv2d, taps: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
    """A convolution's integer (weight, bias) with the weight (Cout, Cin, k, k) as the matrix
    (Cout, Cin * len(taps)) that multiplies :func:`_gather` (built once per parameter version)."""

    def build() -> tuple[Tensor, Tensor]:
        w, b = fixed_weights(conv)
        return torch.cat([w[:, :, dy, dx] for dy, dx in taps], dim=1), b

    return derived(conv, f"taps-{len(taps)}", (conv.weight, conv.bias), build)


class ParameterRefinement(nn.ModuleList):
    """1x1 layers, ReLU between: (contexts, scales, means) -> refined (scales, means), as a residual
    whose last layer starts at zero."""

    def __init__(self, widths: tuple[int, ...]):
        super().__init__([nn.Conv2d(a, b, 1) for a, b in pairwise(widths)])
        nn.init.zeros_(self[-1].weight)
        nn.init.zeros_(self[-1].bias)

    def forward(self, x: Tensor, scales: Tensor, means: Tensor) -> tuple[Tensor, Tensor]:
        for i, layer in enumerate(self):
            x = layer(x)
            if i < len(self) - 1:
                x = F.relu(x)
        d_scales, d_means = x.chunk(2, dim=1)
        return scales + d_scales, means + d_means

    def forward_fixed(self, columns: Tensor, scales: Tensor, means: Tensor,
                      zero_rows: int = 0) -> tuple[Tensor, Tensor]:
        """Exact path over columns (Cin, P) of integers; ``scales``, ``means``: (C, P).

        ``zero_rows``: how many leading input channels are zero and left out of ``columns`` (a
        context not read yet): their weights are skipped, which changes no integer.
        """
        x = columns
        for n, layer in enumerate(self):
            skip = zero_rows if n == 0 else 0
            w, b = derived(layer, f"matrix-{skip}", (layer.weight, layer.bias), partial(_matrix, layer, skip))
            x = fixed_matmul(w, b, x, relu=n < len(self) - 1)
        d_scales, d_means = x.chunk(2)
        return scales + d_scales, means + d_means


def _matrix(layer: nn.Conv2d, skip: int) -> tuple[Tensor, Tensor]:
    """A 1x1 convolution's integer (weight, bias), the weight as a matrix without its first ``skip`` columns."""
    w, b = fixed_weights(layer)
    return w[:, skip:, 0, 0].contiguous(), b


class CheckerboardContext(nn.Module):
    """Two passes: anchors with h_s's (scales, means), then the rest refined from the anchors."""

    def __init__(self, M: int):
        super().__init__()
        self.context = nn.Conv2d(M, M, SPATIAL_KERNEL, padding=SPATIAL_KERNEL // 2)
        self.layers = ParameterRefinement((3 * M, 2 * M, 2 * M, 2 * M))  # (context, scales, means) in

    def passes(self, height: int, width: int) -> list[Tensor]:
        """The masks of y's positions in coding order, each broadcastable to (1, M, H, W)."""
        anchors = anchor_mask(height, width)
        return [anchors, ~anchors]

    def forward(self, y_s: Tensor, scales: Tensor, means: Tensor) -> tuple[Tensor, Tensor]:
        """Float (scales, means) of every y; the anchors are read rounded as the coder rounds them."""
        mask = anchor_mask(*y_s.shape[-2:], device=y_s.device)
        anchors = torch.where(mask, round_ste(y_s, means), torch.zeros_like(y_s))
        c_scales, c_means = self.layers(torch.cat([self.context(anchors), scales, means], dim=1), scales, means)
        return torch.where(mask, scales, c_scales), torch.where(mask, means, c_means)

    @torch.no_grad()
    def pass_fixed(self, n: int, values_fixed: Tensor, scales_fixed: Tensor,
                   means_fixed: Tensor) -> tuple[Tensor, Tensor]:
        """Exact (scales, means) at pass ``n``'s positions, flat in (channel, row, column) order, from
        h_s's (integers at ``ACT_FRAC_BITS``, float64, (1, M, H, W)) and the values the passes before
        it decoded (``values_fixed``, zero elsewhere). Pass 1 reads only the anchor taps: a quarter
        of the dense convolution's work."""
        height, width = values_fixed.shape[-2:]
        anchors = anchor_mask(height, width)[0, 0]
        if n == 0:
            return scales_fixed[0][:, anchors].reshape(-1), means_fixed[0][:, anchors].reshape(-1)
        rest = ~anchors
        w, b = _tap_matrix(self.context, ANCHOR_TAPS)
        x = fixed_matmul(w, b, _gather(values_fixed[0], rest, SPATIAL_KERNEL, ANCHOR_TAPS), relu=False)
        scales, means = scales_fixed[0][:, rest], means_fixed[0][:, rest]
        refined_scales, refined_means = self.layers.forward_fixed(torch.cat([x, scales, means]), scales, means)
        return refined_scales.reshape(-1), refined_means.reshape(-1)


def slice_sizes(M: int) -> tuple[int, ...]:
    """ELIC's uneven slices, scaled to M: small ones first (they inform the rest), e.g. 16, 16, 32, 96."""
    first = M // 10
    return (first, first, 2 * first, M - 4 * first)


class ChannelCheckerboardContext(nn.Module):
    """Channel slices in ``channel_order``, each coded as a checkerboard (2 passes per slice)."""

    def __init__(self, M: int):
        super().__init__()
        self.sizes = slice_sizes(M)
        self.register_buffer("channel_order", torch.arange(M))
        starts = [sum(self.sizes[:k]) for k in range(len(self.sizes))]
        self.starts = starts
        # Slice k: its anchors (5x5, the non-anchors' spatial context) and the slices before it (3x3).
        self.spatial = nn.ModuleList(
            [nn.Conv2d(s, 2 * s, SPATIAL_KERNEL, padding=SPATIAL_KERNEL // 2) for s in self.sizes])
        self.channel = nn.ModuleList(
            [nn.Conv2d(start, 2 * s, CHANNEL_KERNEL, padding=CHANNEL_KERNEL // 2)
             for s, start in zip(self.sizes[1:], starts[1:], strict=True)])
        self.refine = nn.ModuleList(
            [ParameterRefinement(((6 if k else 4) * s, max(4 * s, 128), max(3 * s, 96), 2 * s))
             for k, s in enumerate(self.sizes)])

    def slice_channels(self, k: int, device: torch.device | str | None = None) -> Tensor:
        """Slice ``k``'s channels, on ``device`` (the coder's integer path runs on the CPU wherever
        the model is)."""
        return self.channel_order[self.starts[k]:self.starts[k] + self.sizes[k]].to(device)

    def set_channel_order(self, order: Tensor) -> None:
        """Which channels go into which slice (a permutation of range(M)); before training only."""
        if not torch.equal(torch.sort(order).values, torch.arange(len(self.channel_order))):
            raise ValueError("channel order must be a permutation of the latent's channels")
        self.channel_order.copy_(order)

    def passes(self, height: int, width: int) -> list[Tensor]:
        anchors = anchor_mask(height, width)
        masks = []
        for k in range(len(self.sizes)):
            in_slice = torch.zeros(1, len(self.channel_order), 1, 1, dtype=torch.bool)
            in_slice[0, self.slice_channels(k, "cpu")] = True
            masks += [in_slice & anchors, in_slice & ~anchors]
        return masks

    def _inputs(self, k: int, spatial: Tensor, previous: Tensor | None, scales: Tensor, means: Tensor) -> Tensor:
        parts = [spatial] if previous is None else [spatial, self.channel[k - 1](previous)]
        return torch.cat([*parts, scales, means], dim=1)

    def forward(self, y_s: Tensor, scales: Tensor, means: Tensor) -> tuple[Tensor, Tensor]:
        """Float (scales, means) of every y, slice after slice; each slice's values are rounded around
        the means the coder uses for them before later slices read them (straight-through)."""
        mask = anchor_mask(*y_s.shape[-2:], device=y_s.device)
        values, out_scales, out_means = [], [], []
        for k in range(len(self.sizes)):
            idx = self.slice_channels(k)
            y_k, s_k, m_k = y_s[:, idx], scales[:, idx], means[:, idx]
            previous = torch.cat(values, dim=1) if k else None
            no_spatial = y_k.new_zeros(y_k.shape[0], 2 * y_k.shape[1], *y_k.shape[2:])
            a_scales, a_means = self.refine[k](self._inputs(k, no_spatial, previous, s_k, m_k), s_k, m_k)
            anchors = torch.where(mask, round_ste(y_k, a_means), torch.zeros_like(y_k))
            spatial = self.spatial[k](anchors) * ~mask
            n_scales, n_means = self.refine[k](self._inputs(k, spatial, previous, s_k, m_k), s_k, m_k)
            k_scales, k_means = torch.where(mask, a_scales, n_scales), torch.where(mask, a_means, n_means)
            values.append(round_ste(y_k, k_means))
            out_scales.append(k_scales)
            out_means.append(k_means)
        inverse = torch.argsort(self.channel_order)
        return torch.cat(out_scales, dim=1)[:, inverse], torch.cat(out_means, dim=1)[:, inverse]

    @torch.no_grad()
    def pass_fixed(self, n: int, values_fixed: Tensor, scales_fixed: Tensor,
                   means_fixed: Tensor) -> tuple[Tensor, Tensor]:
        """Exact (scales, means) at pass ``n``'s positions (slice ``n // 2``, anchors when ``n`` is
        even), flat in (channel, row, column) order; arguments as for the checkerboard. An anchor
        pass has no spatial context yet: its zero rows are left out of the product."""
        k, non_anchors = divmod(n, 2)
        height, width = values_fixed.shape[-2:]
        anchors = anchor_mask(height, width)[0, 0]
        positions = ~anchors if non_anchors else anchors
        idx = self.slice_channels(k, "cpu")
        values = values_fixed[0]
        scales, means = scales_fixed[0][idx][:, positions], means_fixed[0][idx][:, positions]
        parts = []
        if non_anchors:
            w, b = _tap_matrix(self.spatial[k], ANCHOR_TAPS)
            parts.append(fixed_matmul(w, b, _gather(values[idx], positions, SPATIAL_KERNEL, ANCHOR_TAPS), relu=False))
        if k:
            w, b = _tap_matrix(self.channel[k - 1], CHANNEL_TAPS)
            previous = values[self.channel_order[:self.starts[k]].cpu()]
            parts.append(fixed_matmul(w, b, _gather(previous, positions, CHANNEL_KERNEL, CHANNEL_TAPS), relu=False))
        k_scales, k_means = self.refine[k].forward_fixed(torch.cat([*parts, scales, means]), scales, means,
                                                         zero_rows=0 if non_anchors else 2 * len(idx))
        in_channel_order = torch.argsort(idx)  # the slice's rows as the pass's mask lists them
        return k_scales[in_channel_order].reshape(-1), k_means[in_channel_order].reshape(-1)


#: The context models by name (``ModelConfig.context``; "none" is the hyperprior alone).
CONTEXT_MODELS = {"checkerboard": CheckerboardContext, "channel-checkerboard": ChannelCheckerboardContext}
