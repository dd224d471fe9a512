"""Upload the trading page (frontend/public) to a deployed stack's web bucket.

`make frontend-upload STACK=bourse-dev` (run by `make deploy` after `sam deploy`). Everything
it needs comes from the stack's outputs:

* the bucket: ``WebUiBucketName`` (``--bucket-output`` names another output);
* the API the page talks to: ``RestApiUrl``, and ``WebSocketStreamsUrl`` for Binance's stream
  paths; both go into ``config.json`` next to index.html (behind CloudFront the API is another
  origin, unlike the local gateway, which serves page and API on one port);
* ``WebUiDistributionId``, when the stack has it: its cache is invalidated so the new files
  show at once.

Files go up with their content type (the same table the local gateway serves with) and a
short cache for HTML and config, a long one for everything else.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import boto3

from devstack.gateway.static import CONTENT_TYPES, STATIC_ROOT

SHORT_CACHE = "no-cache"
LONG_CACHE = "public, max-age=3600"


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def page_config(outputs: dict[str, str]) -> dict[str, str]:
    config = {"apiBase": outputs["RestApiUrl"].rstrip("/")}
    if outputs.get("WebSocketStreamsUrl"):
        config["wsBase"] = outputs["WebSocketStreamsUrl"].rstrip("/")
    return config


def files_to_upload(root: Path) -> list[tuple[Path, str]]:
    """(file, key) for every servable file under root; anything else (dot files, unknown
    types) stays behind, as the local gateway would not serve it either."""
    found = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix in CONTENT_TYPES:
            found.append((path, relative.as_posix()))
    return found


def upload(stack: str, bucket_output: str, root: Path = STATIC_ROOT) -> None:
    cloudformation = boto3.client("cloudformation")
    outputs = stack_outputs(cloudformation, stack)
    if bucket_output not in outputs:
        raise SystemExit(f"error: stack {stack} has no output {bucket_output}")
    if not (root / "vendor" / "lightweight-charts.mjs").exists():
        raise SystemExit("error: the chart library is missing: run `make frontend` first")
    bucket = outputs[bucket_output]
    s3 = boto3.client("s3")
    for path, key in files_to_upload(root):
        cache = SHORT_CACHE if path.suffix == ".html" else LONG_CACHE
        s3.upload_file(
            str(path), bucket, key,
            ExtraArgs={"ContentType": CONTENT_TYPES[path.suffix], "CacheControl": cache},
        )  # fmt: skip
        print(f"s3://{bucket}/{key}")
    s3.put_object(
        Bucket=bucket,
        Key="config.json",
        Body=json.dumps(page_config(outputs)).encode(),
        ContentType=CONTENT_TYPES[".json"],
        CacheControl=SHORT_CACHE,
    )
    print(f"s3://{bucket}/config.json")
    distribution = outputs.get("WebUiDistributionId")
    if distribution:
        boto3.client("cloudfront").create_invalidation(
            DistributionId=distribution,
            InvalidationBatch={
                "Paths": {"Quantity": 1, "Items": ["/*"]},
                "CallerReference": f"frontend-upload-{time.time_ns()}",
            },
        )
        print(f"invalidated CloudFront distribution {distribution}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="the deployed stack's name")
    parser.add_argument("--bucket-output", default="WebUiBucketName")
    args = parser.parse_args(argv)
    upload(args.stack, args.bucket_output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
