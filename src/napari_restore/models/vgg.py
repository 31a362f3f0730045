"""VGG-19 features up to block 4 for the perceptual loss, without a torchvision dependency.

The layers are numbered as in torchvision's ``vgg19().features`` so that the standard ImageNet
checkpoint ``vgg19-dcbb9e9d.pth`` loads into :class:`VGG19Features` by its key names
(``features.0.weight`` ...). torchvision's numbering of VGG-19 (configuration "E", Simonyan &
Zisserman 2015):

====  ========  ====  ========  ====  ========  ====  ========
idx   layer     idx   layer     idx   layer     idx   layer
====  ========  ====  ========  ====  ========  ====  ========
0     conv1_1   5     conv2_1   10    conv3_1   19    conv4_1
1     relu1_1   6     relu2_1   11    relu3_1   20    relu4_1
2     conv1_2   7     conv2_2   12    conv3_2   21    conv4_2
3     relu1_2   8     relu2_2   13    relu3_2   22    relu4_2
4     pool1     9     pool2     14    conv3_3   23    conv4_3
                                15    relu3_3   24    relu4_3
                                16    conv3_4   25    conv4_4
                                17    relu3_4   26    relu4_4
                                18    pool3     27    pool4
====  ========  ====  ========  ====  ========  ====  ========

The perceptual features are the output of ``features.24`` = **relu4_3**, i.e. conv4_3 followed
by its ReLU. The paper names "conv4_3"; in Keras/TensorFlow, where such losses are commonly
written, the layer ``block4_conv3`` includes its ReLU, so relu4_3 is the same activation.
Layers after index 24 are not built.

The checkpoint is a pickled zip written by ``torch.save``; it is read with
``torch.load(weights_only=True)``, which restores tensors only and executes no code.
``.safetensors`` files with the same keys are accepted too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from napari_restore.errors import RestoreInputError

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_HASH_PREFIX = "dcbb9e9d"  # first hex digits of the file's SHA-256 (torchvision's naming)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's VGG-19 "E" configuration through block 4: channels of each conv, "M" = max pool.
_CONFIG: tuple[int | str, ...] = (
    *(64, 64, "M"),
    *(128, 128, "M"),
    *(256, 256, 256, 256, "M"),
    *(512, 512, 512),
)
FEATURE_LAYER = 24  # index of relu4_3 in torchvision's numbering
FEATURE_NAME = "relu4_3"


def _build_layers() -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for item in _CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            cin = int(item)
    assert len(layers) == FEATURE_LAYER + 1
    return nn.Sequential(*layers)


def vgg19_feature_keys() -> list[str]:
    """State-dict keys of :class:`VGG19Features` (a subset of torchvision's ``vgg19``)."""
    return list(VGG19Features(load=False).state_dict().keys())


class VGG19Features(nn.Module):
    """Frozen VGG-19 feature extractor returning relu4_3 (``features.24``) activations.

    Input: ``(B, 1, H, W)`` grey or ``(B, 3, H, W)`` images with values in [0, 1]; grey is
    repeated to three channels, then normalised by the ImageNet mean and standard deviation.
    Output: ``(B, 512, H/8, W/8)``.

    Parameters
    ----------
    state_dict : mapping, optional
        Weights with torchvision's key names (``features.N.weight``/``bias``); extra keys (the
        classifier of the full checkpoint) are ignored.
    load : bool
        Internal: False builds the module with random weights (to list its keys).
    """

    def __init__(
        self, state_dict: Mapping[str, torch.Tensor] | None = None, *, load: bool = True
    ) -> None:
        super().__init__()
        self.features = _build_layers()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)
        if state_dict is not None:
            self.load_weights(state_dict)
        elif load:
            raise ValueError("VGG19Features needs weights; use load_vgg19_features()")
        self.requires_grad_(False)
        self.eval()

    def load_weights(self, state_dict: Mapping[str, torch.Tensor], source: str = "") -> None:
        """Copy the kept layers' weights from a torchvision-style state dict (shapes checked)."""
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        if missing:
            raise RestoreInputError(
                f"The VGG-19 weights {source or ''} lack {len(missing)} expected keys (e.g. "
                f"{missing[0]!r}); give torchvision's {VGG19_FILE} (keys 'features.N.weight')."
            )
        wrong = [k for k in own if tuple(state_dict[k].shape) != tuple(own[k].shape)]
        if wrong:
            k = wrong[0]
            raise RestoreInputError(
                f"The VGG-19 weights {source or ''} have {k} of shape "
                f"{tuple(state_dict[k].shape)}, expected {tuple(own[k].shape)}: not VGG-19."
            )
        self.load_state_dict({k: state_dict[k].to(torch.float32) for k in own}, strict=True)

    def train(self, mode: bool = True) -> VGG19Features:
        # Always frozen: a surrounding model.train() must not change it.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        return self.features(x)


class PerceptualLoss(nn.Module):
    """``mean((phi(prediction) - phi(target))**2)`` with phi = VGG-19 relu4_3 features.

    Parameters
    ----------
    features : VGG19Features
        The frozen feature extractor (see :func:`load_vgg19_features`).
    """

    def __init__(self, features: VGG19Features) -> None:
        super().__init__()
        self.vgg = features

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean squared feature difference (float32); gradients flow to ``prediction`` only."""
        with torch.no_grad():
            ft = self.vgg(target)
        fp = self.vgg(prediction)
        return torch.mean((fp.float() - ft.float()) ** 2)


def hub_checkpoint_path() -> Path:
    """Where torch hub keeps the checkpoint: ``torch.hub.get_dir()/checkpoints/vgg19-….pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def missing_weights_message(cache: Path | None = None) -> str:
    """The user-facing explanation of how to get the VGG-19 weights."""
    cache = cache or hub_checkpoint_path()
    return (
        "The perceptual loss needs the ImageNet VGG-19 weights, which were not found. Either: "
        f"(1) download {VGG19_URL} and save it as {cache} (the torch hub cache), or pass the "
        "file with --vgg-weights PATH (CLI) / the 'VGG-19 weights' option of the training dock; "
        "(2) allow the download where there is internet (--download-vgg, or download=True); or "
        "(3) set the perceptual weight to 0 (--perceptual-weight 0), which trains with the MAE "
        "loss alone and needs no weights."
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise RestoreInputError(f"VGG-19 weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        # weights_only=True: the restricted unpickler restores tensors and never runs code.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RestoreInputError(
            f"Could not read VGG-19 weights from {path}: {type(err).__name__}: {err}. Give "
            f"torchvision's {VGG19_FILE} or a .safetensors file with the same keys."
        ) from err
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise RestoreInputError(f"{path} does not hold a state dict of tensors.")
    return dict(state)


def load_vgg19_features(
    weights: str | os.PathLike[str] | None = None, *, download: bool = False
) -> VGG19Features:
    """Build the frozen VGG-19 feature extractor and load ImageNet weights into it.

    Parameters
    ----------
    weights : path-like, optional
        A ``.pth`` state dict (torchvision's ``vgg19-dcbb9e9d.pth``, read with
        ``torch.load(weights_only=True)``) or a ``.safetensors`` file with the same keys. When
        not given, the torch hub cache (:func:`hub_checkpoint_path`) is used.
    download : bool
        When the weights are in neither place, download them from :data:`VGG19_URL` into the
        torch hub cache (the file's SHA-256 must start with ``dcbb9e9d``).

    Returns
    -------
    VGG19Features
        Frozen (``requires_grad`` False) and in eval mode, on the CPU.

    Raises
    ------
    RestoreInputError
        If no weights can be found (the message says how to get them) or they do not fit.
    """
    if weights is not None:
        path = Path(weights).expanduser()
    else:
        path = hub_checkpoint_path()
        if not path.is_file():
            if not download:
                raise RestoreInputError(missing_weights_message(path))
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                torch.hub.download_url_to_file(
                    VGG19_URL, str(path), hash_prefix=VGG19_HASH_PREFIX, progress=True
                )
            except Exception as err:
                raise RestoreInputError(
                    f"Downloading {VGG19_URL} failed ({type(err).__name__}: {err}). "
                    + missing_weights_message(path)
                ) from err
    model = VGG19Features(state_dict=None, load=False)
    model.load_weights(_read_state_dict(path), source=f"in {path}")
    return model
