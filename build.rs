//! Bake libtorch's location into the binary so that `target/release/classviz`
//! runs without `LD_LIBRARY_PATH`, and compile the small C++ shims that tch
//! does not provide: bf16 autocast (`csrc/autocast.cpp`) and AOTInductor
//! packages with CUDA graphs (`csrc/aoti.cpp`).
//!
//! `torch-sys` exports `DEP_TCH_LIBTORCH_LIB` only to crates that depend on it
//! directly, which is why classviz lists it in `Cargo.toml`.
//!
//! `CLASSVIZ_WHEEL=1` (set by `make wheel`) builds the binary for a Python
//! wheel: instead of this machine's libtorch, it looks for the torch package
//! installed beside it (`<prefix>/bin/classviz` → `<prefix>/lib/pythonX.Y/site-packages/torch/lib`).

use std::path::{Path, PathBuf};

/// Python versions whose site-packages a wheel's binary looks in for torch.
const PYTHON_VERSIONS: [&str; 7] = ["3.9", "3.10", "3.11", "3.12", "3.13", "3.14", "3.15"];

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
    // Where a project build finds its default files; a wheel has no project.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let weights = if wheel { String::new() } else { format!("{manifest}/weights") };
    println!("cargo:rustc-env=CLASSVIZ_PROJECT_WEIGHTS={weights}");
    let cuda = cuda_runtime(&root);
    let mut rpaths = vec![("torch/lib", PathBuf::from(&lib_dir))];
    if let Some(cuda) = &cuda {
        rpaths.push(("nvidia/cu13/lib", cuda.lib.clone()));
    }
    for (in_site_packages, here) in rpaths {
        if wheel {
            for version in PYTHON_VERSIONS {
                let relative =
                    format!("$ORIGIN/../lib/python{version}/site-packages/{in_site_packages}");
                println!("cargo:rustc-link-arg=-Wl,-rpath,{relative}");
            }
        } else {
            println!("cargo:rustc-link-arg=-Wl,-rpath={}", here.display());
        }
    }
    compile_shims(&root, cuda.as_ref().map(|c| c.include.as_path()));
    // Without --no-as-needed the linker drops libtorch (and with it
    // libtorch_cuda) because no symbol is referenced directly, and CUDA is
    // then never found at run time.
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    if let Some(cuda) = &cuda {
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-lc10_cuda");
        println!("cargo:rustc-link-arg=-L{}", cuda.lib.display());
        println!("cargo:rustc-link-arg=-l:{}", cuda.runtime);
    }
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
