//! Generates client-only tonic code from the repository's `proto/`.

use std::{env, error::Error};

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { env::set_var("PROTOC", protoc) };
    let protos = [
        "../../proto/floodgate/v1/common.proto",
        "../../proto/floodgate/v1/admission.proto",
        "../../proto/floodgate/v1/workers.proto",
        "../../proto/floodgate/v1/admin.proto",
    ];
    tonic_prost_build::configure().build_server(false).compile_protos(&protos, &["../../proto"])?;
    // Envoy's rate-limit service (floodgate serves it for Envoy's ratelimit filter).
    let envoy = [
        "../../proto/envoy/config/core/v3/base.proto",
        "../../proto/envoy/extensions/common/ratelimit/v3/ratelimit.proto",
        "../../proto/envoy/service/ratelimit/v3/rls.proto",
    ];
    tonic_prost_build::configure().build_server(false).compile_protos(&envoy, &["../../proto"])?;
    println!("cargo:rerun-if-changed=../../proto");
    Ok(())
}
