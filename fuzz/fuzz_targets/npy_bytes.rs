//! Raw bytes as an `.npy` file. `resnetc::npy` reads from a path only (its header check needs the
//! file's size), so the bytes go to one temporary file per process, rewritten for each input.
//! `read_f32` must return Ok or Err: never panic, abort or allocate much more than the file holds.
#![no_main]

use std::io::Write;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn path() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"));
        dir.path().join("input.npy")
    })
}

fuzz_target!(|data: &[u8]| {
    let p = path();
    {
        let mut f = std::fs::File::create(p).expect("the temporary file");
        f.write_all(data).expect("writing the temporary file");
    }
    match resnetc::npy::read_f32(p) {
        Ok(a) => {
            // What was read must be what the file could hold.
            assert!(
                a.len() * 4 <= data.len(),
                "{} floats from a {}-byte file",
                a.len(),
                data.len()
            );
        }
        Err(e) => resnetc_fuzz::note("read", &e),
    }
});
