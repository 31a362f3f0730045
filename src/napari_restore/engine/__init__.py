"""Training and inference loops (generators), tiling, devices and model files.

Nothing here imports Qt or napari: the engine runs on GPU servers without a GUI stack.
"""
