"""KiTS19's on-disk layout, MLPerf's preprocessing, and a generated mini data set in that layout.

Layout (the KiTS19 challenge repository's `data/` folder, and what this reads):

    <root>/case_00000/imaging.nii.gz        CT volume in Hounsfield units (nibabel reads it)
    <root>/case_00000/segmentation.nii.gz   labels: 0 background, 1 kidney, 2 tumour
    <root>/evaluation_cases.txt             optional: the case ids held out for evaluation

MLPerf trains on 168 cases and evaluates on 42 fixed ones; put the reference implementation's
list of evaluation cases in `evaluation_cases.txt` (one id such as `case_00000` per line).
Without the file every fifth case is held out (also 168/42 on the 210 KiTS19 cases).

Preprocessing is MLPerf's (`preprocess_dataset.py` of the reference): resample to the target
spacing of 1.6 x 1.2 x 1.2 mm, clip to [-79, 304] HU, normalise with mean 101.0 and standard
deviation 76.9, and pad every axis to at least the training patch size.

The mini generator draws CT-like volumes at the target spacing: a body of soft tissue and fat
in air, a liver-like distractor organ as bright as a kidney, two kidneys (ellipsoids of random
size, position and orientation) and, in most cases, a tumour blob growing out of one kidney,
darker than the kidney but brighter than soft tissue; then smooth intensity bias and noise.
Telling kidney from liver takes shape and position, not intensity alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlpace.errors import MlpaceError

TARGET_SPACING = (1.6, 1.2, 1.2)
CLIP_HU = (-79.0, 304.0)
MEAN_HU, STD_HU = 101.0, 76.9
EVAL_LIST = "evaluation_cases.txt"
MINI_VERSION = 2


# ----------------------------------------------------------------------------- loader
def list_cases(root: Path) -> tuple[list[Path], list[Path]]:
    """(training case folders, evaluation case folders) of a KiTS19-layout data set."""
    root = Path(root)
    cases = sorted(d for d in root.glob("case_*") if (d / "segmentation.nii.gz").is_file())
    if not cases:
        raise MlpaceError(f"no KiTS19 cases at {root} (expected case_XXXXX/imaging.nii.gz "
                          "and segmentation.nii.gz)")
    eval_file = root / EVAL_LIST
    if eval_file.is_file():
        held_out = {line.strip() for line in eval_file.read_text().splitlines() if line.strip()}
        unknown = held_out - {c.name for c in cases}
        if unknown:
            raise MlpaceError(f"{eval_file} names cases missing from {root}: {', '.join(sorted(unknown)[:3])}")
    else:
        held_out = {c.name for i, c in enumerate(cases) if i % 5 == 0}
    return [c for c in cases if c.name not in held_out], [c for c in cases if c.name in held_out]


def read_case(case: Path) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """(image in HU as float32, labels as uint8, voxel spacing in mm) of one case folder."""
    import nibabel as nib
    try:
        image = nib.load(str(case / "imaging.nii.gz"))
        label = nib.load(str(case / "segmentation.nii.gz"))
        x = np.asarray(image.dataobj, dtype=np.float32)
        y = np.asarray(label.dataobj).astype(np.uint8)
    except (OSError, ValueError, EOFError) as err:
        raise MlpaceError(f"cannot read KiTS19 case {case}: {err}") from None
    if x.shape != y.shape:
        raise MlpaceError(f"{case}: image {x.shape} and segmentation {y.shape} differ in shape")
    return x, y, tuple(float(z) for z in image.header.get_zooms()[:3])


def preprocess(x: np.ndarray, y: np.ndarray, spacing: tuple[float, ...], min_shape: tuple[int, ...]):
    """MLPerf's preprocessing of one case: resample, clip, normalise, pad (float32, uint8)."""
    import torch
    import torch.nn.functional as F
    xt, yt = torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None]
    if not np.allclose(spacing, TARGET_SPACING):
        shape = [max(1, round(n * s / t)) for n, s, t in zip(x.shape, spacing, TARGET_SPACING)]
        xt = F.interpolate(xt, size=shape, mode="trilinear", align_corners=True)
        yt = F.interpolate(yt.float(), size=shape, mode="nearest").to(torch.uint8)
    xt = (xt.clamp(*CLIP_HU) - MEAN_HU) / STD_HU
    pad = []
    for n, m in zip(reversed(xt.shape[2:]), reversed(min_shape)):   # F.pad: last axis first
        extra = max(0, m - n)
        pad += [extra // 2, extra - extra // 2]
    if any(pad):
        xt = F.pad(xt, pad, value=(CLIP_HU[0] - MEAN_HU) / STD_HU)   # air, as clipped
        yt = F.pad(yt, pad, value=0)
    return xt[0, 0].numpy(), yt[0, 0].numpy()


def load_split(cases: list[Path], min_shape: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Preprocessed (image, label) pairs of the given cases, held in memory."""
    return [preprocess(*read_case(c), min_shape) for c in cases]


# ----------------------------------------------------------------------------- generator
def _ellipsoid(grid, centre, radii, rotation) -> np.ndarray:
    """Normalised squared distance to an ellipsoid's centre (<= 1 inside)."""
    offsets = np.stack([g - c for g, c in zip(grid, centre)], axis=-1) @ rotation
    return sum((offsets[..., i] / radii[i]) ** 2 for i in range(3))


def _rotation(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    q, _ = np.linalg.qr(np.eye(3) + rng.uniform(-max_angle, max_angle, (3, 3)))
    return q


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """A smooth random field (a coarse grid upsampled), for bias and blob shapes."""
    import torch
    import torch.nn.functional as F
    coarse = torch.from_numpy(rng.normal(0, 1, (1, 1, 4, 4, 4)).astype(np.float32))
    return scale * F.interpolate(coarse, size=shape, mode="trilinear", align_corners=True)[0, 0].numpy()


def draw_case(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One CT-like volume in HU and its labels (0 background, 1 kidney, 2 tumour)."""
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    d, h, w = shape
    image = np.full(shape, -1000.0, dtype=np.float32)                  # air
    body = _ellipsoid(grid, (d / 2, h / 2, w / 2), (d * 0.6, h * 0.46, w * 0.48), np.eye(3))
    image[body <= 1] = -100.0                                          # fat
    image[body <= 0.75] = rng.uniform(30, 55)                          # soft tissue
    liver_r = np.array([d * rng.uniform(0.2, 0.3), h * rng.uniform(0.14, 0.2), w * rng.uniform(0.14, 0.2)])
    liver_c = (d * rng.uniform(0.35, 0.65), h * rng.uniform(0.2, 0.3), w * rng.uniform(0.3, 0.7))
    image[_ellipsoid(grid, liver_c, liver_r, _rotation(rng, 0.4)) <= 1] = rng.uniform(130, 190)
    label = np.zeros(shape, dtype=np.uint8)
    kidney_hu = rng.uniform(150, 210)
    kidneys = []
    for side in (0.3, 0.7):                                            # left and right kidney
        r = np.array([d * rng.uniform(0.16, 0.24), h * rng.uniform(0.11, 0.15), w * rng.uniform(0.09, 0.12)])
        c = (d * rng.uniform(0.4, 0.6), h * rng.uniform(0.58, 0.7), w * (side + rng.uniform(-0.05, 0.05)))
        inside = _ellipsoid(grid, c, r, _rotation(rng, 0.5)) <= 1
        image[inside] = kidney_hu
        label[inside] = 1
        kidneys.append((c, r))
    if rng.random() < 0.85:                                            # most KiTS19 cases have a tumour
        (c, r) = kidneys[int(rng.integers(0, 2))]
        direction = rng.normal(0, 1, 3)
        direction /= np.linalg.norm(direction)
        tc = np.array(c) + direction * r * rng.uniform(0.6, 1.0)
        tr = rng.uniform(0.6, 0.95) * r.mean() * np.ones(3)
        blob = _ellipsoid(grid, tc, tr, np.eye(3)) + _smooth_field(rng, shape, 0.25) <= 1
        image[blob] = kidney_hu - rng.uniform(45, 70)
        label[blob] = 2
    image += _smooth_field(rng, shape, 15.0)                           # scanner bias
    image += rng.normal(0, rng.uniform(12, 25), shape).astype(np.float32)
    return image, label


def write_case(folder: Path, image: np.ndarray, label: np.ndarray, spacing: tuple[float, ...]) -> None:
    import nibabel as nib
    folder.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*spacing, 1.0])
    nib.save(nib.Nifti1Image(np.round(image).astype(np.int16), affine), str(folder / "imaging.nii.gz"))
    nib.save(nib.Nifti1Image(label, affine), str(folder / "segmentation.nii.gz"))


def generate_mini(root: Path, train_cases: int = 32, eval_cases: int = 8,
                  shape: tuple[int, int, int] = (48, 48, 48), seed: int = 20190319,
                  spacing: tuple[float, float, float] = TARGET_SPACING) -> None:
    """Write the mini data set in KiTS19 layout (deterministic for a given seed); `spacing`
    other than the target's makes the loader resample, as it does real KiTS19 cases."""
    rng = np.random.default_rng(seed)
    names = [f"case_{i:05d}" for i in range(train_cases + eval_cases)]
    for name in names:
        write_case(Path(root) / name, *draw_case(rng, shape), spacing)
    (Path(root) / EVAL_LIST).write_text("\n".join(names[train_cases:]) + "\n")


def tiny_config(scale: str, root: Path) -> dict:
    """`mlpace validate`'s few steps: a handful of small generated cases; for the reference
    scale in KiTS19 layout at twice the target spacing (the loader resamples them to 64³),
    read as real data, by the MLPerf-size 3D U-Net (filters 32-320) on 64³ patches and
    windows instead of 128³ (its five halvings leave 2³ at the bottom; instance norm needs
    more than one voxel)."""
    if scale == "mini":
        return {"train_cases": 8, "eval_cases": 2, "volume_size": 32, "batch_size": 4}
    folder = Path(root) / "kits19"
    coarse = tuple(2 * s for s in TARGET_SPACING)
    generate_mini(folder, train_cases=2, eval_cases=1, shape=(32, 32, 32), seed=7, spacing=coarse)
    return {"data_path": str(folder), "patch_size": 64, "roi_size": 64}
