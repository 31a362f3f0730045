"""The lowest layer: progress reports, devices, array checks and dtype casting (no task knowledge).

Nothing here imports Qt or napari, nor any other napari_restore package.
"""
