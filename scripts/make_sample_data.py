"""Rebuild the sample images shipped in ``src/napari_restore/data`` from ``../shared/data``.

Only files whose licenses allow redistribution inside a BSD-3 package are used (see
``src/napari_restore/data/README.md`` for sources and attributions). Run from the repository
root: ``python scripts/make_sample_data.py ../shared/data``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from napari_restore.io import read_image


def main(shared: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)

    def save(name: str, data: np.ndarray, axes: str) -> None:
        tifffile.imwrite(
            out / name,
            data,
            compression="zlib",
            compressionargs={"level": 9},
            metadata={"axes": axes},
        )
        print(name, data.shape, data.dtype, (out / name).stat().st_size // 1024, "KiB")

    save("maize_stem_confocal.tif", read_image(shared / "confocal_maize_stem_legland.tif"), "YX")
    save("nuclei_dsb2018.tif", read_image(shared / "nuclei_dsb2018_stardist.tif"), "YX")
    brain = read_image(shared / "brain_cortex_cells_cellfinder.tif")
    save("brain_cortex_plane.tif", brain[8], "YX")
    lund = read_image(shared / "lsfm_tribolium_nuclei_lund.tif")
    save("tribolium_lsfm_stack.tif", lund[38:62], "ZYX")
    save("smartspim_striped.tif", read_image(shared / "real_striped_smartspim_aind.png"), "YX")
    save(
        "cancer_cell_migration.tif",
        read_image(shared / "timelapse_cancer_cell_migration.tif"),
        "TYX",
    )


if __name__ == "__main__":
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    main(shared, Path(__file__).resolve().parents[1] / "src" / "napari_restore" / "data")
