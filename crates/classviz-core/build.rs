//! The link arguments that reach libtorch (rpaths, `--no-as-needed -ltorch`),
//! from the engine's build script: link arguments apply only to the package
//! that prints them, and this package's tests link libtorch too.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_CLASSVIZ_SHIMS_LINK_ARGS");
    let arguments = std::env::var("DEP_CLASSVIZ_SHIMS_LINK_ARGS").unwrap_or_default();
    for argument in arguments.split('\x1f').filter(|a| !a.is_empty()) {
        println!("cargo:rustc-link-arg={argument}");
    }
}
