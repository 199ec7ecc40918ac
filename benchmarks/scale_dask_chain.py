"""SCALE-DASK-CHAIN: ``dec.map(inc.map(range(N)))`` over DaskExecutor, N = 1,000,000: the
chained half of SCALE-DASK (``benchmarks/scale_dask.py``, which describes the cluster, the
raw ``client.map`` anchor and the RSS figures). The raw anchor chains the same way: the
second ``client.map`` takes the futures of the first."""

from __future__ import annotations

from benchmarks import scale_dask
from benchmarks._common import Context, Measurement

ID = "SCALE-DASK-CHAIN"
TITLE = "dec.map(inc.map(...)) over 1,000,000 items, DaskExecutor, RSS of every process"
SIZES = scale_dask.SIZES
SYSTEMS = scale_dask.SYSTEMS
REPEAT = scale_dask.REPEAT
WARMUP = scale_dask.WARMUP


def run_engine(name: str, ctx: Context) -> Measurement:
    scale_dask.CHAINED = True
    return scale_dask.run_engine(name, ctx)


def run_dask(ctx: Context) -> Measurement:
    scale_dask.CHAINED = True
    return scale_dask.run_dask(ctx)
