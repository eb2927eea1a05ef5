"""Two ways to turn an HR benchmark image into an (LR, HR) pair; the choice alone moves PSNR.

- ``"modcrop"`` (the field's standard, EDSR/BasicSR/KAIR): crop HR to a multiple of the scale, LR =
  MATLAB bicubic of the cropped HR (or the LR file the source ships, which was made that way).
- ``"resample"`` (the official PSPL repository's ``mkdata.py``, docs/official_code.md#benchmark-preparation):
  when a side is not divisible by the scale, *resize* HR with PIL bicubic to the multiple of the scale below it
  (``w - w % s``), then LR = PIL bicubic of that HR. B100's 481 x 321 images are all resampled at every scale,
  so its ground truth itself changes.
"""
from pathlib import Path

import numpy as np
from PIL import Image

from pspl_nb.resize import imresize_uint8, modcrop

HR_PREPS = ("modcrop", "resample")


def _pil_resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC))


def prepare_pair(hr: np.ndarray, scale: int, hr_prep: str = "modcrop",
                 lr: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(LR, HR) from one HR image under protocol ``hr_prep``.

    Args:
        hr: uint8 (H, W, 3), values [0, 255].
        scale: 2, 3 or 4 (any int >= 1 works).
        hr_prep: "modcrop" or "resample" (module docstring).
        lr: uint8 (H // scale, W // scale, 3) from the source's LR folder; used by "modcrop" only (the
            official script always regenerates LR). None -> generated.
    Returns:
        lr uint8 (h, w, 3) and hr uint8 (h * scale, w * scale, 3).
    """
    if hr_prep not in HR_PREPS:
        raise ValueError(f"hr_prep must be one of {HR_PREPS}, got {hr_prep!r}")
    if hr.dtype != np.uint8 or hr.ndim != 3:
        raise ValueError(f"hr must be uint8 (H, W, C), got {hr.dtype} shape {hr.shape}")
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    if hr_prep == "resample":
        if hr.shape[:2] != (h * scale, w * scale):
            hr = _pil_resize(hr, w * scale, h * scale)
        return _pil_resize(hr, w, h), hr
    hr = modcrop(hr, scale)
    if lr is None:
        # out_shape, not scale=1/s: ceil(n * (1/3)) can round up past n / 3 in floating point.
        return imresize_uint8(hr, out_shape=(h, w)), hr
    if lr.shape[:2] != (h, w):
        raise ValueError(f"LR shape {lr.shape[:2]} does not match modcropped HR {hr.shape[:2]} / {scale}")
    return lr, hr


def prepare_folder(hr_dir, out_dir, scale: int, hr_prep: str = "modcrop") -> Path:
    """Write a folder of HR images into the kit's layout under protocol ``hr_prep``; returns ``out_dir``.

    Writes ``out_dir/HR/<stem>.png`` (the prepared HR: with "resample" it depends on the scale, hence one
    scale per output folder, as the official script's ``datasetx{s}``) and ``out_dir/LR_bicubic/X{s}/<stem>x{s}.png``.
    """
    hr_dir, out_dir = Path(hr_dir), Path(out_dir)
    files = sorted(p for p in hr_dir.iterdir() if p.suffix.lower() in {".png", ".bmp", ".jpg", ".jpeg", ".tif"})
    if not files:
        raise FileNotFoundError(f"no images in {hr_dir}")
    (out_dir / "HR").mkdir(parents=True, exist_ok=True)
    (out_dir / "LR_bicubic" / f"X{scale}").mkdir(parents=True, exist_ok=True)
    for path in files:
        lr, hr = prepare_pair(np.asarray(Image.open(path).convert("RGB")), scale, hr_prep)
        Image.fromarray(hr).save(out_dir / "HR" / f"{path.stem}.png")
        Image.fromarray(lr).save(out_dir / "LR_bicubic" / f"X{scale}" / f"{path.stem}x{scale}.png")
    return out_dir
