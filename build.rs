//! Gives the nezha binary, tests and benches an rpath to libtorch (through
//! nezha-train), so they run without LD_LIBRARY_PATH.

fn main() {
    nezha_build_support::link_libtorch();
}
