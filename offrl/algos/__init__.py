"""Algorithms, one file each. ``ALGORITHMS`` maps a name to its entry points (see ``offrl.algos.base``)."""

from offrl.algos import (
    awac,
    bc,
    cql,
    cql_discrete,
    edac,
    famo2o,
    fdvl,
    h2o,
    iql,
    moorl,
    parl,
    prdc,
    rebrac,
    recoil,
    resfit,
    riql,
    rlpd,
    ro2o,
    sac,
    td3,
    td3bc,
)
from offrl.algos.base import Algorithm, Spec

ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in [
        bc.ALGORITHM,
        td3bc.ALGORITHM,
        iql.ALGORITHM,
        riql.ALGORITHM,
        fdvl.ALGORITHM,
        famo2o.ALGORITHM,
        cql.ALGORITHM,
        cql.CAL_QL,
        cql_discrete.ALGORITHM,
        awac.ALGORITHM,
        rebrac.ALGORITHM,
        prdc.ALGORITHM,
        recoil.ALGORITHM,
        edac.ALGORITHM,
        edac.SAC_N,
        sac.ALGORITHM,
        td3.ALGORITHM,
        rlpd.ALGORITHM,
        ro2o.ALGORITHM,
        h2o.ALGORITHM,
        parl.ALGORITHM,
        moorl.ALGORITHM,
        resfit.ALGORITHM,
    ]
}


def get_algorithm(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r}; available: {', '.join(sorted(ALGORITHMS))}") from None


__all__ = ["ALGORITHMS", "Algorithm", "Spec", "get_algorithm"]
