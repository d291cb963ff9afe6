"""Where a cube lives: a local folder or an object-store URL, as an Icechunk ``Storage``.

A location is a path (``store/roadmap``, ``/data/cubes/ctcf``) or a URL:

========================== ===================================================================
``s3://bucket/prefix``     Amazon S3 or any S3-compatible store (MinIO, Ceph, R2, moto...)
``gs://bucket/prefix``     Google Cloud Storage
``az://container/prefix``  Azure Blob Storage (account from ``AZURE_STORAGE_ACCOUNT_NAME``)
``file:///abs/path``       a local folder, spelled as a URL
========================== ===================================================================

Credentials always come from the environment (``AWS_ACCESS_KEY_ID`` / ``AWS_PROFILE`` / an
instance role, ``GOOGLE_APPLICATION_CREDENTIALS``, ``AZURE_STORAGE_*``), never from the
location, and are never written into the cube. S3-compatible servers are reached through
the standard ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) variable, or the
``endpoint_url`` option; the region comes from ``AWS_REGION`` / ``AWS_DEFAULT_REGION``
(default ``us-east-1``). ``anonymous=True`` (or ``PITFALL_ANONYMOUS=1``) reads a public
bucket without signing requests.

:func:`is_url` is pitfall's one test of whether a string names a URL or a local path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import icechunk

if TYPE_CHECKING:
    from obstore.store import S3Config

__all__ = [
    "OBJECT_SCHEMES",
    "Location",
    "LocationError",
    "StorageError",
    "check_credentials",
    "commit_lock",
    "innermost_cause",
    "is_url",
    "list_objects",
    "object_store",
    "parse_location",
    "s3_endpoint",
    "set_icechunk_logs",
    "storage",
    "storage_error",
]

OBJECT_SCHEMES = ("s3", "gs", "az")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$")
_TRUE = {"1", "true", "yes", "on"}
#: Icechunk's log filter for the whole process, as :func:`set_icechunk_logs` last set it
#: (None: ``ICECHUNK_LOG``, else Icechunk's default).
_icechunk_logs: str | None = None


class LocationError(ValueError):
    """A cube location that names no storage pitfall can use; the message says what to do."""


@dataclass(frozen=True)
class Location:
    """A parsed cube location.

    Attributes
    ----------
    url
        The location as the user wrote it (a local path is made absolute).
    scheme
        ``"file"`` for a local folder, else ``"s3"``, ``"gs"`` or ``"az"``.
    bucket
        Bucket (container for ``az``); empty for a local folder.
    prefix
        Key prefix inside the bucket (no leading or trailing ``/``), or the absolute folder.
    """

    url: str
    scheme: str
    bucket: str
    prefix: str

    @property
    def is_local(self) -> bool:
        """Whether the cube is a folder on this machine's file system."""
        return self.scheme == "file"

    @property
    def path(self) -> Path:
        """The local folder (only for local locations)."""
        if not self.is_local:
            raise LocationError(f"{self.url} is not a local folder")
        return Path(self.prefix)

    def __str__(self) -> str:
        return self.url


def is_url(text: Any) -> bool:
    """Whether ``text`` is spelled as a URL (``scheme://...``), not as a path.

    Parameters
    ----------
    text : str, path-like or anything else
        A cube location, an input file, a scheduler address.

    Returns
    -------
    bool
        True for a string that starts with a scheme and ``://`` (``s3://``, ``https://``,
        ``file://``, ``tcp://``); False for any other string and for anything that is not
        a string (a :class:`pathlib.Path` is always a path).
    """
    return isinstance(text, str) and _URL.match(text) is not None


def parse_location(location: str | os.PathLike[str] | Location) -> Location:
    """Parse a cube location; an unknown URL scheme is an error, never a local folder.

    Raises
    ------
    LocationError
        For a scheme other than ``file``, ``s3``, ``gs`` and ``az``, or a URL without a bucket.
    """
    if isinstance(location, Location):
        return location
    text = os.fspath(location)
    match = _URL.match(text)
    if match is None:
        path = Path(text).expanduser().resolve()
        return Location(url=str(path), scheme="file", bucket="", prefix=str(path))
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme == "file":
        path = Path(rest).expanduser().resolve()
        return Location(url=str(path), scheme="file", bucket="", prefix=str(path))
    if scheme not in OBJECT_SCHEMES:
        raise LocationError(
            f"cube location {text!r}: unknown scheme {scheme!r}; use a local path or a URL "
            "s3://bucket/prefix, gs://bucket/prefix or az://container/prefix"
        )
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise LocationError(f"cube location {text!r} names no bucket ({scheme}://BUCKET/prefix)")
    prefix = prefix.strip("/")
    return Location(
        url=f"{scheme}://{bucket}/{prefix}", scheme=scheme, bucket=bucket, prefix=prefix
    )


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def s3_endpoint(endpoint_url: str | None = None) -> str | None:
    """The S3 endpoint: the option, else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``."""
    return (
        endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


def set_icechunk_logs(directive: str | None) -> None:
    """Set Icechunk's log filter for the whole process (the command line's quiet mode).

    Parameters
    ----------
    directive
        A ``tracing`` filter such as ``"icechunk=error"``; None: ``ICECHUNK_LOG``, else
        Icechunk's default. Scoped quieting inside pitfall restores this one.
    """
    global _icechunk_logs
    _icechunk_logs = directive
    icechunk.set_logs_filter(directive)


@contextlib.contextmanager
def _local_storage_quiet() -> Iterator[None]:
    """Hide Icechunk's warning that local storage is unsafe for concurrent commits.

    pitfall serialises local commits itself (:func:`commit_lock`), so the warning, printed
    on every open, says nothing to its users. Icechunk's filter is process-wide: it is
    turned down only while the storage is made, then set back, and left alone where the
    user asked for Icechunk's logs (``ICECHUNK_LOG``).
    """
    if "ICECHUNK_LOG" in os.environ:
        yield
        return
    icechunk.set_logs_filter("icechunk=error")
    try:
        yield
    finally:
        icechunk.set_logs_filter(_icechunk_logs)


def storage(
    location: str | os.PathLike[str] | Location,
    *,
    anonymous: bool | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> icechunk.Storage:
    """The Icechunk storage of a cube location, with credentials from the environment.

    Parameters
    ----------
    location
        Path or URL (see the module docstring).
    anonymous
        Do not sign requests (public buckets); default from ``PITFALL_ANONYMOUS``.
    endpoint_url
        S3-compatible endpoint, e.g. ``http://127.0.0.1:9000``; default from the environment.
    region
        S3 region; default ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / ``us-east-1``.
    """
    loc = parse_location(location)
    if anonymous is None:
        anonymous = _env_flag("PITFALL_ANONYMOUS")
    if loc.is_local:
        if loc.path.exists() and not loc.path.is_dir():
            # Icechunk would abort the process on it (a Rust panic), not raise.
            raise FileExistsError(f"{loc.path} is a file; a cube location is a folder or a URL")
        with _local_storage_quiet():
            return icechunk.local_filesystem_storage(loc.prefix)
    if loc.scheme == "s3":
        endpoint = s3_endpoint(endpoint_url)
        kw: dict[str, Any] = {
            "bucket": loc.bucket,
            "prefix": loc.prefix or None,
            "region": region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1",
            "endpoint_url": endpoint,
            "allow_http": bool(endpoint and endpoint.startswith("http://")),
            # Self-hosted S3 servers rarely resolve bucket subdomains.
            "force_path_style": bool(endpoint),
        }
        if anonymous:
            kw["anonymous"] = True
        else:
            kw["from_env"] = True
        return icechunk.s3_storage(**kw)
    if loc.scheme == "gs":
        kw = {"bucket": loc.bucket, "prefix": loc.prefix or None}
        return (
            icechunk.gcs_storage(**kw, anonymous=True)
            if anonymous
            else icechunk.gcs_storage(**kw, from_env=True)
        )
    account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME") or os.environ.get(
        "AZURE_STORAGE_ACCOUNT"
    )
    if not account:
        raise LocationError(
            f"{loc.url}: set AZURE_STORAGE_ACCOUNT_NAME to the storage account of the container"
        )
    return icechunk.azure_storage(
        account=account, container=loc.bucket, prefix=loc.prefix, from_env=True
    )


def object_store(
    location: str | Location,
    *,
    anonymous: bool | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> Any:
    """An ``obstore`` store rooted at an object-store location (or any ``http(s)://`` base).

    The same engine and the same environment variables as Icechunk's storage, for the
    objects pitfall reads or writes beside a cube (inputs, exports).
    """
    from obstore.store import AzureStore, GCSStore, HTTPStore, S3Store

    if anonymous is None:
        anonymous = _env_flag("PITFALL_ANONYMOUS")
    text = location.url if isinstance(location, Location) else str(location)
    if text.startswith(("http://", "https://")):
        return HTTPStore.from_url(text, client_options={"allow_http": text.startswith("http://")})
    loc = parse_location(location)
    prefix = loc.prefix or None
    if loc.scheme == "s3":
        endpoint = s3_endpoint(endpoint_url)
        config: S3Config = {
            "region": region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        }
        if endpoint:
            config["endpoint"] = endpoint
        if anonymous:
            config["skip_signature"] = True
        return S3Store(
            loc.bucket,
            prefix=prefix,
            config=config,
            client_options={"allow_http": bool(endpoint and endpoint.startswith("http://"))},
        )
    if loc.scheme == "gs":
        return GCSStore(
            loc.bucket, prefix=prefix, config={"skip_signature": True} if anonymous else None
        )
    if loc.scheme == "az":
        return AzureStore(
            loc.bucket, prefix=prefix, config={"skip_signature": True} if anonymous else None
        )
    raise LocationError(f"{loc} is a local folder, not an object store")


def list_objects(location: str | Location, **options: Any) -> Iterator[str]:
    """Keys under an object-store location (relative to its prefix)."""
    import obstore

    store = object_store(location, **options)
    for batch in obstore.list(store):
        for meta in batch:
            yield meta["path"]


@contextlib.contextmanager
def commit_lock(location: str | os.PathLike[str] | Location) -> Iterator[None]:
    """Serialise commits to a local cube; a no-op on object storage.

    Icechunk's local file-system storage cannot update a branch conditionally, so two
    processes committing at once could both succeed and one commit vanish from history.
    Object stores update the branch with a conditional write instead: there Icechunk's own
    optimistic concurrency (a ``ConflictError`` for the loser) is all a writer needs. The
    lock is an OS file lock (``filelock``), released by the kernel when its holder dies.
    """
    loc = parse_location(location)
    if not loc.is_local:
        yield
        return
    import filelock

    lock = filelock.FileLock(str(loc.path / "pitfall.lock"))
    with lock:
        yield


# --------------------------------------------------------------------------------------------
# Storage errors: what failed, where, and what to do


class StorageError(OSError):
    """The storage of a location failed for a reason of the environment (a missing bucket,
    no or refused credentials, an unreachable server); the message names the location and
    the cause."""


#: Errnos of a network that did not carry a request (vs. a disk that refused a write).
_NETWORK_ERRNOS = {
    errno.ENETUNREACH,
    errno.ECONNABORTED,
    errno.ECONNRESET,
    errno.ETIMEDOUT,
    errno.ECONNREFUSED,
    errno.EHOSTDOWN,
    errno.EHOSTUNREACH,
}
_SERVICE_CODE = re.compile(r'code: "(\w+)"|<Code>(\w+)</Code>')
_OS_ERRNO = re.compile(r"\(os error (\d+)\)")
_UNREACHABLE = (
    "tcp connect error",
    "dns error",
    "connection refused",
    "connection reset",
    "timed out",
    "error sending request",
    "dispatch failure",
    "failed to lookup address",
)
_NO_CREDENTIALS = ("token request", "credential", "no valid credentials", "missing credentials")
_REFUSED_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AuthenticationFailed",
    "Unauthorized",
}
_DENIED = {"AccessDenied", "Forbidden", "AuthorizationFailure", "AllAccessDisabled"}
_MISSING_BUCKET = {"NoSuchBucket", "ContainerNotFound", "BucketNotFound"}

_CREDENTIALS_HINT = {
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the "
    "environment, or read a public bucket with --anonymous",
    "gs": "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or read a "
    "public bucket with --anonymous",
    "az": "set AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_TOKEN) beside "
    "AZURE_STORAGE_ACCOUNT_NAME, or read a public container with --anonymous",
    "http": "check that the server asks for no credentials",
}


def innermost_cause(err: BaseException) -> str:
    """The deepest cause a storage library's error states, in one line.

    Icechunk's errors list their chain of causes, the root last (``... `-> Connection
    refused (os error 111)``); obstore's start with a summary line ending in its cause.
    Either way what happened, not where in the library.
    """
    text = str(err).strip()
    causes = [
        line.split("->", 1)[1].strip()
        for line in text.splitlines()
        if line.lstrip(" |`").startswith("->")
    ]
    line = causes[-1] if causes else (text.splitlines() or [type(err).__name__])[0]
    # obstore's summary ends with its cause after the request and its retries:
    # "Error performing GET <url> in 5.4s, after 10 retries, ...  - HTTP error: <cause>".
    line = line.rsplit(" - ", 1)[-1]
    return line.lstrip(" x").strip()[:300]


def _server(loc: Location | str) -> str:
    if isinstance(loc, Location) and loc.scheme == "s3":
        endpoint = s3_endpoint()
        return f" {endpoint}" if endpoint else ""
    text = loc.url if isinstance(loc, Location) else str(loc)
    match = re.match(r"^(https?://[^/]+)", text)
    return f" {match.group(1)}" if match else ""


def _scheme(loc: Location | str) -> str:
    if isinstance(loc, Location):
        return loc.scheme
    match = _URL.match(str(loc))
    scheme = match.group(1).lower() if match else "file"
    return "http" if scheme in ("http", "https") else scheme


def _bucket_of(url: str) -> str:
    match = _URL.match(url)
    return match.group(2).partition("/")[0] if match else ""


def _endpoint_hint(scheme: str) -> str:
    if scheme == "s3":
        return "; check that it runs and is reachable, and the endpoint (AWS_ENDPOINT_URL or --endpoint-url)"
    return "; check that it runs and is reachable, and the network"


def _by_service_code(codes: set[str], where: Location | str, scheme: str) -> OSError | None:
    """What the server's error code says: a missing bucket, refused credentials, no access."""
    bucket = where.bucket if isinstance(where, Location) else _bucket_of(str(where))
    if codes & _MISSING_BUCKET:
        code = sorted(codes & _MISSING_BUCKET)[0]
        what = "container" if scheme == "az" else "bucket"
        endpoint = (
            " and the endpoint (AWS_ENDPOINT_URL or --endpoint-url)" if scheme == "s3" else ""
        )
        return StorageError(
            f"{where}: the {what} {bucket!r} does not exist ({code}); check its name{endpoint}"
        )
    if codes & _REFUSED_CREDENTIALS:
        code = sorted(codes & _REFUSED_CREDENTIALS)[0]
        hint = _CREDENTIALS_HINT.get(scheme, "check the credentials in the environment")
        return StorageError(f"{where}: the server refused the credentials ({code}); {hint}")
    if codes & _DENIED:
        return StorageError(
            f"{where}: access denied ({sorted(codes & _DENIED)[0]}); the credentials in the "
            "environment may not use this location: check them and the bucket's permissions"
        )
    return None


def storage_error(err: BaseException, where: Location | str) -> OSError | None:
    """An ``OSError`` naming ``where`` and the cause of a storage library's error, or None.

    Parameters
    ----------
    err
        An error of Icechunk, obstore or the HTTP stack.
    where
        The location (a cube, an export, an input URL) the operation was about.

    Returns
    -------
    OSError or None
        A disk's own error (full, read-only, permissions) as an ``OSError`` with its errno
        and ``filename=where``; a missing bucket, absent or refused credentials, denied
        access or an unreachable server as a :class:`StorageError` saying so; None when
        the error states none of these (a bug, or a cause to report as it is).
    """
    text, scheme = str(err), _scheme(where)
    codes = {a or b for a, b in _SERVICE_CODE.findall(text)}
    by_code = _by_service_code(codes, where, scheme)
    if by_code is not None:
        return by_code
    match = _OS_ERRNO.search(text)
    number = int(match.group(1)) if match else None
    network = number in _NETWORK_ERRNOS
    if number is not None and not network and scheme == "file":
        return OSError(number, os.strerror(number), str(where))
    if network or any(phrase in text.lower() for phrase in _UNREACHABLE):
        return StorageError(
            f"{where}: cannot reach the server{_server(where)} ({innermost_cause(err)})"
            + _endpoint_hint(scheme)
        )
    if scheme in _CREDENTIALS_HINT and any(p in text.lower() for p in _NO_CREDENTIALS):
        return StorageError(
            f"{where}: no credentials for {scheme}:// ({innermost_cause(err)}); "
            + _CREDENTIALS_HINT[scheme]
        )
    if number is not None and not network:
        return OSError(number, os.strerror(number), str(where))
    return None


#: Where the Google libraries look for credentials besides the metadata server.
_GOOGLE_CREDENTIAL_VARS = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_SERVICE_ACCOUNT",
    "GOOGLE_SERVICE_ACCOUNT_PATH",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
)
_METADATA_SERVER = ("169.254.169.254", 80)


def _metadata_server_answers(timeout: float = 0.5) -> bool:
    """Whether Google's metadata server (a cloud instance's credentials) answers here.

    As Google's own clients ask: its answer carries ``Metadata-Flavor: Google`` (a proxy
    that accepts every connection does not).
    """
    import http.client

    conn = http.client.HTTPConnection(*_METADATA_SERVER, timeout=timeout)
    try:
        conn.request("GET", "/computeMetadata/v1/", headers={"Metadata-Flavor": "Google"})
        response = conn.getresponse()
        return response.getheader("Metadata-Flavor") == "Google"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def check_credentials(
    location: str | os.PathLike[str] | Location, *, anonymous: bool | None = None
) -> None:
    """Refuse a ``gs://`` location without any credentials, at once.

    Without credentials in the environment Google's client asks the metadata server of a
    cloud instance for a token, and retries for seconds before failing; off a cloud
    instance nothing answers, so the missing credentials are said before any request.

    Raises
    ------
    StorageError
        Naming the location and the variable to set.
    """
    loc = parse_location(location)
    if anonymous is None:
        anonymous = _env_flag("PITFALL_ANONYMOUS")
    if loc.scheme != "gs" or anonymous:
        return
    if any(os.environ.get(name) for name in _GOOGLE_CREDENTIAL_VARS):
        return
    adc = (
        Path(os.environ.get("CLOUDSDK_CONFIG") or Path.home() / ".config" / "gcloud")
        / "application_default_credentials.json"
    )
    if adc.is_file() or _metadata_server_answers():
        return
    raise StorageError(
        f"{loc}: no credentials for gs:// in the environment; {_CREDENTIALS_HINT['gs']}"
    )
