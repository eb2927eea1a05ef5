"""pspl-nb: a Jupyter reproduction kit for Pixel-level Self-Paced Learning for Super-Resolution.

Modules follow the data: ``data`` -> ``models`` -> ``ssim``/``pspl`` (loss) -> ``train`` ->
``metrics`` (evaluate) -> ``plots``/``widgets``.
"""

__version__ = "0.1.0"
