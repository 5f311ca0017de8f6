//! Bake libtorch's location into the binary so that `target/release/classviz`
//! runs without `LD_LIBRARY_PATH`, and compile the small C++ shim that turns
//! on bf16 autocast (`csrc/autocast.cpp`), which tch does not expose.
//!
//! `torch-sys` exports `DEP_TCH_LIBTORCH_LIB` only to crates that depend on it
//! directly, which is why classviz lists it in `Cargo.toml`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib_dir = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not say where libtorch is (DEP_TCH_LIBTORCH_LIB)");
    println!("cargo:rustc-link-arg=-Wl,-rpath={lib_dir}");
    // libtorch's headers sit beside its lib folder, in the PyTorch wheel and
    // in an unpacked libtorch alike.
    let root = PathBuf::from(&lib_dir).join("..");
    // The PyTorch wheels use the C++11 ABI; torch-sys reads the same variable.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .file("csrc/autocast.cpp")
        .compile("classviz_autocast");
    // Without --no-as-needed the linker drops libtorch (and with it
    // libtorch_cuda) because no symbol is referenced directly, and CUDA is
    // then never found at run time.
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
}
