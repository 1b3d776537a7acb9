"""Loader round trips on fixtures written here and on the files in ../shared/data; files are never modified."""

from __future__ import annotations

import csv
import json
import os

import h5py
import numpy as np
import pytest

from offrl.data import (
    ColumnMapping,
    DatasetError,
    file_sha256,
    from_arrays,
    load_d4rl_hdf5,
    load_dataset,
    load_minari,
    load_npz,
    load_table,
    save_dataset,
)
from offrl.data.dataset import next_observation_mismatches
from tests.conftest import SHARED_DATA, make_arrays, needs_shared


def assert_same(a, b):
    for name in ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def untouched(path):
    """Context check: the file's bytes and mtime are the same after loading."""
    return file_sha256(path), os.stat(path).st_mtime_ns


def test_offrl_format_round_trip(tmp_path):
    arrays = make_arrays()
    ds = from_arrays(**arrays, costs=np.ones(200), extras={"qpos": np.zeros((200, 2))}, metadata={"env_id": "X"})
    path = tmp_path / "data.npz"
    digest = save_dataset(ds, path)
    assert digest == file_sha256(path)
    loaded = load_dataset(path)
    assert_same(ds, loaded)
    assert loaded.action_space == ds.action_space
    np.testing.assert_array_equal(loaded.costs, ds.costs)
    np.testing.assert_array_equal(loaded.extras["qpos"], ds.extras["qpos"])
    assert loaded.metadata["env_id"] == "X"
    assert loaded.fingerprint() == ds.fingerprint()


def test_save_never_overwrites_without_being_asked(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"precious")
    ds = from_arrays(**make_arrays())
    with pytest.raises(FileExistsError, match="overwrite"):
        save_dataset(ds, path)
    assert path.read_bytes() == b"precious"
    with pytest.raises(FileExistsError, match="is not an npz file"):  # overwrite replaces only an npz file
        save_dataset(ds, path, overwrite=True)
    assert path.read_bytes() == b"precious"
    path.unlink()
    save_dataset(from_arrays(**make_arrays(seed=1)), path)
    save_dataset(ds, path, overwrite=True)
    assert_same(load_npz(path), ds)


def test_next_observations_derived_from_rows():
    """Without next_observations: successor = next row; rows after which it is unknown are dropped."""
    obs = np.arange(10, dtype=np.float32)[:, None]
    terminals = np.zeros(10, bool)
    timeouts = np.zeros(10, bool)
    terminals[3] = True  # episode 0: rows 0-3, terminates
    timeouts[6] = True  # episode 1: rows 4-6, cut by a time limit -> row 6 dropped, row 5 becomes the timeout
    ds = from_arrays(obs, np.zeros((10, 1)), np.arange(10), terminals, timeouts)  # final row 9 dropped too
    assert ds.observations[:, 0].tolist() == [0, 1, 2, 3, 4, 5, 7, 8]
    assert ds.next_observations[:, 0].tolist() == [1, 2, 3, 3, 5, 6, 8, 9]
    assert ds.terminals.tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    assert ds.timeouts.tolist() == [0, 0, 0, 0, 0, 1, 0, 1]


def write_d4rl(path, arrays, with_next=True):
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if key == "next_observations" and not with_next:
                continue
            f[key] = value
        f.attrs["env_id"] = "Hopper-v5"


def test_d4rl_hdf5_round_trip(tmp_path):
    arrays = make_arrays()
    path = tmp_path / "d4rl.hdf5"
    write_d4rl(path, arrays)
    before = untouched(path)
    ds = load_dataset(path)
    assert untouched(path) == before
    assert_same(ds, from_arrays(**arrays))
    assert ds.metadata["env_id"] == "Hopper-v5"


def test_d4rl_hdf5_missing_key_and_corrupt_file(tmp_path):
    path = tmp_path / "bad.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = np.zeros((5, 2), np.float32)
    with pytest.raises(DatasetError, match=r"missing keys \['actions', 'rewards', 'terminals'\]"):
        load_d4rl_hdf5(path)
    corrupt = tmp_path / "corrupt.hdf5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(DatasetError, match="corrupt"):
        load_dataset(corrupt)


@needs_shared
@pytest.mark.parametrize(
    "name,transitions,mean_return",
    [
        ("hopper-random", 50_000, 17),
        ("hopper-medium", 100_000, 1600),
        ("hopper-expert", 100_000, 3233),
    ],
)
def test_shared_hopper_files(name, transitions, mean_return):
    path = SHARED_DATA / f"{name}.hdf5"
    before = untouched(path)
    ds = load_dataset(path)
    assert untouched(path) == before
    assert ds.size == transitions and ds.observation_shape == (11,) and ds.actions.shape[1] == 3
    returns = ds.episode_returns()
    complete = returns[:-1] if not ds.terminals[-1] else returns  # the last episode may be cut by the file's end
    assert abs(np.mean(complete) - mean_return) / max(abs(mean_return), 1) < 0.1
    assert next_observation_mismatches(ds) == 0


@needs_shared
def test_flat_layout_pendulum_rule():
    """Pendulum episodes all reach the 200-step limit: each loses its last row and ends in a timeout."""
    path = SHARED_DATA / "external" / "expert_pendulum.npz"
    raw = np.load(path)
    ds = load_dataset(path, task="pendulum")
    assert ds.size == 20_000 - 100 and ds.num_episodes == 100
    assert ds.terminals.sum() == 0 and ds.timeouts.sum() == 100
    assert ds.episode_lengths().tolist() == [199] * 100
    # next observation = the next logged row inside an episode
    np.testing.assert_array_equal(ds.next_observations[:199], raw["obs"][1:200])
    np.testing.assert_array_equal(ds.observations[199], raw["obs"][200])
    np.testing.assert_allclose(ds.episode_returns()[0], raw["rewards"][:199].sum(), rtol=1e-5)


@needs_shared
def test_flat_layout_cartpole_rule():
    """CartPole: episodes shorter than 500 steps ended with the pole falling (terminal, all rows kept)."""
    path = SHARED_DATA / "external" / "expert_cartpole.npz"
    raw = np.load(path)
    starts = np.flatnonzero(raw["episode_starts"])
    lengths = np.diff(np.append(starts, len(raw["obs"])))
    ds = load_dataset(path, task="cartpole")
    assert ds.discrete and ds.action_space.n == 2
    assert ds.terminals.sum() == (lengths < 500).sum()
    assert ds.timeouts.sum() == (lengths == 500).sum()
    assert ds.size == len(raw["obs"]) - (lengths == 500).sum()
    short = int(np.flatnonzero(lengths < 500)[0])
    end = starts[short] + lengths[short] - 1
    row = end - (lengths[:short] == 500).sum()  # rows dropped before it
    assert ds.terminals[row]


@needs_shared
def test_flat_layout_needs_a_time_limit():
    with pytest.raises(DatasetError, match="max_episode_steps"):
        load_dataset(SHARED_DATA / "external" / "expert_pendulum.npz")


def test_npz_object_arrays_are_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(
        path, observations=np.array([np.zeros(2), np.zeros(3)], dtype=object), actions=np.zeros(2), rewards=np.zeros(2)
    )
    with pytest.raises(DatasetError, match="pickle"):
        load_dataset(path)


def test_npz_corrupt_and_unknown_layout(tmp_path):
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(DatasetError, match="corrupt"):
        load_dataset(corrupt)
    odd = tmp_path / "odd.npz"
    np.savez(odd, x=np.zeros(3))
    with pytest.raises(DatasetError, match="expected offrl's format"):
        load_dataset(odd)


def write_minari(root, episodes, obs_dim=3, action_dim=2, seed=0):
    rng = np.random.default_rng(seed)
    data = root / "data"
    data.mkdir(parents=True)
    with h5py.File(data / "main_data.hdf5", "w") as f:
        for i, (length, terminated) in enumerate(episodes):
            g = f.create_group(f"episode_{i}")
            g["observations"] = rng.standard_normal((length + 1, obs_dim)).astype(np.float32)
            g["actions"] = rng.uniform(-1, 1, (length, action_dim)).astype(np.float32)
            g["rewards"] = rng.standard_normal(length)
            term = np.zeros(length, bool)
            trunc = np.zeros(length, bool)
            (term if terminated else trunc)[-1] = True
            g["terminations"] = term
            g["truncations"] = trunc
    (data / "metadata.json").write_text(
        json.dumps(
            {
                "dataset_id": "test/toy-v0",
                "data_format": "hdf5",
                "total_episodes": len(episodes),
                "env_spec": json.dumps({"id": "Pendulum-v1"}),
            }
        )
    )


def test_minari_directory(tmp_path):
    root = tmp_path / "toy-v0"
    write_minari(root, [(5, True), (7, False), (4, False)])
    ds = load_dataset(root)
    assert ds.size == 16 and ds.num_episodes == 3
    assert ds.terminals.tolist().index(True) == 4 and ds.timeouts[11] and ds.timeouts[15]
    with h5py.File(root / "data" / "main_data.hdf5") as f:
        obs0 = f["episode_0/observations"][()]
    np.testing.assert_array_equal(ds.observations[:5], obs0[:-1])
    np.testing.assert_array_equal(ds.next_observations[:5], obs0[1:])
    assert ds.metadata["env_id"] == "Pendulum-v1" and ds.metadata["minari_dataset_id"] == "test/toy-v0"
    assert load_minari(root / "data").size == 16


def test_minari_other_storage_format_is_explained(tmp_path):
    data = tmp_path / "arrow-v0" / "data"
    data.mkdir(parents=True)
    (data / "metadata.json").write_text(json.dumps({"data_format": "arrow"}))
    with pytest.raises(DatasetError, match="'arrow' storage format"):
        load_dataset(tmp_path / "arrow-v0")


def write_csv(path, arrays, episode_length=50):
    n, obs_dim = arrays["observations"].shape
    action_dim = arrays["actions"].shape[1]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "episode",
                *[f"obs_{j}" for j in range(obs_dim)],
                *[f"action_{j}" for j in range(action_dim)],
                "reward",
                "terminal",
            ]
        )
        for i in range(n):
            w.writerow(
                [
                    i // episode_length,
                    *arrays["observations"][i].tolist(),
                    *arrays["actions"][i].tolist(),
                    float(arrays["rewards"][i]),
                    int(arrays["terminals"][i]),
                ]
            )


def test_csv_table(tmp_path):
    arrays = make_arrays()
    path = tmp_path / "log.csv"
    write_csv(path, arrays)
    ds = load_dataset(path)
    # episodes change every 50 rows; the last row of each episode is dropped (its successor is unknown)
    assert ds.size == 200 - 4 and ds.num_episodes == 4
    np.testing.assert_allclose(ds.observations[:49], arrays["observations"][:49], rtol=1e-6)
    np.testing.assert_allclose(ds.next_observations[:48], arrays["observations"][1:49], rtol=1e-6)
    assert ds.timeouts[48] and not ds.terminals.any()


def test_csv_column_mapping_errors(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("a,b,r\n1,0.5,3\n2,0.5,3\n3,0.5,3\n")
    with pytest.raises(DatasetError, match="no column for observations"):
        load_table(path)
    ds = load_table(path, ColumnMapping(observations=["a"], actions=["b"], reward="r", episode=None))
    assert ds.size == 2 and ds.timeouts[-1] and ds.next_observations[:, 0].tolist() == [2, 3]


def test_parquet_table(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    arrays = make_arrays()
    table = {"episode": np.arange(200) // 50, "reward": arrays["rewards"], "terminal": arrays["terminals"]}
    for j in range(3):
        table[f"obs_{j}"] = arrays["observations"][:, j]
    for j in range(2):
        table[f"action_{j}"] = arrays["actions"][:, j]
    pq.write_table(pa.table(table), tmp_path / "log.parquet")
    ds = load_dataset(tmp_path / "log.parquet")
    assert ds.size == 196 and ds.num_episodes == 4


def test_unknown_format(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"nothing")
    with pytest.raises(DatasetError, match="unknown dataset format"):
        load_dataset(path)
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing.hdf5")


def test_written_files_get_the_usual_permissions_not_the_temporary_files_owner_only_mode(tmp_path):
    from offrl.data.formats.d4rl import save_d4rl_hdf5
    from offrl.data.formats.minari import save_minari
    from offrl.data.loaders import save_dataset

    mask = os.umask(0o022)
    try:
        ds = from_arrays(**make_arrays())
        save_d4rl_hdf5(ds, tmp_path / "a.hdf5")
        save_dataset(ds, tmp_path / "a.npz")
        save_minari(ds, tmp_path / "m", "offrl/test-v0")
        assert (tmp_path / "a.hdf5").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "a.npz").stat().st_mode & 0o777 == 0o644
        assert (tmp_path / "m").stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(mask)
