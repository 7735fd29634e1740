//! Generates the tonic/prost code and the reflection descriptor set from
//! `proto/`, with the protoc shipped by protoc-bin-vendored so that a fresh
//! machine needs no system protoc.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { env::set_var("PROTOC", protoc) };
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let protos = [
        "proto/floodgate/v1/common.proto",
        "proto/floodgate/v1/admission.proto",
        "proto/floodgate/v1/workers.proto",
        "proto/floodgate/v1/admin.proto",
    ];
    tonic_prost_build::configure()
        // `floodgate admin --json` prints the answers as JSON.
        .type_attribute(".floodgate.v1", "#[derive(serde::Serialize)]")
        .file_descriptor_set_path(out_dir.join("floodgate_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    // Envoy's rate-limit service (hand-written subset), in its own
    // descriptor set so that floodgate's set stays floodgate's. The server
    // reads its request and writes its answer with its own types and codec
    // (src/grpc/rls/wire.rs: one allocation per request instead of one per
    // text, and no intermediate answer), and floodgate calls no RLS server,
    // so no client is generated.
    let envoy = [
        "proto/envoy/config/core/v3/base.proto",
        "proto/envoy/extensions/common/ratelimit/v3/ratelimit.proto",
        "proto/envoy/service/ratelimit/v3/rls.proto",
    ];
    tonic_prost_build::configure()
        .build_client(false)
        .extern_path(".envoy.service.ratelimit.v3.RateLimitRequest", "crate::grpc::rls::wire::RateLimitRequest")
        .extern_path(".envoy.service.ratelimit.v3.RateLimitResponse", "crate::grpc::rls::wire::RateLimitResponse")
        .codec_path("crate::grpc::rls::wire::RlsCodec")
        .file_descriptor_set_path(out_dir.join("envoy_rls_descriptor.bin"))
        .compile_protos(&envoy, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
