//! Compile the small C++ shims that tch does not provide (bf16 autocast,
//! `csrc/autocast.cpp`; AOTInductor packages with CUDA graphs,
//! `csrc/aoti.cpp`), and work out the link arguments that bake libtorch's
//! location into every executable that links it, so that
//! `target/release/classviz` (and every test) runs without `LD_LIBRARY_PATH`.
//!
//! Link arguments apply only to the package whose build script prints them,
//! so this one prints them for the engine's own tests and hands them on as
//! `links` metadata (`DEP_CLASSVIZ_SHIMS_LINK_ARGS`, one per line) to the
//! packages above it, whose build scripts print them again.
//!
//! `torch-sys` exports `DEP_TCH_LIBTORCH_LIB` only to crates that depend on it
//! directly, which is why the engine lists it in `Cargo.toml`.
//!
//! `CLASSVIZ_WHEEL=1` (set by `make wheel`) builds the binary for a Python
//! wheel: instead of this machine's libtorch, it looks for the torch package
//! installed beside it (`<prefix>/bin/classviz` → `<prefix>/lib/pythonX.Y/site-packages/torch/lib`).

use std::path::{Path, PathBuf};

/// Python versions whose site-packages a wheel's binary looks in for torch.
const PYTHON_VERSIONS: [&str; 4] = ["3.11", "3.12", "3.13", "3.14"];

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=CLASSVIZ_WHEEL");
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo:rerun-if-changed=csrc/aoti.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib_dir = std::env::var("DEP_TCH_LIBTORCH_LIB")
        .expect("torch-sys did not say where libtorch is (DEP_TCH_LIBTORCH_LIB)");
    let wheel = std::env::var_os("CLASSVIZ_WHEEL").is_some_and(|v| v == "1");
    // libtorch's headers sit beside its lib folder, in the PyTorch wheel and
    // in an unpacked libtorch alike.
    let root = PathBuf::from(&lib_dir).join("..");
    println!("cargo:rustc-env=CLASSVIZ_TORCH_VERSION={}", torch_version(&root));
    let cuda = cuda_runtime(&root);
    compile_shims(&root, cuda.as_ref().map(|c| c.include.as_path()));
    let arguments = link_arguments(&lib_dir, cuda.as_ref(), wheel);
    for argument in &arguments {
        println!("cargo:rustc-link-arg={argument}");
    }
    // Read by the build scripts of the packages above as DEP_CLASSVIZ_SHIMS_LINK_ARGS.
    println!("cargo:link_args={}", arguments.join("\x1f"));
}

/// The rpaths to libtorch (and the CUDA runtime), then libtorch itself.
/// Without --no-as-needed the linker drops libtorch (and with it
/// libtorch_cuda) because no symbol is referenced directly, and CUDA is then
/// never found at run time.
fn link_arguments(lib_dir: &str, cuda: Option<&Cuda>, wheel: bool) -> Vec<String> {
    let mut rpaths = vec![("torch/lib", PathBuf::from(lib_dir))];
    if let Some(cuda) = cuda {
        rpaths.push(("nvidia/cu13/lib", cuda.lib.clone()));
    }
    let mut arguments = Vec::new();
    for (in_site_packages, here) in rpaths {
        if wheel {
            for version in PYTHON_VERSIONS {
                let relative =
                    format!("$ORIGIN/../lib/python{version}/site-packages/{in_site_packages}");
                arguments.push(format!("-Wl,-rpath,{relative}"));
            }
        } else {
            arguments.push(format!("-Wl,-rpath={}", here.display()));
        }
    }
    arguments.extend(["-Wl,--no-as-needed".to_string(), "-ltorch".to_string()]);
    if let Some(cuda) = cuda {
        arguments.extend(["-ltorch_cuda".to_string(), "-lc10_cuda".to_string()]);
        arguments.push(format!("-L{}", cuda.lib.display()));
        arguments.push(format!("-l:{}", cuda.runtime));
    }
    arguments
}

/// The CUDA runtime beside torch: its headers, its library folder and file.
struct Cuda {
    include: PathBuf,
    lib: PathBuf,
    runtime: String,
}

/// The shims, against libtorch's headers; the CUDA graph part only where the
/// CUDA runtime's headers are found (the PyTorch wheel's nvidia packages).
fn compile_shims(root: &Path, cuda_include: Option<&Path>) {
    // The PyTorch wheels use the C++11 ABI; torch-sys reads the same variable.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .file("csrc/autocast.cpp")
        .file("csrc/aoti.cpp");
    if let Some(cuda) = cuda_include {
        build.include(cuda).define("CLASSVIZ_CUDA", None);
    }
    build.compile("classviz_shims");
}

/// The CUDA runtime of the `nvidia` packages beside torch in a Python
/// environment, if the headers the CUDA-graph shim needs are all there
/// (`nvidia-cuda-crt` supplies the ones the torch wheel leaves out).
fn cuda_runtime(torch_root: &Path) -> Option<Cuda> {
    let cu13 = torch_root.join("../nvidia/cu13");
    let include = cu13.join("include");
    let complete = ["cuda_runtime_api.h", "crt/host_defines.h", "crt/host_config.h"]
        .iter()
        .all(|header| include.join(header).is_file());
    if !complete || !torch_root.join("lib/libtorch_cuda.so").is_file() {
        return None;
    }
    let lib = cu13.join("lib");
    let runtime = std::fs::read_dir(&lib)
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .find(|name| name.starts_with("libcudart.so."))?;
    Some(Cuda { include, lib, runtime })
}

/// The torch version the binary is built against (`torch/version.py`), which
/// a compiled package must match.
fn torch_version(torch_root: &Path) -> String {
    let text = std::fs::read_to_string(torch_root.join("version.py")).unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("__version__"))
        .map(|rest| {
            rest.trim_start_matches([' ', '=', ':']).trim_matches([' ', '\'', '"']).to_string()
        })
        .map(|version| version.split('+').next().unwrap_or_default().to_string())
        .unwrap_or_default()
}
