"""NIfTI: RAS → LPS conversion, axis order, 4D volumes, byte input, bad files."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medlens.errors import ConfigError, CorruptFileError
from medlens.study import load_study
from medlens.testing.studies import ct_affine, ct_phantom, write_ct_nifti

GetFile = Callable[[str], Path]


def test_synthetic_ras_nifti_matches_the_lps_phantom(tmp_path: Path) -> None:
    path = write_ct_nifti(tmp_path / "ct.nii.gz", size=64)
    stored = np.asanyarray(nib.load(str(path)).dataobj)
    assert stored.shape == (64, 64, 24)  # (i toward R, j toward A, k)
    study = load_study(path, modality="CT")
    np.testing.assert_array_equal(study.pixels, ct_phantom(size=64))
    np.testing.assert_allclose(study.affine, ct_affine(size=64))
    assert study.pixel_spacing == pytest.approx((350 / 64, 350 / 64))
    assert study.slice_spacing == pytest.approx(5.0)
    assert study.modality == "CT" and study.source_format == "nifti"


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz", "example_nifti2.nii.gz"])
def test_every_voxel_lands_where_nibabel_says(name: str, nibabel_file: GetFile) -> None:
    """For sampled voxels of our (slice, row, col) grid, the LPS position from our affine,
    turned back into nibabel's RAS voxel index, holds the same value."""
    path = nibabel_file(name)
    image = nib.load(str(path))
    data = np.asanyarray(image.dataobj)
    data = data[..., 0] if data.ndim == 4 else data
    study = load_study(path)
    rng = np.random.default_rng(0)
    inverse = np.linalg.inv(image.affine)
    for _ in range(50):
        s, r, c = (int(rng.integers(0, n)) for n in study.pixels.shape)
        lps = study.affine @ [c, r, s, 1.0]
        ras = np.array([-lps[0], -lps[1], lps[2], 1.0])
        i, j, k = np.rint((inverse @ ras)[:3]).astype(int)
        assert study.pixels[s, r, c] == data[i, j, k]
    # the axes run toward Left, Posterior, Superior
    directions = study.affine[:3, :3]
    assert np.argmax(np.abs(directions[:, 0])) == 0 and directions[0, 0] > 0
    assert np.argmax(np.abs(directions[:, 1])) == 1 and directions[1, 1] > 0
    assert np.argmax(np.abs(directions[:, 2])) == 2 and directions[2, 2] > 0


def test_4d_volume_choice(nibabel_file: GetFile) -> None:
    path = nibabel_file("example4d.nii.gz")
    first = load_study(path)
    second = load_study(path, volume=1)
    assert first.metadata["num_volumes"] == 2 and second.metadata["volume"] == 1
    assert first.pixels.shape == second.pixels.shape == (24, 96, 128)
    assert not np.array_equal(first.pixels, second.pixels)
    with pytest.raises(ConfigError, match="2 volume"):
        load_study(path, volume=2)


def test_nifti_bytes_plain_and_gzipped(nibabel_file: GetFile) -> None:
    path = nibabel_file("anatomical.nii")
    reference = load_study(path)
    raw = path.read_bytes()
    for data in (raw, gzip.compress(raw)):
        study = load_study(data)
        assert study.source_format == "nifti"
        np.testing.assert_array_equal(study.pixels, reference.pixels)
        np.testing.assert_allclose(study.affine, reference.affine)
    nifti2 = load_study(nibabel_file("example_nifti2.nii.gz").read_bytes())
    assert nifti2.pixels.shape == (12, 20, 32)


def test_truncated_nifti_is_corrupt(tmp_path: Path, nibabel_file: GetFile) -> None:
    raw = nibabel_file("anatomical.nii").read_bytes()
    (tmp_path / "cut.nii").write_bytes(raw[:1000])
    with pytest.raises(CorruptFileError, match="cut.nii"):
        load_study(tmp_path / "cut.nii")
    (tmp_path / "cut.nii.gz").write_bytes(gzip.compress(raw)[:500])
    with pytest.raises(CorruptFileError):
        load_study(tmp_path / "cut.nii.gz")
