#!/usr/bin/env python3
"""Writes registry/: an OCI image layout tree, one layout per repository, that serves as the
demo's registry. Each tag is a tiny but valid image (its own config blob, one shared empty
layer). Run it again after changing TAGS; the output is deterministic."""
import gzip, hashlib, io, json, os, shutil, tarfile

TAGS = {
    "acme/web": ["1.1.0", "1.2.0", "1.2.5", "1.3.0", "1.3.1", "1.4.0-rc.1", "2.0.0", "latest"],
    "acme/api": ["2.3.0", "2.4.0", "2.4.1", "2.4.3", "2.5.0", "sha256-1e3f.sig"],
    "acme/worker": ["0.9.0", "1.0.0", "1.1.0", "1.2.0", "1.2.0-debug", "main-4f1c2ab"],
}
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "registry")


def blob(d, data):
    digest = hashlib.sha256(data).hexdigest()
    os.makedirs(os.path.join(d, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(d, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def empty_layer():
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT):
        pass
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as g:
        g.write(raw.getvalue())
    return out.getvalue()


shutil.rmtree(ROOT, ignore_errors=True)
layer = empty_layer()
for repo, tags in TAGS.items():
    d = os.path.join(ROOT, repo)
    os.makedirs(d)
    with open(os.path.join(d, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    layer_desc = dict(blob(d, layer), mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
    manifests = []
    for tag in tags:
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": {"org.opencontainers.image.version": tag}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()]},
        }, sort_keys=True).encode()
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": dict(blob(d, config), mediaType="application/vnd.oci.image.config.v1+json"),
            "layers": [layer_desc],
        }, sort_keys=True).encode()
        manifests.append(dict(blob(d, manifest), mediaType="application/vnd.oci.image.manifest.v1+json",
                              annotations={"org.opencontainers.image.ref.name": tag}))
    with open(os.path.join(d, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": manifests}, f, indent=2, sort_keys=True)
        f.write("\n")
