"""Numbers to compare against (docs/numbers.md): the paper's Table 1 and Fig. 4, the original papers'
published scores and EDSR's DIV2K validation score, as data.

All PSNR in dB on the Y channel (BT.601) with ``scale`` pixels shaved; SSIM MATLAB-style; except the DIV2K
validation numbers of Fig. 4 and ``DIV2K_VALID_EDSR_BASELINE``, which are EDSR-PyTorch's RGB metric with
``scale + 6`` pixels shaved (``metrics.edsr_psnr``, docs/protocol.md#edsr-metric).
"""
import pandas as pd

from pspl_nb.config import TEST_SETS

MODELS = ("srcnn", "vdsr", "drrn", "lapsrn", "edsr")

# The paper's Table 1 (x4): (PSNR, SSIM) per set, for "baseline" and "PSPL". Its baseline rows equal the
# original papers' published numbers (the EDSR column is the full 32x256 EDSR), so they were copied, not
# retrained; its PSPL rows came from the official code and benchmark preparation.
_T1 = {  # model: {set: (base psnr, base ssim, pspl psnr, pspl ssim)}
    "srcnn": {"Set5": (30.48, .8628, 30.64, .8692), "Set14": (27.49, .7503, 27.78, .7641),
              "B100": (26.90, .7101, 27.78, .7488), "Urban100": (24.52, .7221, 24.57, .7292)},
    "vdsr": {"Set5": (31.35, .8838, 31.51, .8860), "Set14": (28.02, .7674, 28.29, .7779),
             "B100": (27.29, .7251, 28.12, .7593), "Urban100": (25.18, .7524, 25.31, .7595)},
    "drrn": {"Set5": (31.68, .8888, 31.73, .9041), "Set14": (28.21, .7720, 28.29, .7993),
             "B100": (27.38, .7284, 28.23, .7827), "Urban100": (25.44, .7638, 25.54, .7854)},
    "lapsrn": {"Set5": (31.54, .8850, 31.66, .9026), "Set14": (28.19, .7720, 28.29, .7984),
               "B100": (27.32, .7270, 28.23, .7820), "Urban100": (25.21, .7560, 25.44, .7806)},
    "edsr": {"Set5": (32.46, .8968, 32.51, .9008), "Set14": (28.80, .7876, 28.92, .7952),
             "B100": (27.71, .7420, 28.63, .7762), "Urban100": (26.64, .8033, 26.63, .8052)},
}

# Published numbers of the original papers (PSNR, SSIM), x2 and x4.
PUBLISHED = {
    2: {"bicubic": [(33.66, .9299), (30.24, .8688), (29.56, .8431), (26.88, .8403)],
        "srcnn": [(36.66, .9542), (32.45, .9067), (31.36, .8879), (29.50, .8946)],
        "vdsr": [(37.53, .9587), (33.03, .9124), (31.90, .8960), (30.76, .9140)],
        "lapsrn": [(37.52, .9591), (32.99, .9124), (31.80, .8952), (30.41, .9103)],
        "drrn": [(37.74, .9591), (33.23, .9136), (32.05, .8973), (31.23, .9188)],
        "edsr_baseline": [(37.99, .9604), (33.57, .9175), (32.16, .8994), (31.98, .9272)]},
    4: {"bicubic": [(28.42, .8104), (26.00, .7027), (25.96, .6675), (23.14, .6577)],
        "srcnn": [(30.48, .8628), (27.50, .7513), (26.90, .7101), (24.52, .7221)],
        "vdsr": [(31.35, .8838), (28.01, .7674), (27.29, .7251), (25.18, .7524)],
        "lapsrn": [(31.54, .8852), (28.09, .7700), (27.32, .7275), (25.21, .7562)],
        "drrn": [(31.68, .8888), (28.21, .7720), (27.38, .7284), (25.44, .7638)],
        "edsr_baseline": [(32.09, .8938), (28.58, .7813), (27.57, .7357), (26.04, .7849)],
        "edsr": [(32.46, .8968), (28.80, .7876), (27.71, .7420), (26.64, .8033)]},
}

# EDSR-baseline on DIV2K validation 0801-0900 (EDSR-PyTorch's metric: RGB, shave = scale + 6).
DIV2K_VALID_EDSR_BASELINE = {2: 34.61, 3: 30.92, 4: 28.95}

# The paper's Fig. 4 (EDSR-baseline x2, DIV2K validation 0801-0900, one run per arm), read off the figure;
# EDSR-PyTorch's metric (``metric``), so a comparison must use the ``edsr_psnr_DIV2K_valid`` column.
FIG4 = dict(threshold=34.4, epochs_pspl=67, epochs_l1=128, text_pspl=70, text_l1=125,
            final_pspl=34.60, final_l1=34.55, noise=(0.1, 0.2), metric="edsr_psnr", images=100,
            column="edsr_psnr_DIV2K_valid")

# Images per test set: Table 1 is scored on all of them (``RunConfig.test_sets``), never on a subset.
SET_SIZES = {"Set5": 5, "Set14": 14, "B100": 100, "Urban100": 100}


def paper_table1() -> pd.DataFrame:
    """The paper's Table 1 (x4) in long form: model, set, baseline/PSPL PSNR and SSIM, and PSPL's claimed gain."""
    rows = [dict(model=m, set=s, paper_base_psnr=v[0], paper_base_ssim=v[1], paper_pspl_psnr=v[2],
                 paper_pspl_ssim=v[3]) for m, sets in _T1.items() for s, v in sets.items()]
    t = pd.DataFrame(rows)
    t["paper_gain_psnr"] = (t.paper_pspl_psnr - t.paper_base_psnr).round(2)
    t["paper_gain_ssim"] = (t.paper_pspl_ssim - t.paper_base_ssim).round(4)
    return t


def published(scale: int) -> pd.DataFrame:
    """Published PSNR/SSIM of the original papers at ``scale`` (2 or 4): model, set, psnr, ssim."""
    return pd.DataFrame([dict(model=m, set=s, psnr=p, ssim=q) for m, vals in PUBLISHED[scale].items()
                         for s, (p, q) in zip(TEST_SETS, vals)])
