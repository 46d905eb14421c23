"""The registry of the training-set formats (formats.FORMATS): lookup, read/write round trips, the pickle rule."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

import formats
from formats import EXPORT_NAMES, FORMATS, DatasetError, ExportError, FormatError, format_for


def _labelled(seed: int = 0):
    atoms = bulk("W", "bcc", a=3.165, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=seed)
    rng = np.random.default_rng(seed)
    atoms.calc = SinglePointCalculator(atoms, energy=-12.9 * len(atoms), forces=rng.normal(size=(len(atoms), 3)),
                                       stress=rng.normal(size=6) * 1e-3)
    return atoms


def test_lookup_by_name_alias_and_suffix():
    assert list(FORMATS) == ["mtp", "pacemaker", "extxyz"] and EXPORT_NAMES == ("mtp", "ace", "extxyz")
    assert format_for("cfg") is format_for("mtp") is format_for("a/b/train.CFG") is FORMATS["mtp"]
    assert format_for("ace") is format_for(Path("W-all.pckl.gzip")) is format_for("x.pkl") is FORMATS["pacemaker"]
    assert format_for("set.xyz").name == "extxyz" and FORMATS["extxyz"].suffix == ".extxyz"
    assert FORMATS["pacemaker"].binary and FORMATS["pacemaker"].executes_code
    assert not any(f.executes_code for name, f in FORMATS.items() if name != "pacemaker")
    with pytest.raises(FormatError, match=r"^format: unknown format 'npz'; known formats: mtp \(or cfg"):
        format_for("npz")
    with pytest.raises(FormatError, match=r"^out: cannot tell the format of 'x.json'.*extxyz \(.extxyz .xyz\)"):
        format_for("x.json", "out")
    assert issubclass(FormatError, DatasetError) and issubclass(FormatError, ExportError)


@pytest.mark.parametrize("name", list(FORMATS))
def test_write_then_read_through_paths_and_streams(tmp_path, name):
    images = [_labelled(0), _labelled(1)]
    fmt = FORMATS[name]
    path = tmp_path / f"set{fmt.suffix}"
    assert formats.write(path, images, name, species=["W"]) == 2
    stream = io.BytesIO() if fmt.binary else io.StringIO()
    formats.write(stream, images, fmt, species=["W"])
    raw = path.read_bytes()
    if fmt.binary:  # gzip's header names the file it was written to (none for a BytesIO): compare the contents
        assert gzip.decompress(raw) == gzip.decompress(stream.getvalue())
    else:
        assert raw == stream.getvalue().encode()
    back = formats.read(path, allow_pickle=True, species=["W"])
    again = formats.read(io.BytesIO(raw), name, allow_pickle=True, species=["W"])
    for original, a, b in zip(images, back, again):
        assert a.get_potential_energy() == pytest.approx(original.get_potential_energy())
        np.testing.assert_allclose(a.get_forces(), b.get_forces())
    assert back[1].info["source"] == f"set{fmt.suffix}:1"


def test_pickles_are_refused_unless_allowed_and_binary_formats_need_binary_files(tmp_path):
    path = tmp_path / "set.pckl.gzip"
    formats.write(path, [_labelled()], "pacemaker")
    with pytest.raises(DatasetError, match="not read from untrusted files"):
        formats.read(path)  # allow_pickle defaults to False
    with pytest.raises(DatasetError, match="not read from untrusted files"):
        formats.read(io.BytesIO(path.read_bytes()), "ace")
    with pytest.raises(ExportError, match="binary"):
        formats.write(io.StringIO(), [_labelled()], "pacemaker")
    text = io.BytesIO()  # a text format into a binary stream: wrapped, the stream left open
    formats.write(text, [_labelled()], "extxyz")
    assert not text.closed and text.getvalue().startswith(b"16\n")
