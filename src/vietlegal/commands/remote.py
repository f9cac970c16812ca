"""Check the DVC remote (Spaces): can this machine reach it, with accepted credentials, and a bucket?

`dvc push` reports these faults as "unexpected error - Forbidden: An error occurred (403) when calling the
HeadObject operation" and the like, and after a dropped connection it retries every remaining file before
giving up. This check asks the remote once, through DVC's own filesystem (so the same config, config.local,
AWS_* variables and profiles apply), and names the fault and the fix in one line.

    vietlegal remote check            # read access: what `dvc pull` needs (serving droplet)
    vietlegal remote check --write    # also write and delete one probe object: what `dvc push` needs
"""
from __future__ import annotations

import argparse
import os
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vietlegal.errors import RemoteError

CHECKSUM_VARS = ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION")
CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (from DO_SPACES_KEY / DO_SPACES_SECRET), or run "
    "`dvc remote modify --local {name} access_key_id ...` and `... secret_access_key ...`"
)


@dataclass(frozen=True)
class Remote:
    name: str
    url: str
    endpoint: str
    bucket: str
    prefix: str

    def where(self) -> str:
        return f"remote '{self.name}' ({self.url} at {self.endpoint})"


def open_remote(root: Path, name: str | None):
    """(Remote, s3fs filesystem) for the named (or default) DVC remote of the repo at `root`."""
    from dvc.config import RemoteConfigError
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(os.fspath(root))
    except DvcException as exc:
        raise RemoteError(f"{root} is not a DVC project ({exc}); run this inside the project") from exc
    with repo:
        try:
            dvc_remote = repo.cloud.get_remote(name, "remote check")
        except RemoteConfigError as exc:
            raise RemoteError(f"DVC remote not configured: {exc}") from exc
        config = dict(repo.config["remote"][dvc_remote.name])
    url = config.get("url", "")
    if not url.startswith("s3://"):
        raise RemoteError(f"remote '{dvc_remote.name}' is {url!r}; this check knows S3 remotes (s3://bucket/prefix)")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    endpoint = config.get("endpointurl", "https://s3.amazonaws.com")
    return Remote(dvc_remote.name, url, endpoint, bucket, prefix.strip("/")), dvc_remote.fs.fs


def checksum_warning(remote: Remote, env: Mapping[str, str]) -> str | None:
    """botocore >= 1.36 sends CRC32 checksums that S3-compatible stores have rejected (dvc#10695)."""
    if "amazonaws.com" in remote.endpoint:
        return None
    unset = [v for v in CHECKSUM_VARS if env.get(v, "").lower() != "when_required"]
    if not unset:
        return None
    return f"warning: {' and '.join(unset)} not set to when_required; S3-compatible stores may reject uploads"


def botocore_error(exc: BaseException) -> BaseException:
    """s3fs wraps botocore errors in OSError subclasses; the botocore one carries the status and code."""
    seen = exc
    while seen is not None:
        if type(seen).__module__.startswith(("botocore", "aiobotocore")):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def explain(exc: BaseException, remote: Remote) -> RemoteError:
    """One line: which fault, on which remote, and what to change."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    cause = botocore_error(exc)
    if isinstance(cause, NoCredentialsError):
        return RemoteError(f"no credentials for {remote.where()}: {CREDENTIALS_HINT.format(name=remote.name)}")
    if isinstance(cause, EndpointConnectionError) or isinstance(exc, (ConnectionError, TimeoutError)):
        return RemoteError(
            f"cannot connect to {remote.endpoint} for remote '{remote.name}': check the network and the endpoint "
            f"(`dvc remote modify {remote.name} endpointurl https://<region>.digitaloceanspaces.com`)"
        )
    if isinstance(cause, ClientError):
        code = cause.response.get("Error", {}).get("Code", "")
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket" or (status == 404 and not code.startswith("NoSuchKey")):
            return RemoteError(
                f"bucket '{remote.bucket}' does not exist at {remote.endpoint}: create the Space in that region, "
                f"or fix the url (`dvc remote modify {remote.name} url s3://<space>/<prefix>`)"
            )
        if status in (401, 403) or code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
            return RemoteError(
                f"credentials rejected by {remote.endpoint} ({code or status}) for bucket '{remote.bucket}': check "
                f"the key and secret and that the key may use this Space; {CREDENTIALS_HINT.format(name=remote.name)}"
            )
    return RemoteError(f"{remote.where()}: {type(cause).__name__}: {cause}")


def probe(s3, remote: Remote, write: bool) -> int:
    """List (at most one page of) the prefix; with `write`, put and delete one small object. Returns keys seen."""
    listed = s3.call_s3("list_objects_v2", Bucket=remote.bucket, Prefix=f"{remote.prefix}/" if remote.prefix else "", MaxKeys=1000)
    if write:
        key = "/".join(p for p in (remote.prefix, f".vietlegal-check-{uuid.uuid4().hex}") if p)
        s3.call_s3("put_object", Bucket=remote.bucket, Key=key, Body=b"vietlegal remote check\n")
        s3.call_s3("delete_object", Bucket=remote.bucket, Key=key)
    return int(listed.get("KeyCount", 0))


def check(root: Path, name: str | None, write: bool) -> str:
    """The report line of a passing check; warnings go to stderr first; raises RemoteError with the fix."""
    # At most two attempts per request: a wrong endpoint fails in seconds, not after botocore's retries.
    os.environ.setdefault("AWS_MAX_ATTEMPTS", "2")
    remote, s3 = open_remote(root, name)
    warning = checksum_warning(remote, os.environ)
    if warning:
        print(warning, file=sys.stderr)
    try:
        count = probe(s3, remote, write)
    except Exception as exc:  # noqa: BLE001 - every failure is explained, none is swallowed
        raise explain(exc, remote) from exc
    access = "read and write" if write else "read"
    more = "+" if count >= 1000 else ""
    return f"ok: {remote.where()}: {access} access, {count}{more} objects under {remote.prefix or '/'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vietlegal remote", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    chk = sub.add_parser("check", help="reach the DVC remote with this machine's credentials")
    chk.add_argument("-r", "--remote", help="remote name (default: core.remote of the project)")
    chk.add_argument("--write", action="store_true", help="also write and delete a probe object (push access)")
    chk.add_argument("--root", type=Path, default=Path.cwd(), help="project directory (default: current)")
    args = parser.parse_args(argv)
    try:
        print(check(args.root, args.remote, args.write))
    except RemoteError as exc:
        print(f"vietlegal remote check: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
