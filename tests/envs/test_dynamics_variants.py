"""Tasks with changed dynamics (``hopper:gravity=2``): the simulator gap of hybrid sim + real methods."""

from __future__ import annotations

import numpy as np
import pytest

from offrl.envs.registry import get_task


def test_a_variant_multiplies_the_simulators_parameters():
    nominal, changed = get_task("hopper").make(), get_task("hopper:gravity=2,friction=0.5,mass=1.5").make()
    try:
        a, b = nominal.unwrapped.model, changed.unwrapped.model
        np.testing.assert_allclose(b.opt.gravity, 2 * a.opt.gravity)
        np.testing.assert_allclose(b.geom_friction[:, 0], 0.5 * a.geom_friction[:, 0])
        np.testing.assert_allclose(b.body_mass, 1.5 * a.body_mass)
        np.testing.assert_allclose(b.geom_friction[:, 1:], a.geom_friction[:, 1:])  # torsional/rolling unchanged
    finally:
        nominal.close(), changed.close()
    pendulum = get_task("pendulum:gravity=1.5,mass=2").make()
    assert (pendulum.unwrapped.g, pendulum.unwrapped.m) == (15.0, 2.0)


def test_a_variant_changes_what_happens_and_keeps_the_references():
    base, heavy = get_task("hopper"), get_task("hopper:gravity=3")
    assert heavy.name == "hopper:gravity=3" and heavy.ref_expert == base.ref_expert
    assert heavy.spaces() == base.spaces()
    finals = []
    for task in (base, heavy):
        env = task.make()
        env.reset(seed=0)
        for _ in range(20):
            obs, *_ = env.step(np.zeros(3))
        finals.append(obs)
        env.close()
    assert not np.allclose(finals[0], finals[1])


def test_bad_variants_are_named():
    with pytest.raises(KeyError, match="use gravity, friction, mass"):
        get_task("hopper:wind=2")
    with pytest.raises(KeyError, match="not a number"):
        get_task("hopper:gravity=heavy")
    with pytest.raises(KeyError, match="must be > 0"):
        get_task("hopper:mass=0")
    with pytest.raises(ValueError, match="no friction"):
        get_task("pendulum:friction=2").make()
