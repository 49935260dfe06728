#!/usr/bin/env python3
"""s3ctl.py — bucket fixtures for the Bucket e2e tests and the B4 bench, with boto3 (the reference client).

    s3ctl.py mkbucket BUCKET                 create (no error when it exists)
    s3ctl.py putdir BUCKET DIR               upload every file below DIR, key = path relative to DIR
    s3ctl.py put BUCKET KEY                  upload stdin to KEY
    s3ctl.py rm BUCKET KEY                   delete KEY
    s3ctl.py list BUCKET [PREFIX]            JSON [[key, etag-as-served], ...] over all listing pages
    s3ctl.py rmprefix BUCKET PREFIX          delete every object whose key starts with PREFIX
    s3ctl.py rmbucket BUCKET                 delete all objects and the bucket

Each bucket is a SeaweedFS collection with volumes of its own, and `weed mini` on a small disk has
only a few: tests and the bench use prefixes in the shared bucket E2E_S3_BUCKET instead.
Endpoint and keys come from the e2e env: E2E_S3_ENDPOINT, E2E_S3_ACCESS_KEY, E2E_S3_SECRET_KEY.
"""
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def client():
    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                 max_pool_connections=32)
    return boto3.client(
        "s3",
        endpoint_url="http://" + os.environ["E2E_S3_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=os.environ["E2E_S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["E2E_S3_SECRET_KEY"],
        config=cfg,
    )


def list_all(s3, bucket, prefix=""):
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out.append([o["Key"], o["ETag"]])
    return out


def main(argv):
    s3 = client()
    cmd, bucket = argv[1], argv[2]
    if cmd == "mkbucket":
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    elif cmd == "putdir":
        root = argv[3]
        files = []
        for d, _, names in os.walk(root):
            for n in names:
                p = os.path.join(d, n)
                files.append((p, os.path.relpath(p, root).replace(os.sep, "/")))

        def put(item):
            with open(item[0], "rb") as f:
                s3.put_object(Bucket=bucket, Key=item[1], Body=f.read())

        with ThreadPoolExecutor(16) as ex:
            list(ex.map(put, files))
        print(len(files))
    elif cmd == "put":
        s3.put_object(Bucket=bucket, Key=argv[3], Body=sys.stdin.buffer.read())
    elif cmd == "rm":
        s3.delete_object(Bucket=bucket, Key=argv[3])
    elif cmd == "list":
        json.dump(list_all(s3, bucket, argv[3] if len(argv) > 3 else ""), sys.stdout)
    elif cmd == "rmprefix":
        for key, _ in list_all(s3, bucket, argv[3]):
            s3.delete_object(Bucket=bucket, Key=key)
    elif cmd == "rmbucket":
        for key, _ in list_all(s3, bucket):
            s3.delete_object(Bucket=bucket, Key=key)
        s3.delete_bucket(Bucket=bucket)
    else:
        sys.exit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv)
