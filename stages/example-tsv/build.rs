//! The `nezha-tsv` binary links libtorch through nezha: give it the same
//! rpath as nezha's own binary.

fn main() {
    nezha_build_support::link_libtorch();
}
