"""Media type constants (reference/image-formats.md section 2.1)."""
from __future__ import annotations

# OCI
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_DESCRIPTOR = "application/vnd.oci.descriptor.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

# Docker (v2 schema 2)
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_PLUGIN = "application/vnd.docker.plugin.v1+json"

MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEXES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})
LAYERS = frozenset({
    OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYER_NONDISTRIBUTABLE,
    OCI_LAYER_NONDISTRIBUTABLE_GZIP, OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
    DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_LAYER_ZSTD, DOCKER_FOREIGN_LAYER, DOCKER_FOREIGN_LAYER_GZIP,
})
NONDISTRIBUTABLE = frozenset({
    OCI_LAYER_NONDISTRIBUTABLE, OCI_LAYER_NONDISTRIBUTABLE_GZIP, OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
    DOCKER_FOREIGN_LAYER, DOCKER_FOREIGN_LAYER_GZIP,
})

#: Accept header value for manifest requests (section 3.2).
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])


def layer_compression(media_type: str) -> str:
    """"gzip", "zstd" or "none" for a layer media type (by suffix; "none" for unknown)."""
    if media_type.endswith(("+gzip", ".gzip")):
        return "gzip"
    if media_type.endswith(("+zstd", ".zstd")):
        return "zstd"
    return "none"
