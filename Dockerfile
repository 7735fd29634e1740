# syntax=docker/dockerfile:1
#
# floodgate's container image: a release build on Debian bookworm,
# run as a non-root user on distroless (glibc + libgcc, no shell).
#
#   docker build -t floodgate:0.1.0 .
#   docker run --rm -p 50051:50051 -p 8080:8080 floodgate:0.1.0 serve --profile development
#
# protoc comes from the protoc-bin-vendored crate (build.rs), so the build
# needs no system protoc. Multi-arch: docker buildx build --platform
# linux/amd64,linux/arm64 (builds natively under emulation per platform).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The workspace: the server crate, the Rust client crate and the load
# generator crate (workspace members; the client is also a dev-dependency,
# so Cargo needs their manifests and sources).
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto ./proto
COPY src ./src
COPY console ./console
COPY clients/rust ./clients/rust
COPY clients/loadgen ./clients/loadgen
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin floodgate \
    && install -D -m 0755 target/release/floodgate /out/floodgate

# cc: glibc and libgcc_s, which Rust binaries link; :nonroot runs as 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/floodgate /usr/local/bin/floodgate
USER 65532:65532
# In a container, listen on every interface (the binary's defaults are
# loopback); flags, the Helm chart's env and the config file can change this.
ENV FLOODGATE_GRPC_ADDR=0.0.0.0:50051 \
    FLOODGATE_HTTP_ADDR=0.0.0.0:8080 \
    FLOODGATE_LOG_FORMAT=json
EXPOSE 50051 8080
ENTRYPOINT ["/usr/local/bin/floodgate"]
CMD ["serve"]
