//! Compiles `schemas/rnc_cuda.proto` (the launch plan stored in `.rnc` artifacts) with protox (pure
//! Rust), so no system `protoc` is needed.

fn main() {
    // The manifest dir of this build, read at run time (a build script binary may be reused across checkouts).
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let schemas = std::path::Path::new(&manifest).join("../../schemas");
    let proto = schemas.join("rnc_cuda.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let fds = protox::compile([&proto], [&schemas])
        .unwrap_or_else(|e| panic!("schemas/rnc_cuda.proto does not compile: {e}"));
    prost_build::Config::new()
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generating Rust from schemas/rnc_cuda.proto failed: {e}"));
}
