//! Shared by the build scripts of every crate that links libtorch: gives
//! the crate's binaries, tests, benches and examples an rpath to the
//! libtorch they were linked against, so they run without
//! LD_LIBRARY_PATH, and keeps libtorch_cuda linked when it is there.

use std::process::Command;

/// The libtorch lib dir, from the same sources torch-sys reads.
pub fn libtorch_lib_dir() -> Option<String> {
    // torch-sys (links = "tch") exports the dir it linked against to its
    // direct dependents: always right when present.
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        return Some(dir);
    }
    if let Ok(t) = std::env::var("LIBTORCH") {
        return Some(format!("{t}/lib"));
    }
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        let python = if std::env::var_os("VIRTUAL_ENV").is_some() {
            "python"
        } else {
            "python3"
        };
        let out = Command::new(python)
            .args([
                "-c",
                "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))",
            ])
            .output()
            .ok()?;
        let dir = String::from_utf8(out.stdout).ok()?.trim().to_string();
        return (!dir.is_empty()).then_some(dir);
    }
    None
}

/// Emits the cargo directives; call it from `build.rs`.
pub fn link_libtorch() {
    for var in ["LIBTORCH", "LIBTORCH_USE_PYTORCH", "VIRTUAL_ENV"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    match libtorch_lib_dir() {
        Some(lib) => {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
            // Nothing references libtorch_cuda's symbols directly, so with
            // the default --as-needed the linker drops it and libtorch never
            // registers its CUDA backend: with the crate's `cuda` feature,
            // force it in. Without it, CPU-only programs do not load CUDA's
            // libraries at all (about 0.4 s and 400 MB of RSS at start-up).
            let cuda = std::env::var_os("CARGO_FEATURE_CUDA").is_some();
            if cuda && std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
                println!("cargo:rustc-link-search=native={lib}");
                println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
                // NVRTC, which the fused optimizer kernels load at run
                // time, ships beside torch in the wheel's nvidia/cu13/lib.
                println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}/../../nvidia/cu13/lib");
            }
        }
        None => println!(
            "cargo:warning=libtorch lib dir unknown (LIBTORCH unset; see scripts/libtorch.sh): \
             binaries will need LD_LIBRARY_PATH"
        ),
    }
}
