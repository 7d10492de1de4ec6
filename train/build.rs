//! Gives this crate's tests, benches and examples an rpath to the libtorch
//! they were linked against, so they run without LD_LIBRARY_PATH.

fn main() {
    nezha_build_support::link_libtorch();
}
