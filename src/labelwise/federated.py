"""Partitioned (federated) training: rows stay on their own Dask workers; only weights and
per-label statistics travel (``pip install 'labelwise[dask]'``). The implementation and its
rules are in :mod:`labelwise.distributed.federated`."""

from __future__ import annotations

from .distributed.federated import (
    combination_weights,
    combine_weights,
    fit_partitioned,
    load_partitions,
    scatter_partitions,
)

__all__ = ["load_partitions", "scatter_partitions", "fit_partitioned", "combine_weights",
           "combination_weights"]
