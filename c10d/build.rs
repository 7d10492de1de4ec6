//! Compiles the C++ shim (shim/*.cpp) against the libtorch that torch-sys
//! links, and gives this crate's tests an rpath to it.
//!
//! Gloo's headers are not in the torch wheel; Debian's `libgloo-dev` provides
//! headers that match the Gloo compiled into libtorch_cpu closely enough for
//! ProcessGroupGloo.hpp (only the headers are used: libgloo itself is never
//! linked, the code is libtorch's). With the `nccl` feature the CUDA headers
//! come from the wheel's nvidia-* dependencies plus NEZHA_CUDA_HEADERS (see
//! scripts/setup-dist.sh).

use std::path::{Path, PathBuf};

/// The libtorch lib dir: torch-sys (links = "tch") exports the one it linked
/// against to direct dependents; LIBTORCH is the fallback it reads itself.
fn libtorch_lib_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        return PathBuf::from(dir);
    }
    match std::env::var("LIBTORCH") {
        Ok(t) => Path::new(&t).join("lib"),
        Err(_) => panic!(
            "nezha-c10d: neither DEP_TCH_LIBTORCH_LIB (from torch-sys) nor LIBTORCH is set; \
             `source scripts/libtorch.sh` first"
        ),
    }
}

fn require(path: &Path, what: &str) {
    if !path.exists() {
        panic!("nezha-c10d: {} not found ({what})", path.display());
    }
}

fn main() {
    for var in [
        "LIBTORCH",
        "LIBTORCH_CXX11_ABI",
        "GLOO_INCLUDE_DIR",
        "NEZHA_CUDA_HEADERS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=shim");

    let lib = libtorch_lib_dir();
    let torch = lib
        .parent()
        .expect("libtorch lib dir has a parent")
        .to_path_buf();
    let include = torch.join("include");
    require(
        &include.join("torch/csrc/distributed/c10d/ProcessGroupGloo.hpp"),
        "libtorch headers, from the torch wheel",
    );
    let gloo_include = std::env::var("GLOO_INCLUDE_DIR").unwrap_or_else(|_| "/usr/include".into());
    require(
        &Path::new(&gloo_include).join("gloo/algorithm.h"),
        "Gloo's headers: `apt-get install libgloo-dev`, or set GLOO_INCLUDE_DIR",
    );
    // torch-sys compiles its own shim with the same default: the wheel is
    // built with the C++11 std::string ABI.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());

    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .std("c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", abi.as_str())
        .define("GLOG_USE_GLOG_EXPORT", None)
        .define("USE_C10D_GLOO", None)
        // libtorch's headers are not ours to fix: their warnings would bury
        // the shim's own.
        .flag("-isystem")
        .flag(include.to_str().expect("utf-8 path"))
        .flag("-isystem")
        .flag(
            include
                .join("torch/csrc/api/include")
                .to_str()
                .expect("utf-8 path"),
        )
        .files([
            "shim/store.cpp",
            "shim/gloo.cpp",
            "shim/collectives.cpp",
            "shim/hooks.cpp",
        ]);

    // /usr/include is searched already; naming it again with -isystem would
    // break libstdc++'s #include_next.
    if Path::new(&gloo_include) != Path::new("/usr/include") {
        build.flag("-isystem").flag(&gloo_include);
    }

    if std::env::var_os("CARGO_FEATURE_NCCL").is_some() {
        // site-packages, where the wheel's nvidia-* dependencies live.
        let site = torch.parent().expect("torch dir has a parent");
        let cuda_headers = std::env::var("NEZHA_CUDA_HEADERS").unwrap_or_else(|_| {
            panic!(
                "nezha-c10d: the `nccl` feature needs NEZHA_CUDA_HEADERS, a directory with \
                 nv/target and crt/host_config.h (see scripts/setup-dist.sh)"
            )
        });
        let dirs = [
            site.join("nvidia/cu13/include"),
            site.join("nvidia/nccl/include"),
            PathBuf::from(&cuda_headers),
        ];
        require(
            &dirs[0].join("cuda_runtime_api.h"),
            "the wheel's nvidia-cuda-runtime",
        );
        require(&dirs[1].join("nccl.h"), "the wheel's nvidia-nccl");
        require(&dirs[2].join("nv/target"), "PyPI nvidia-cuda-cccl");
        require(&dirs[2].join("crt/host_config.h"), "PyPI nvidia-cuda-crt");
        for dir in &dirs {
            build
                .flag("-isystem")
                .flag(dir.to_str().expect("utf-8 path"));
        }
        build
            .define("USE_C10D_NCCL", None)
            .define("USE_CUDA", None)
            .file("shim/nccl.cpp");
    }
    build.compile("nezha_c10d_shim");

    // After the static shim on the link line, so its references resolve.
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
    if std::env::var_os("CARGO_FEATURE_NCCL").is_some() {
        // The shim names ProcessGroupNCCL's symbols, so the linker keeps
        // torch_cuda even with --as-needed, and c10_cuda comes with it. A
        // link-lib (unlike a link-arg) also reaches the crates that use this.
        println!("cargo:rustc-link-lib=dylib=torch_cuda");
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
