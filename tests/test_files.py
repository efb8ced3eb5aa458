"""crlkit/files.py: the one atomic writer (no partial file, one permission policy)."""

from __future__ import annotations

import os

import pytest

from crlkit import files


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_every_writer_leaves_the_old_content_on_error_and_the_usual_mode(tmp_path):
    target = tmp_path / "a.json"
    files.atomic_write_json(target, {"x": 1.0, "nan": float("nan")})
    assert target.read_text() == '{\n  "x": 1.0,\n  "nan": null\n}\n'
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    with pytest.raises(RuntimeError), files.atomic_open(target) as f:
        f.write(b"partial")
        raise RuntimeError("killed mid-write")
    assert target.read_text().startswith("{") and sorted(os.listdir(tmp_path)) == ["a.json"]

    video = tmp_path / "v.mp4"
    with pytest.raises(RuntimeError), files.atomic_path(video) as temp:
        assert temp.suffix == ".mp4" and temp.parent == tmp_path
        temp.write_bytes(b"frames")
        raise RuntimeError("encoder failed")
    assert not video.exists() and sorted(os.listdir(tmp_path)) == ["a.json"]
    with files.atomic_path(video) as temp:
        temp.write_bytes(b"frames")
    assert video.read_bytes() == b"frames" and video.stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_flatten_and_temp_cleanup(tmp_path):
    assert files.flatten_dict({"a": {"b": 1, "c": [1, 2]}, "d": {}}) == {
        "a.b": 1,
        "a.c": [1, 2],
        "d": {},
    }
    (tmp_path / f"{files.TMP_PREFIX}x-y.npz").write_bytes(b"")
    files.remove_temp_files(tmp_path)
    assert os.listdir(tmp_path) == []


def test_a_failed_write_is_found_behind_wrappers_and_named_in_one_line(tmp_path):
    import errno

    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "a.npz"))
    try:
        try:
            raise full
        except OSError as err:
            raise RuntimeError("the library's own error") from err
    except RuntimeError as wrapped:
        assert files.find_io_error(wrapped) is full
    assert files.describe_os_error(full) == f"disk full (ENOSPC) at {tmp_path / 'a.npz'}"
    assert files.describe_os_error(OSError(errno.EROFS, "x")) == "read-only file system (EROFS)"
    # not a disk problem: a missing file, or no OSError at all
    assert files.find_io_error(FileNotFoundError(errno.ENOENT, "gone")) is None
    assert files.find_io_error(ValueError("bad")) is None and files.find_io_error(None) is None
