"""Benchmark datasets: a folder of images, or a labelled ImageNet-style set in one of three layouts.

* folder of images: human metrics only (unless ``classify`` asks for top-1 agreement);
* a folder plus ``labels.csv`` with header ``file,label`` (label = ImageNet-1k index 0..999);
* an ImageFolder tree (one sub-folder per class; label = index of the sorted folder names, as in
  torchvision, which for ImageNet wnid folders is the standard index);
* the official ILSVRC-2012 validation layout (``ILSVRC2012_val_00000001.JPEG`` ...) with its
  ground-truth file: a caffe-style ``val.txt`` (``file label``), or the devkit's
  ``ILSVRC2012_validation_ground_truth.txt`` (ILSVRC ids, mapped to the standard index through the
  devkit's ``meta.mat`` next to it).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".heic", ".avif")


class DatasetError(ValueError):
    """A dataset argument that does not describe readable images (message fits on one line)."""


@dataclass
class Item:
    """One image of a dataset: a stable key (used in results and the resume cache), its label."""

    key: str
    load: Callable[[], Image.Image] = field(repr=False)
    label: int | None = None


@dataclass
class Dataset:
    """A named list of images; ``classify`` says whether classifiers run on it."""

    name: str
    items: list[Item]
    labelled: bool = False
    classify: bool = False
    source: str = ""
    layout: str = "folder"

    def __len__(self) -> int:
        return len(self.items)


def _rgb_loader(path: Path) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")

    return load


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _read_labels_csv(path: Path) -> dict[str, int]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"file", "label"} <= set(reader.fieldnames):
            raise DatasetError(f"{path}: expected a CSV header 'file,label'")
        return {row["file"]: int(row["label"]) for row in reader}


def _read_val_txt(path: Path) -> dict[str, int]:
    labels = {}
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 2:
                labels[os.path.basename(parts[0])] = int(parts[1])
    return labels


def _read_devkit_ground_truth(path: Path, files: list[Path]) -> dict[str, int]:
    """Devkit ids (1-based, ILSVRC order) -> standard index (sorted wnids) via meta.mat."""
    meta = path.parent / "meta.mat"
    if not meta.exists():
        raise DatasetError(f"{path}: devkit ground truth needs meta.mat beside it to map ILSVRC ids")
    try:
        from scipy.io import loadmat
    except ImportError as exc:
        raise DatasetError("reading the devkit's meta.mat needs scipy: pip install scipy") from exc
    synsets = loadmat(str(meta), squeeze_me=True)["synsets"]
    leaves = [(int(s["ILSVRC2012_ID"]), str(s["WNID"])) for s in synsets if int(s["num_children"]) == 0]
    order = {wnid: i for i, wnid in enumerate(sorted(w for _, w in leaves))}
    to_index = {ilsvrc_id: order[wnid] for ilsvrc_id, wnid in leaves}
    with open(path) as fh:
        ids = [int(line) for line in fh if line.strip()]
    by_name = sorted(files, key=lambda p: p.name)
    if len(ids) < len(by_name):
        raise DatasetError(f"{path}: {len(ids)} labels for {len(by_name)} images")
    return {p.name: to_index[i] for p, i in zip(by_name, ids, strict=False)}


def load_dataset(name: str, spec: str, classify: bool | None = None) -> Dataset:
    """Open ``DIR`` or ``DIR:LABELS`` (labels.csv, val.txt or devkit ground truth); detect the layout."""
    folder, labels_path = spec, None
    if ":" in spec and not os.path.isdir(spec):
        folder, labels_path = spec.rsplit(":", 1)
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset '{name}': {root} is not a folder")
    if labels_path is None and (root / "labels.csv").exists():
        labels_path = str(root / "labels.csv")

    files = _images_in(root)
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if labels_path is not None:
        lp = Path(labels_path).expanduser()
        if not lp.exists():
            raise DatasetError(f"dataset '{name}': labels file {lp} not found")
        if lp.suffix.lower() == ".csv":
            labels, layout = _read_labels_csv(lp), "labels.csv"
        elif "ground_truth" in lp.name:
            labels, layout = _read_devkit_ground_truth(lp, files), "ilsvrc2012-val"
        else:
            labels, layout = _read_val_txt(lp), "ilsvrc2012-val"
        missing = [f for f in labels if not (root / f).exists()]
        if missing:
            raise DatasetError(f"dataset '{name}': {len(missing)} labelled files missing, e.g. {missing[0]}")
        items = [Item(f, _rgb_loader(root / f), lab) for f, lab in sorted(labels.items())]
        labelled = True
    elif not files and subdirs:
        items, layout, labelled = [], "imagefolder", True
        for index, sub in enumerate(subdirs):
            items += [Item(f"{sub.name}/{p.name}", _rgb_loader(p), index) for p in _images_in(sub)]
    else:
        items = [Item(p.name, _rgb_loader(p)) for p in files]
        layout, labelled = "folder", False
    if not items:
        raise DatasetError(f"dataset '{name}': no images found in {root}")
    return Dataset(name, items, labelled, labelled if classify is None else classify, str(root), layout)


SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")


def skimage_photos() -> Dataset:
    """The colour photos shipped inside scikit-image (no download): the bundled demo's dataset."""
    try:
        from skimage import data
    except ImportError as exc:
        raise DatasetError("the demo needs scikit-image: pip install 'odic[demo]'") from exc

    def loader(fn: str) -> Callable[[], Image.Image]:
        def load() -> Image.Image:
            arr = data.stereo_motorcycle()[0] if fn == "motorcycle" else getattr(data, fn)()
            return Image.fromarray(arr).convert("RGB")

        return load

    items = [Item(n, loader(n)) for n in SKIMAGE_PHOTOS]
    return Dataset("skimage-photos", items, labelled=False, classify=True, source="skimage.data",
                   layout="skimage")
