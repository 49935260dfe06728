#!/usr/bin/env python3
"""azctl.py — container fixtures for the Bucket e2e tests against Azurite, with azure-storage-blob
(the reference client).

    azctl.py mkcontainer CONTAINER [public]   create (public: anonymous read + list)
    azctl.py put CONTAINER KEY                upload stdin to KEY (overwrites)
    azctl.py list CONTAINER                   JSON [[key, etag-as-listed], ...] over all pages
    azctl.py sas CONTAINER                    a read+list SAS query string for CONTAINER (1 hour)
    azctl.py rmcontainer CONTAINER            delete the container

Endpoint, account and key come from the e2e env: E2E_AZURITE_ENDPOINT, E2E_AZURITE_ACCOUNT, E2E_AZURITE_KEY.
"""
import datetime
import json
import os
import sys

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient, ContainerSasPermissions, generate_container_sas


def main(argv):
    account, key = os.environ["E2E_AZURITE_ACCOUNT"], os.environ["E2E_AZURITE_KEY"]
    svc = BlobServiceClient(account_url=os.environ["E2E_AZURITE_ENDPOINT"],
                            credential={"account_name": account, "account_key": key})
    cmd, name = argv[1], argv[2]
    c = svc.get_container_client(name)
    if cmd == "mkcontainer":
        try:
            c.create_container(public_access="container" if "public" in argv[3:] else None)
        except ResourceExistsError:
            pass
    elif cmd == "put":
        c.upload_blob(argv[3], sys.stdin.buffer.read(), overwrite=True)
    elif cmd == "list":
        json.dump([[b.name, b.etag] for b in c.list_blobs(results_per_page=1000)], sys.stdout)
    elif cmd == "sas":
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
        print(generate_container_sas(account, name, account_key=key,
                                     permission=ContainerSasPermissions(read=True, list=True), expiry=expiry))
    elif cmd == "rmcontainer":
        c.delete_container()
    else:
        sys.exit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv)
