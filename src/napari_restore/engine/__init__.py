"""Machinery both tasks share: tiling and blending, model files, stacks.

Nothing here imports Qt or napari: the engine runs on GPU servers without a GUI stack.
"""
