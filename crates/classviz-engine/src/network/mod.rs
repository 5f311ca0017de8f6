//! The network, seen through one seam ([`Network`]): scores and taps for a
//! batch, and vector-Jacobian products. Implemented by a TorchScript module
//! and by a compiled AOTInductor package of the ascent step; [`open`] picks
//! the engine for `--engine` and the device.

pub mod compiled;
pub mod seam;
pub mod torchscript;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use tch::Device;

use classviz_records::files;
use classviz_records::sidecar::{beside_sidecar, CompiledPackage, Sidecar, Tap, EXPORTER};

pub use compiled::{Compiled, Package};
pub use seam::{tap_as_grid, Cotangent, Network, Outputs, Pass, TapId, Weights, Wrt};
pub use torchscript::TorchScript;

classviz_records::choice! {
    /// `--engine`: what runs the network.
    pub enum EngineChoice {
        default Auto;
        /// The engine measured faster on the device, when a package matches the
        /// model, the device and the shape; else TorchScript, with a line saying why.
        Auto = "auto",
        /// The AOTInductor package compiled by `weights/export.py --compile`; an error if none matches.
        Compiled = "compiled",
        /// The TorchScript model.
        Torchscript = "torchscript",
    }
}

/// The torch version this binary runs (a package runs only on the version that compiled it).
pub const TORCH_VERSION: &str = env!("CLASSVIZ_TORCH_VERSION");

/// Whether `auto` uses a matching compiled package on `device`: where it
/// measured faster than TorchScript (docs/benchmarks.md). On CUDA it has not
/// been measured yet, so TorchScript stays the default there.
pub fn auto_prefers_compiled(device: Device) -> bool {
    crate::knobs::auto_engine_compiled().unwrap_or(match device {
        Device::Cpu => AUTO_COMPILED_ON_CPU,
        _ => false,
    })
}

/// On the CPU a matching package is the default: `make bench` measures it
/// against TorchScript (docs/benchmarks.md).
const AUTO_COMPILED_ON_CPU: bool = true;

/// What choosing an engine needs to know about the model.
pub struct EngineContext<'a> {
    pub model_path: &'a Path,
    pub sidecar: Option<&'a Sidecar>,
    pub input_shape: [i64; 3],
    pub classes: i64,
    pub taps: &'a [Tap],
    /// `--threads`, if given: a package whose kernels keep their compiling
    /// machine's thread count cannot honour it.
    pub threads: Option<usize>,
}

/// The network for `choice`: the TorchScript module, or a compiled package
/// that matches the model file (by hash), the device, the input shape and the
/// torch version, wrapped around it. Under `auto` a missing or unusable
/// package falls back to TorchScript with a note saying why; under
/// `compiled` it is an error.
pub fn open(
    choice: EngineChoice,
    torchscript: TorchScript,
    context: &EngineContext<'_>,
) -> Result<(Box<dyn Network>, Option<String>)> {
    let device = torchscript.device();
    let wanted = match choice {
        EngineChoice::Torchscript => false,
        EngineChoice::Compiled => true,
        EngineChoice::Auto => auto_prefers_compiled(device),
    };
    if !wanted {
        return Ok((Box::new(torchscript), None));
    }
    match compiled_for(context, device) {
        Ok((package, path)) => match Package::load(&path, device) {
            Ok(loaded) => {
                let (taps, shapes) = package_layout(package, context)?;
                Ok((
                    Box::new(Compiled::new(
                        loaded,
                        torchscript,
                        package.batch,
                        taps,
                        shapes,
                        &path,
                    )),
                    None,
                ))
            }
            Err(err) if choice == EngineChoice::Auto => {
                Ok((Box::new(torchscript), Some(format!("using TorchScript: {err:#}"))))
            }
            Err(err) => Err(err.context("--engine compiled")),
        },
        // A model with no package at all runs on TorchScript without a word;
        // one whose packages do not fit says why.
        Err(why) if choice == EngineChoice::Auto => {
            let listed =
                context.sidecar.is_some_and(|s| s.compiled.as_ref().is_some_and(|p| !p.is_empty()));
            Ok((Box::new(torchscript), listed.then(|| format!("using TorchScript: {why}"))))
        }
        Err(why) => bail!("--engine compiled: {why}"),
    }
}

/// The model's taps the package returns (as indices) and the shapes of its
/// weight inputs: `[classes]`, then each tap's `[C, H, W]`.
fn package_layout(
    package: &CompiledPackage,
    context: &EngineContext<'_>,
) -> Result<(Vec<TapId>, Vec<Vec<i64>>)> {
    let mut taps = Vec::new();
    let mut shapes = vec![vec![context.classes]];
    for name in &package.taps {
        let Some(index) = context.taps.iter().position(|t| &t.name == name) else {
            bail!(
                "the compiled package returns tap {name}, which the model's sidecar does not list"
            );
        };
        taps.push(TapId::at(index));
        shapes.push(context.taps[index].output_shape()?);
    }
    Ok((taps, shapes))
}

/// The first package in the sidecar that fits, with its path; else why none does.
fn compiled_for<'a>(
    context: &EngineContext<'a>,
    device: Device,
) -> Result<(&'a CompiledPackage, PathBuf), String> {
    let kind = if device.is_cuda() { "cuda" } else { "cpu" };
    let how = format!("compile one with `{EXPORTER} --compile --device {kind}`");
    let Some(sidecar) = context.sidecar else {
        return Err(format!(
            "{} has no sidecar naming a compiled package; {how}",
            context.model_path.display()
        ));
    };
    let candidates: Vec<&CompiledPackage> =
        sidecar.compiled.iter().flatten().filter(|p| p.device == kind).collect();
    if candidates.is_empty() {
        return Err(format!(
            "no package compiled for {kind} beside {}; {how}",
            context.model_path.display()
        ));
    }
    let mut reason = String::new();
    for package in candidates {
        match check_package(package, sidecar, context) {
            Ok(path) => return Ok((package, path)),
            Err(why) if reason.is_empty() => reason = why,
            Err(_) => {}
        }
    }
    Err(format!("{reason}; {how}"))
}

/// Whether `package` is the one for this model file, shape and torch, and
/// intact: its path, or why not.
fn check_package(
    package: &CompiledPackage,
    sidecar: &Sidecar,
    context: &EngineContext<'_>,
) -> Result<PathBuf, String> {
    let path = beside_sidecar(context.model_path, &package.file);
    let shown = path.display();
    if sidecar.sha256.as_deref() != Some(package.model_sha256.as_str()) {
        return Err(format!(
            "package {shown} was compiled from another model file (its sha256 differs)"
        ));
    }
    if package.input_shape[..] != context.input_shape[..] {
        return Err(format!(
            "package {shown} takes input {:?}, the model here {:?}",
            package.input_shape, context.input_shape
        ));
    }
    if package.torch != TORCH_VERSION {
        return Err(format!(
            "package {shown} was compiled with torch {}, classviz runs {TORCH_VERSION}",
            package.torch
        ));
    }
    if let (Some(threads), None) = (context.threads, package.threads) {
        if package.device == "cpu" {
            return Err(format!(
                "package {shown}'s kernels run the thread count of the machine that compiled it, not --threads {threads} (compile it again to read the count at run time)"
            ));
        }
    }
    let actual = files::sha256_hex(&path, "compiled package").map_err(|err| format!("{err:#}"))?;
    if !actual.eq_ignore_ascii_case(&package.sha256) {
        return Err(format!(
            "package {shown} is damaged or was replaced: its sha256 is {actual}, the sidecar records {}",
            package.sha256
        ));
    }
    Ok(path)
}
