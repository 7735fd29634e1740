//! The crate ships its protos (`proto/`) and the code generated from them
//! (`src/generated/`) so that it builds anywhere without protoc or a build
//! script. These tests keep both current: the protos identical to the
//! repository's `proto/`, and the code identical to what tonic-prost-build
//! generates from them now.
//!
//! After changing `proto/` at the repository root, refresh both with
//! `FLOODGATE_UPDATE_GENERATED=1 cargo test -p floodgate-client --test generated`
//! and commit the result.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The proto files the client is generated from (paths under `proto/`).
const FLOODGATE: [&str; 4] = [
    "floodgate/v1/common.proto",
    "floodgate/v1/admission.proto",
    "floodgate/v1/workers.proto",
    "floodgate/v1/admin.proto",
];
const ENVOY: [&str; 3] = [
    "envoy/config/core/v3/base.proto",
    "envoy/extensions/common/ratelimit/v3/ratelimit.proto",
    "envoy/service/ratelimit/v3/rls.proto",
];
/// The generated files `src/lib.rs` includes.
const GENERATED: [&str; 4] = [
    "floodgate.v1.rs",
    "envoy.config.core.v3.rs",
    "envoy.extensions.common.ratelimit.v3.rs",
    "envoy.service.ratelimit.v3.rs",
];

/// The two tests share the crate's `proto/` (rewritten when updating) and
/// the process environment (`PROTOC`): one at a time.
static LOCK: Mutex<()> = Mutex::new(());

const FIX: &str = "FLOODGATE_UPDATE_GENERATED=1 cargo test -p floodgate-client --test generated";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn updating() -> bool {
    std::env::var_os("FLOODGATE_UPDATE_GENERATED").is_some_and(|v| v == "1")
}

fn scratch_dir(what: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "floodgate-client-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Every `.proto` under `root`, keyed by its path relative to `root`.
fn protos_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "proto") {
                let rel = path.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
                out.insert(rel, fs::read(&path).expect("read proto"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Runs tonic-prost-build (client side only, as `src/lib.rs` expects) on the
/// crate's `proto/` into a fresh directory.
fn generate() -> PathBuf {
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc");
    // SAFETY: every test of this file holds LOCK, so no other thread of
    // this process touches the environment meanwhile; prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out = scratch_dir("generated");
    let proto = crate_dir().join("proto");
    let paths = |files: &[&str]| files.iter().map(|f| proto.join(f)).collect::<Vec<_>>();
    for files in [&FLOODGATE[..], &ENVOY[..]] {
        tonic_prost_build::configure()
            .build_server(false)
            .emit_rerun_if_changed(false)
            .out_dir(&out)
            .compile_protos(&paths(files), std::slice::from_ref(&proto))
            .expect("protos compile");
    }
    out
}

/// The repository's protos; when updating, copied over the crate's first.
fn repository_protos() -> BTreeMap<String, Vec<u8>> {
    let repo = crate_dir().join("../../proto");
    assert!(repo.is_dir(), "the repository's proto/ is not at {}", repo.display());
    let wanted = protos_under(&repo);
    if updating() {
        let shipped_dir = crate_dir().join("proto");
        let _ = fs::remove_dir_all(&shipped_dir);
        for (rel, bytes) in &wanted {
            let path = shipped_dir.join(rel);
            fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
            fs::write(&path, bytes).expect("write proto");
        }
    }
    wanted
}

#[test]
fn the_crate_protos_are_the_repository_protos() {
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let wanted = repository_protos();
    let shipped_dir = crate_dir().join("proto");
    let shipped = protos_under(&shipped_dir);
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&shipped), names(&wanted), "clients/rust/proto lists other files than proto/; run {FIX}");
    for (rel, bytes) in &wanted {
        assert!(shipped[rel] == *bytes, "clients/rust/proto/{rel} differs from proto/{rel}; run {FIX}");
    }
}

#[test]
fn the_checked_in_code_is_what_the_protos_generate() {
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    repository_protos();
    let fresh = generate();
    let checked_in = crate_dir().join("src/generated");
    if updating() {
        fs::create_dir_all(&checked_in).expect("mkdir src/generated");
        for name in GENERATED {
            fs::copy(fresh.join(name), checked_in.join(name)).expect("copy generated file");
        }
    }
    for name in GENERATED {
        let now = fs::read_to_string(fresh.join(name)).unwrap_or_else(|e| panic!("generated {name}: {e}"));
        let kept = fs::read_to_string(checked_in.join(name)).unwrap_or_else(|e| panic!("src/generated/{name}: {e}"));
        assert!(now == kept, "src/generated/{name} is not what proto/ generates now; run {FIX}");
    }
    let _ = fs::remove_dir_all(&fresh);
}
