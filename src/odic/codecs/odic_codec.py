"""The odic learned codec behind the same interface, through the public API only.

``alpha`` picks the observer (0 = human, 1 = machine, in between mixes); the setting is odic's
quality parameter in [0, 100]. ``refine=N`` fits each image's latents to the observer in N steps
(``refine_classifier`` scores a machine share, on random views shifted by up to ``refine_shift``
pixels when given; see :mod:`odic.refine`). ``refine_classifier`` is an observer name or the
user's own model as ``package.module.factory`` (dots, since ``:`` separates a spec's options).
The file counts whole, header included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PIL import Image

from .base import BenchCodec, CodecUnavailable, Setting, ensure_rgb, register_codec

if TYPE_CHECKING:
    from odic.observers import Observer


@register_codec("odic")
class OdicCodec(BenchCodec):
    """odic at observer ``alpha`` with the default (or named) model; imported lazily."""

    name = "odic"
    quality_range = (0.0, 100.0)
    settings = (0.0, 15.0, 30.0, 50.0, 70.0, 90.0)

    def __init__(self, settings: Sequence[Setting] | None = None, alpha: float | str = 0.0,
                 model: str | None = None, device: str = "cpu", refine: int | str = 0,
                 refine_classifier: str = "efficientnet_lite0", refine_shift: int | str | None = None,
                 **options: Any) -> None:
        super().__init__(settings, **options)
        try:
            self.refine = int(refine)
        except ValueError:
            raise ValueError(f"odic: refine must be a whole number of steps, got {refine!r}") from None
        try:
            self.refine_shift = None if refine_shift is None else int(refine_shift)
        except ValueError:
            raise ValueError(f"odic: refine_shift must be a whole number of pixels, got {refine_shift!r}") from None
        self.refine_classifier = str(refine_classifier)
        try:
            import odic
        except ImportError as exc:  # pragma: no cover - odic is this package
            raise CodecUnavailable(f"odic: cannot import the odic API ({exc})") from exc
        named = {"human": 0.0, "machine": 1.0}
        self.alpha = named.get(str(alpha).lower(), None)
        if self.alpha is None:
            self.alpha = float(alpha)
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"odic: alpha must be in [0, 1], got {alpha!r}")
        self.model = None if model in (None, "", "default") else str(model)
        try:
            self._codec = odic.load(self.model, device=device)
        except Exception as exc:  # noqa: BLE001 - any load failure means this codec is unavailable
            raise CodecUnavailable(f"odic: cannot load model {self.model or 'default'!r}: {exc}") from exc
        self._version = getattr(odic, "__version__", "unknown")
        # Built here, so that a wrong classifier fails the spec rather than every image; unused, the name.
        self._classifier = self._load_classifier(device) if self.refine and self.alpha else self.refine_classifier

    def _load_classifier(self, device: str) -> Observer:
        from odic.observers import ObserverUnavailable, create_observer

        try:
            return create_observer(self.refine_classifier, device)
        except KeyError as exc:
            raise ValueError(f"odic: refine_classifier: {exc.args[0]}") from None
        except ValueError as exc:
            raise ValueError(f"odic: refine_classifier: {exc}") from None
        except ObserverUnavailable as exc:
            raise CodecUnavailable(f"odic: refine classifier {self.refine_classifier!r} is unavailable: {exc}") from exc

    @property
    def model_id(self) -> str:
        """The immutable id of the loaded model (recorded in summary.json)."""
        return str(self._codec.model_id)

    def encode(self, image: Image.Image, setting: Setting) -> bytes:
        return self._codec.compress(ensure_rgb(image), quality=float(setting), observer=self.alpha,
                                    refine=self.refine, refine_classifier=self._classifier,
                                    refine_shift=self.refine_shift)

    def decode(self, data: bytes) -> Image.Image:
        return self._codec.decompress(data).convert("RGB")

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"alpha": self.alpha, "model": self.model_id}
        if self.refine:
            from odic.refine import DEFAULT_SHIFT, HUMAN_REFINE_METHOD, REFINE_METHOD, VIEWS_METHOD

            opts.update(refine=self.refine, refine_classifier=self.refine_classifier if self.alpha else None,
                        refine_method=REFINE_METHOD if self.alpha else HUMAN_REFINE_METHOD)
            if self.alpha:  # the shift in effect: the default and the same shift given are the same streams
                shift = DEFAULT_SHIFT if self.refine_shift is None else self.refine_shift
                opts["refine_shift"] = shift
                if shift:
                    opts["refine_views"] = VIEWS_METHOD
        return opts

    def version(self) -> str:
        return f"odic {self._version}, model {self.model_id}"

    def container_note(self) -> str:
        return "whole .odic file, header (magic, version, model id, quality, observer, size, CRC) included"
