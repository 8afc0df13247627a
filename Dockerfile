# syntax=docker/dockerfile:1
# image-updater from source: a static musl binary on scratch, with a CA bundle and a writable
# /tmp (for `run --clone`), running as the unprivileged 65532:65532. No shell, no git binary.
#
#   docker build -t image-updater .
#   docker run --rm -e IMAGE_UPDATER_GIT_TOKEN image-updater run --clone https://github.com/acme/infra.git
#
# Releases are built by .github/workflows/release.yml from the released binaries with the
# Containerfile instead (the same image, without compiling under emulation).

FROM docker.io/library/rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    target="$(uname -m)-unknown-linux-musl"; \
    rustup target add "$target"; \
    CC_x86_64_unknown_linux_musl=musl-gcc CC_aarch64_unknown_linux_musl=musl-gcc \
      cargo build --release --locked --target "$target"; \
    install -D -m 755 "target/$target/release/image-updater" /out/image-updater; \
    strip /out/image-updater; \
    mkdir -p /out/rootfs/etc/ssl/certs /out/rootfs/tmp; \
    chmod 1777 /out/rootfs/tmp; \
    cp /etc/ssl/certs/ca-certificates.crt /out/rootfs/etc/ssl/certs/

FROM scratch
COPY --from=build /out/rootfs/ /
COPY --from=build /out/image-updater /image-updater
USER 65532:65532
ENTRYPOINT ["/image-updater"]
