//! The binary's build script: the link arguments that reach libtorch
//! (rpaths, `--no-as-needed -ltorch`, the CUDA runtime), from the engine's
//! build script (link arguments apply only to the package that prints them),
//! and where a project build finds its default files.
//!
//! `CLASSVIZ_WHEEL=1` (set by `make wheel`) builds the binary for a Python
//! wheel: the engine's arguments then point into the torch package installed
//! beside it, and there is no project folder.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_CLASSVIZ_SHIMS_LINK_ARGS");
    println!("cargo:rerun-if-env-changed=CLASSVIZ_WHEEL");
    let arguments = std::env::var("DEP_CLASSVIZ_SHIMS_LINK_ARGS").unwrap_or_default();
    for argument in arguments.split('\x1f').filter(|a| !a.is_empty()) {
        println!("cargo:rustc-link-arg={argument}");
    }
    let wheel = std::env::var_os("CLASSVIZ_WHEEL").is_some_and(|v| v == "1");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let weights = if wheel { String::new() } else { format!("{manifest}/weights") };
    println!("cargo:rustc-env=CLASSVIZ_PROJECT_WEIGHTS={weights}");
}
