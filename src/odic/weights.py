"""Model weights files: export from a training run, load by name or path, identify by hash.

A weights file is a ``torch.save`` dict::

    {"format": "odic-weights", "version": 1, "model_id": str, "config": ModelConfig dict,
     "state_dict": {...}  # float tensors in fp16, integer CDF tables as int32
     "meta": {...},       # how it was trained: command, data, steps, wall time
     "decodes": [{"model_id": str, "weights_hash": hex}, ...]}  # optional, see below

``decodes`` lists earlier models whose streams this file decodes bit for bit: an encoder-only
retrain (``odic train --encoder-only``) keeps every tensor the decoder reads, and ``odic export
--same-decoder-as OLD`` checks that before it records OLD there. Upgrading the bundled model
then never orphans a file written with the previous one.

The entropy models' CDF tables are computed once at export from the fp16-rounded weights and
stored, so encoder and decoder read identical tables from the file instead of recomputing them.
``weights_hash`` (first 8 bytes of SHA-256 over the state dict) goes into every stream.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .bitstream import MAX_MODEL_ID, valid_model_id
from .fileio import write_bytes_atomic
from .model import ModelConfig, OdicModel

WEIGHTS_FORMAT = "odic-weights"
WEIGHTS_VERSION = 1
PACKAGE_WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "odic-base"


# What each shipped model is for, as `odic models` and `odic.list_models()` show it (measured figures:
# docs/results.md). A weights file installed by hand may carry its own line as meta["summary"].
MODEL_SUMMARIES = {
    "odic-base": "default: every observer and rate (odic-base-cc9100-s38515 with a larger encoder, trained "
                 "end to end)",
    "odic-base-cc9100-s38515": "the default until 2026-12-07, evening (channel-checkerboard context), kept so "
                               "that its files keep decoding",
    "odic-base-cb14000-s38515": "the default until 2026-12-07 (checkerboard context), kept so that its files "
                                "keep decoding",
    "odic-people": "tuned for people alone (channel-checkerboard context); odic-base is ahead for people "
                   "too since 2026-12-07, evening",
    "odic-people-cb9000-s36245": "odic-people until 2026-12-07 (checkerboard context), kept so that its files "
                                 "keep decoding",
    "odic-people-s36245": "odic-people until 2026-12-07 (no context model), kept so that its files keep decoding",
    "odic-base-s38515": "the default until 2026-12-07 (no context model), kept so that its files keep decoding",
    "odic-base-s29033": "the default until 2026-12-06, kept so that its files keep decoding",
}


@dataclass(frozen=True)
class ModelInfo:
    """One installed model: the name to pass to ``odic.load`` / ``--model`` and what its streams carry."""

    name: str
    model_id: str
    steps: int | None
    default: bool
    size_bytes: int
    summary: str
    path: Path


class ModelNotFound(FileNotFoundError):
    """Raised when neither an installed model of that name nor a weights file exists."""


def installed_models() -> dict[str, Path]:
    """Shipped models by name (file stem)."""
    return {p.stem: p for p in sorted(PACKAGE_WEIGHTS_DIR.glob("*.pt"))}


def list_models() -> list[ModelInfo]:
    """Every installed model, the default first (reads each file's header fields; about 10 MB each)."""
    infos = []
    for name, path in installed_models().items():
        payload = read_weights_file(path)
        meta = payload.get("meta", {})
        steps = meta.get("steps")
        infos.append(ModelInfo(name=name, model_id=payload["model_id"], steps=int(steps) if steps is not None else None,
                               default=name == DEFAULT_MODEL, size_bytes=path.stat().st_size,
                               summary=MODEL_SUMMARIES.get(name) or str(meta.get("summary", "")), path=path))
    return sorted(infos, key=lambda i: (not i.default, i.name))


def state_dict_hash(state_dict: dict[str, torch.Tensor]) -> bytes:
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes())
    return h.digest()[:8]


def _fp16_state(model: OdicModel) -> dict[str, torch.Tensor]:
    """Parameters in fp16; buffers as they are.

    Buffers are small constants that fp16 cannot hold: the likelihood bound (1e-9) and the GDN
    pedestals (2^-36) round to 0, and a model trained on from such a file loses its likelihood floor
    (likelihoods of 0, infinite rate, NaN gradients).
    """
    params = {k for k, _ in model.named_parameters()}
    return {k: (v.half() if k in params and v.is_floating_point() else v) for k, v in model.state_dict().items()}


def check_step_count(model_id: str, meta: dict) -> None:
    """Refuse an id like ``odic-base-s30033`` whose step count disagrees with ``meta["steps"]``.

    odic-base-s29033 shipped with a hand-added total 1000 short of its runs' sum; the id is what
    users read, so the two must not drift apart again.
    """
    m = re.search(r"-s(\d+)$", model_id)
    if m and "steps" in meta and int(m.group(1)) != int(meta["steps"]):
        raise ValueError(f"model id {model_id} says {m.group(1)} steps but meta says {meta['steps']}")


def decoder_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The entries of ``state`` that decoding reads: all but ``OdicModel.ENCODER_MODULES``."""
    return {k: v for k, v in state.items() if not OdicModel.is_encoder_key(k)}


def compatible_decodes(model: OdicModel, state: dict[str, torch.Tensor], earlier: str | Path) -> list[dict]:
    """``decodes`` entries for a new file whose decoder must equal the one in ``earlier``.

    Raises ``ValueError`` naming the first tensor that differs (or the config), so a model that
    would decode old streams differently can never claim them.
    """
    payload = read_weights_file(earlier)
    if ModelConfig(**payload["config"]).decoder_dict() != model.config.decoder_dict():
        raise ValueError(f"{earlier}: a different model configuration, its streams cannot be decoded by this one")
    old, new = decoder_state(payload["state_dict"]), decoder_state(state)
    for key in sorted(set(old) | set(new)):
        if key not in old or key not in new or old[key].dtype != new[key].dtype or not torch.equal(old[key], new[key]):
            raise ValueError(f"{earlier}: the decoder differs in {key}, its streams cannot be decoded by this model")
    entry = {"model_id": payload["model_id"], "weights_hash": state_dict_hash(payload["state_dict"]).hex()}
    return [entry] + [d for d in payload.get("decodes", []) if d != entry]


def _run_model_id(checkpoint: str | Path) -> str:
    """``run:FOLDER`` for a training checkpoint, FOLDER's spaces and odd characters as ``_``."""
    name = re.sub(r"[^!-~]", "_", Path(checkpoint).resolve().parent.name)
    return f"run:{name}"[:MAX_MODEL_ID]


def export_weights(model: OdicModel, path: str | Path, model_id: str, meta: dict | None = None,
                   same_decoder_as: str | Path | None = None) -> bytes:
    """Round weights to fp16, rebuild the CDF tables from the rounded weights and write the file.

    ``same_decoder_as``: an earlier weights file whose decoder this model must share exactly
    (encoder-only training); its streams are then listed as decodable (``decodes``).
    """
    if not valid_model_id(model_id):
        raise ValueError(f"model id {model_id!r}: 1 to {MAX_MODEL_ID} printable ASCII characters without spaces")
    check_step_count(model_id, meta or {})
    model = model.cpu().eval()
    half = _fp16_state(model)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
    model.update(force=True)
    state = _fp16_state(model)
    payload = {
        "format": WEIGHTS_FORMAT,
        "version": WEIGHTS_VERSION,
        "model_id": model_id,
        "config": model.config.to_dict(),
        "state_dict": state,
        "meta": meta or {},
    }
    if same_decoder_as is not None:  # checked before anything is written
        payload["decodes"] = compatible_decodes(model, state, same_decoder_as)
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_bytes_atomic(path, buf.getvalue(), force=True)  # the CLI refuses to overwrite without --force
    return state_dict_hash(state)


def resolve(name_or_path: str | os.PathLike | None) -> Path:
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    p = Path(name_or_path)
    if p.suffix and p.exists():
        return p
    models = installed_models()
    if str(name_or_path) in models:
        return models[str(name_or_path)]
    if p.exists():
        return p
    known = ", ".join(models) or "none"
    raise ModelNotFound(f"model '{name_or_path}' is not installed (installed: {known}) and is not a file")


def read_weights_file(path: str | Path) -> dict:
    """Read and check a weights file (or a training checkpoint ``last.pt``)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise ValueError(f"{path}: not an odic weights file ({type(exc).__name__})") from None
    if isinstance(payload, dict) and "model" in payload and "model_config" in payload:
        # A training checkpoint: usable for training init and quick evaluation.
        return {"format": WEIGHTS_FORMAT, "version": WEIGHTS_VERSION, "model_id": _run_model_id(path),
                "config": payload["model_config"], "state_dict": payload["model"], "meta": {"step": payload["step"]}}
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path}: not an odic weights file")
    if payload.get("version") != WEIGHTS_VERSION:
        raise ValueError(f"{path}: weights format version {payload.get('version')} is not supported")
    if not _valid_decodes(payload.get("decodes", [])):
        raise ValueError(f"{path}: malformed 'decodes' list (model_id and a 16-digit hex weights_hash each)")
    return payload


def _valid_decodes(decodes) -> bool:
    return isinstance(decodes, list) and all(
        isinstance(d, dict) and isinstance(d.get("model_id"), str) and isinstance(d.get("weights_hash"), str)
        and re.fullmatch(r"[0-9a-f]{16}", d["weights_hash"]) is not None for d in decodes
    )


def build_model(payload: dict) -> tuple[OdicModel, bytes]:
    cfg = ModelConfig(**payload["config"])
    model = OdicModel(cfg)
    state = payload["state_dict"]
    digest = state_dict_hash(state)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    # Training checkpoints carry no up-to-date CDF tables: build them (exported weights already have them).
    if payload["model_id"].startswith("run:"):
        model.update(force=True)
    return model.eval(), digest



_IDS_READ: dict[Path, tuple[float, frozenset[str]]] = {}


def _model_ids(path: Path) -> frozenset[str]:
    """The model ids whose streams the file at ``path`` decodes (its own and its ``decodes``), read once."""
    mtime = path.stat().st_mtime
    cached = _IDS_READ.get(path)
    if cached is None or cached[0] != mtime:
        payload = read_weights_file(path)
        ids = frozenset([payload["model_id"], *(d["model_id"] for d in payload.get("decodes", []))])
        _IDS_READ[path] = cached = (mtime, ids)
    return cached[1]


def installed_decoders(model_id: str) -> list[Path]:
    """Installed weights files that claim streams of ``model_id`` (the caller checks the weights hash)."""
    return [path for path in installed_models().values() if model_id in _model_ids(path)]
