"""Ship what `sam deploy` cannot: the matching-service image, into the stack's ECR repository.

    python infra/release.py matching-image --stage dev --tag <tag>

Runs with the SAM tool environment's boto3 (make matching-image); needs AWS credentials for the
stage's account and Docker. (The web UI's files go up with make frontend-upload.)
"""

from __future__ import annotations

import argparse
import base64
import subprocess
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parent.parent


def _outputs(stack: str) -> dict[str, str]:
    described = boto3.client("cloudformation").describe_stacks(StackName=stack)
    return {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}


def matching_image(stack: str, tag: str) -> None:
    uri = _outputs(stack)["MatchingRepositoryUri"]
    auth = boto3.client("ecr").get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)
    registry = uri.split("/", 1)[0]
    subprocess.run(
        ["docker", "login", "--username", user, "--password-stdin", registry],
        input=password.encode(), check=True,
    )  # fmt: skip
    image = f"{uri}:{tag}"
    subprocess.run(
        ["docker", "build", "--platform", "linux/amd64", "-f", "matching-service/Dockerfile",
         "-t", image, "."],
        cwd=REPO, check=True,
    )  # fmt: skip
    subprocess.run(["docker", "push", image], check=True)
    print(f"pushed {image}; deploy it with: make deploy STAGE=<stage> MATCHING_IMAGE_TAG={tag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    image = sub.add_parser("matching-image", help="build and push the matching-service image")
    image.add_argument("--stage", required=True)
    image.add_argument("--tag", required=True)
    args = parser.parse_args()
    matching_image(f"bourse-{args.stage}", args.tag)


if __name__ == "__main__":
    main()
