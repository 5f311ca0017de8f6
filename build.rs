//! Bake libtorch's location into the binary so that `target/release/classviz`
//! runs without `LD_LIBRARY_PATH`.
//!
//! `torch-sys` exports `DEP_TCH_LIBTORCH_LIB` only to crates that depend on it
//! directly, which is why classviz lists it in `Cargo.toml`.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath={lib_dir}");
    }
    // Without --no-as-needed the linker drops libtorch (and with it
    // libtorch_cuda) because no symbol is referenced directly, and CUDA is
    // then never found at run time.
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
}
