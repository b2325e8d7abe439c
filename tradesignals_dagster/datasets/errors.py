"""Errors of the datasets area: the object store and the exports written to it."""

from __future__ import annotations

from tradesignals_dagster.errors import TradesignalsError


class DatasetError(TradesignalsError):
    """Something about a Parquet dataset or its object store went wrong."""


class InvalidDatasetInput(DatasetError):
    """The request itself is wrong (unknown dataset, day outside its range, bad URL): exit 2."""

    exit_code = 2


class ObjectStoreError(DatasetError):
    """The object store failed an operation; the message names the store, never a secret."""


class ObjectStoreUnreachable(ObjectStoreError):
    """Nothing answered at the object store's endpoint (down, wrong host or port)."""


class BucketMissing(ObjectStoreError):
    """The bucket named in the object store URL does not exist."""


class CredentialsRefused(ObjectStoreError):
    """The object store refused the credentials (unknown key, bad signature, access denied)."""


class ReadOnlyStore(ObjectStoreError):
    """The object store can be read but not written."""
