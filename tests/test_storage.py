"""Cube locations: paths and URLs, storage options, and what each scheme needs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import icechunk
import numpy as np
import pytest

from pitfall import cube, storage

sys.path.insert(0, str(Path(__file__).parent))
from test_cube import _slab  # noqa: E402


@pytest.mark.parametrize(
    ("text", "scheme", "bucket", "prefix"),
    [
        ("s3://lab-cubes/roadmap", "s3", "lab-cubes", "roadmap"),
        ("s3://lab-cubes/a/b/", "s3", "lab-cubes", "a/b"),
        ("s3://lab-cubes", "s3", "lab-cubes", ""),
        ("gs://bucket/x", "gs", "bucket", "x"),
        ("az://container/deep/x", "az", "container", "deep/x"),
        ("S3://Upper/x", "s3", "Upper", "x"),
    ],
)
def test_parse_location__urls(text: str, scheme: str, bucket: str, prefix: str) -> None:
    loc = storage.parse_location(text)
    assert (loc.scheme, loc.bucket, loc.prefix) == (scheme, bucket, prefix)
    assert not loc.is_local


def test_parse_location__paths_are_absolute_folders(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for text in ("store/c", f"file://{tmp_path}/store/c"):
        loc = storage.parse_location(text)
        assert loc.is_local and loc.path == tmp_path / "store" / "c"


def test_storage__every_scheme_builds_without_network(monkeypatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "labaccount")
    for text in ("s3://b/p", "gs://b/p", "az://c/p"):
        assert isinstance(storage.storage(text), icechunk.Storage)
    assert isinstance(storage.storage("s3://b/p", anonymous=True), icechunk.Storage)


def test_storage__azure_without_account_says_what_to_set(monkeypatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT", raising=False)
    with pytest.raises(storage.LocationError, match="AZURE_STORAGE_ACCOUNT_NAME"):
        storage.storage("az://c/p")


def test_s3_endpoint__option_wins_over_environment(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://env:9000")
    assert storage.s3_endpoint() == "http://env:9000"
    assert storage.s3_endpoint("http://option:9000") == "http://option:9000"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-specific:9000")
    assert storage.s3_endpoint() == "http://s3-specific:9000"


def test_s3_cube__endpoint_as_option_and_anonymous_read(s3, monkeypatch) -> None:
    where = s3.url()
    cube.create_cube(where, _slab("E003", 3))
    # Without the environment variable the option alone reaches the server.
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    ds = cube.open_cube(where, endpoint_url=s3.endpoint)
    assert list(ds["cell_type"].values) == ["E003"]
    # Unsigned requests, to a bucket whose policy lets anyone read (a public data set).
    bucket = where.removeprefix("s3://").partition("/")[0]
    public = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
             "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}
        ],
    }  # fmt: skip
    s3.client().put_bucket_policy(Bucket=bucket, Policy=json.dumps(public))
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    ds = cube.open_cube(where, endpoint_url=s3.endpoint, anonymous=True)
    np.testing.assert_array_equal(ds["label"].values, _slab("E003", 3)["label"].values)


def test_export_cube__to_an_s3_url(s3, tmp_path: Path) -> None:
    import xarray as xr
    import zarr
    from obstore.store import S3Store

    where = s3.url()
    cube.create_cube(where, [_slab("E003", 3), _slab("E004", 4)])
    out = s3.url("export")
    assert cube.export_cube(where, out) == out
    bucket, _, prefix = out.removeprefix("s3://").partition("/")
    store = S3Store(
        bucket,
        prefix=prefix,
        config={"endpoint": os.environ["AWS_ENDPOINT_URL"], "region": "us-east-1"},
        client_options={"allow_http": True},
    )
    got = xr.open_zarr(zarr.storage.ObjectStore(store, read_only=True))
    np.testing.assert_array_equal(got["label"].values, cube.open_cube(where)["label"].values)
    assert [str(c) for c in got["cell_type"].values] == ["E003", "E004"]
