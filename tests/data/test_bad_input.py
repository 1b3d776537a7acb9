"""Bad dataset input: a clear error that names the problem, and nothing the user had lost or overwritten."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from offrl.cli import main
from offrl.data import DatasetError, file_sha256, from_arrays, from_flat_episodes, load_dataset, save_dataset
from offrl.data.formats.d4rl import save_d4rl_hdf5
from offrl.data.formats.minari import save_minari
from tests.conftest import make_arrays

HEADER = ["obs_0", "obs_1", "obs_2", "action_0", "reward", "terminal", "timeout", "episode"]


def write_csv(path, n=20):
    arrays = make_arrays(n=n, obs_dim=3, action_dim=1, episode_length=10)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(n):
            w.writerow(
                [
                    *arrays["observations"][i].tolist(),
                    float(arrays["actions"][i, 0]),
                    float(arrays["rewards"][i]),
                    0,
                    int(arrays["timeouts"][i]),
                    i // 10,
                ]
            )
    return path


def small_dataset(obs_dim=3):
    return from_arrays(**make_arrays(n=100, obs_dim=obs_dim, action_dim=1))


def fails(capsys, argv: list[str]) -> str:
    """Run the command, expect exit code 1, return what it printed to stderr (no traceback)."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def snapshot(directory):
    """Every file under ``directory`` with its bytes, to show nothing was changed."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# 1. empty input ------------------------------------------------------------------------------------------------


def test_a_csv_with_a_header_and_no_rows_is_an_empty_dataset(tmp_path, capsys):
    path = tmp_path / "header_only.csv"
    path.write_text(",".join(HEADER) + "\n")
    with pytest.raises(DatasetError, match=r"the dataset is empty \(0 transitions\)"):
        load_dataset(path)
    assert "the dataset is empty (0 transitions)" in fails(capsys, ["dataset", "info", str(path)])


def test_empty_arrays_are_an_empty_dataset_in_every_layout():
    with pytest.raises(DatasetError, match=r"the dataset is empty \(0 transitions\)"):
        from_arrays(np.zeros((0, 3)), np.zeros((0, 1)), np.zeros(0))
    with pytest.raises(DatasetError, match=r"the dataset is empty \(0 transitions\)"):
        from_flat_episodes(np.zeros((0, 3)), np.zeros((0, 1)), np.zeros(0), np.zeros(0, bool), max_episode_steps=10)
    # one row whose successor is unknown: nothing is left, and the error says why
    with pytest.raises(DatasetError, match="none of its 1 rows has a known successor"):
        from_arrays(np.zeros((1, 3)), np.zeros((1, 1)), np.zeros(1))


# 2. a file named .npz that is no npz ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"hello\n", "is not an npz file (not a zip archive)"),
        (b"\x93NUMPY\x01\x00v\x00{'descr': '<f8'}", "a single .npy array"),
        (b"", "is empty (0 bytes)"),
        (b"PK\x03\x04truncated", "the zip archive is corrupt or truncated"),
    ],
)
def test_a_file_named_npz_that_is_no_npz_is_named_and_pickle_is_never_suggested(tmp_path, capsys, content, expected):
    path = tmp_path / "garbage.npz"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="garbage.npz") as e:
        load_dataset(path)
    assert expected in str(e.value) and "pickle" not in str(e.value)
    err = fails(capsys, ["dataset", "info", str(path)])
    assert expected in err and "pickle" not in err
    assert path.read_bytes() == content


# 3. ragged CSV rows ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extra,fields", [("1,2", 2), ("1,2,3,4,5,0,0,1,9", 9)])
def test_a_csv_row_with_the_wrong_number_of_fields_is_named_by_its_line(tmp_path, capsys, extra, fields):
    path = write_csv(tmp_path / "ragged.csv")
    with open(path, "a") as f:
        f.write(extra + "\n")
    message = f"ragged.csv line 22 has {fields} fields; its header has 8"
    with pytest.raises(DatasetError, match=message):
        load_dataset(path)
    assert message in fails(capsys, ["dataset", "info", str(path)])


def test_trailing_commas_lose_nothing_and_still_load(tmp_path):
    expected = load_dataset(write_csv(tmp_path / "log.csv")).fingerprint()
    path = write_csv(tmp_path / "commas.csv")
    lines = path.read_text().splitlines()
    path.write_text(lines[0] + "\n" + "".join(line + ",,\n" for line in lines[1:]))
    assert load_dataset(path).fingerprint() == expected


def test_a_csv_with_a_blank_last_line_still_loads(tmp_path):
    path = write_csv(tmp_path / "log.csv")
    with open(path, "a") as f:
        f.write("\n")
    assert load_dataset(path).size == 18


def test_a_bad_flag_value_is_named_with_its_row(tmp_path):
    path = write_csv(tmp_path / "log.csv")
    lines = path.read_text().splitlines()
    cells = lines[4].split(",")
    cells[HEADER.index("terminal")] = "2"
    lines[4] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        DatasetError, match=r"`terminal` must hold only 0/1 or booleans; 1 entries do not, first at row 3"
    ):
        load_dataset(path)


def test_csv_duplicate_columns_and_binary_files_are_named(tmp_path):
    dup = tmp_path / "dup.csv"
    dup.write_text("obs_0,obs_0,action_0,reward\n1,2,3,4\n")
    with pytest.raises(DatasetError, match=r"names columns \['obs_0'\] more than once"):
        load_dataset(dup)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01obs_0\n")
    with pytest.raises(DatasetError, match="is not a UTF-8 text CSV file"):
        load_dataset(binary)


# 4. dataset report checks the task's spaces ---------------------------------------------------------------------


def test_dataset_report_refuses_data_of_other_spaces_and_writes_nothing(tmp_path, capsys):
    data = tmp_path / "obs5.npz"
    save_dataset(small_dataset(obs_dim=5), data)
    out = tmp_path / "x.html"
    err = fails(capsys, ["dataset", "report", str(data), "--task", "pendulum", "--out", str(out)])
    assert "observations have shape (5,) per row but the task's observation space has shape (3,)" in err
    assert not out.exists()
    # the same for a reference of other spaces
    good = tmp_path / "obs3.npz"
    save_dataset(small_dataset(obs_dim=3), good)
    args = ["dataset", "report", str(good), "--task", "pendulum", "--reference", str(data), "--out", str(out)]
    assert "observation space has shape (3,)" in fails(capsys, args)
    assert not out.exists()
    # an --out that is a directory is refused before any work, and kept
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    args = ["dataset", "report", str(good), "--task", "pendulum", "--out", str(folder), "--overwrite"]
    assert "is a directory" in fails(capsys, args)
    assert snapshot(folder) == {"keep.txt": b"mine"}


# 5. dataset make --overwrite replaces only a dataset ------------------------------------------------------------

MAKE = ["dataset", "make", "--task", "pendulum", "--policy", "random", "--transitions", "200"]


def test_make_overwrite_never_deletes_an_ordinary_directory(tmp_path, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "file.txt").write_text("precious")
    err = fails(capsys, [*MAKE, "--overwrite", str(folder)])
    assert "is not a Minari dataset directory written by offrl: it holds file.txt" in err
    assert snapshot(folder) == {"file.txt": b"precious"}


def test_make_overwrite_replaces_a_minari_dataset_but_not_one_with_other_files(tmp_path, capsys):
    minari = tmp_path / "minari"
    assert main([*MAKE, str(minari)]) == 0
    assert main([*MAKE[:-1], "300", "--overwrite", str(minari)]) == 0
    assert load_dataset(minari).size == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["minari"]  # no temporary folder left beside it
    (minari / "data" / "notes.md").write_text("mine")
    before = snapshot(minari)
    err = fails(capsys, [*MAKE, "--overwrite", str(minari)])
    assert "it holds data/notes.md" in err
    assert snapshot(minari) == before


def test_make_overwrite_replaces_only_a_file_of_the_format_it_writes(tmp_path, capsys):
    text = tmp_path / "notes.hdf5"
    text.write_text("precious")
    assert "is not an HDF5 file" in fails(capsys, [*MAKE, "--overwrite", str(text)])
    assert text.read_text() == "precious"
    plain = tmp_path / "plain"  # no .hdf5 suffix: make writes a Minari directory, never over a file
    plain.write_text("precious")
    assert "is a file, not a Minari dataset directory" in fails(capsys, [*MAKE, "--overwrite", str(plain)])
    assert plain.read_text() == "precious"
    d4rl = tmp_path / "made.hdf5"
    save_d4rl_hdf5(small_dataset(), d4rl)
    assert main([*MAKE, "--overwrite", str(d4rl)]) == 0
    assert load_dataset(d4rl).size == 200


def test_savers_refuse_what_is_not_their_format(tmp_path):
    ds = small_dataset()
    folder = tmp_path / "data.hdf5"
    folder.mkdir()
    with pytest.raises(FileExistsError, match="is a directory"):
        save_d4rl_hdf5(ds, folder, overwrite=True)
    npz_folder = tmp_path / "data.npz"
    npz_folder.mkdir()
    with pytest.raises(FileExistsError, match="is a directory"):
        save_dataset(ds, npz_folder, overwrite=True)
    assert folder.is_dir() and npz_folder.is_dir()
    plain = tmp_path / "plain"
    plain.write_text("mine")
    with pytest.raises(FileExistsError, match="is a file, not a Minari dataset directory"):
        save_minari(ds, plain, "x/y-v0", overwrite=True)
    assert plain.read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    save_minari(ds, empty, "x/y-v0", overwrite=True)  # an empty directory holds nothing to lose
    assert load_dataset(empty).size == ds.size


# 6. convert names the file it wrote -----------------------------------------------------------------------------


def test_convert_names_the_file_it_actually_wrote(tmp_path, capsys):
    source = tmp_path / "ok.npz"
    save_dataset(small_dataset(), source)
    assert main(["dataset", "convert", str(source), str(tmp_path / "mydata")]) == 0
    written = tmp_path / "mydata.npz"
    assert capsys.readouterr().out.startswith(f"wrote {written} ")
    assert written.exists() and not (tmp_path / "mydata").exists()


# 7. convert --overwrite onto a directory ------------------------------------------------------------------------


def test_convert_overwrite_never_replaces_a_directory_or_a_foreign_file(tmp_path, capsys):
    source = tmp_path / "ok.npz"
    save_dataset(small_dataset(), source)
    folder = tmp_path / "d.npz"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    err = fails(capsys, ["dataset", "convert", str(source), str(folder), "--overwrite"])
    assert f"{folder} is a directory" in err
    assert snapshot(folder) == {"keep.txt": b"mine"}
    foreign = tmp_path / "notes.npz"
    foreign.write_text("mine")
    err = fails(capsys, ["dataset", "convert", str(source), str(foreign), "--overwrite"])
    assert "is not an npz file" in err
    assert foreign.read_text() == "mine"
    digest = file_sha256(source)
    target = tmp_path / "copy.npz"
    save_dataset(small_dataset(), target)
    assert main(["dataset", "convert", str(source), str(target), "--overwrite"]) == 0  # an npz file is replaced
    assert file_sha256(source) == digest
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["copy.npz", "d.npz", "notes.npz", "ok.npz"]
