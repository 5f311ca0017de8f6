//! A compiled AOTInductor package of the ascent step behind the network seam
//! (`weights/export.py --compile`): one call takes the image batch and the
//! weights on the outputs, and returns the scores, the taps and the input's
//! gradient of the weighted outputs, with no Python and no TorchScript
//! interpreter. On CUDA each batch shape is captured once in a CUDA graph and
//! replayed. Calls the package was not compiled for (a gradient at a tap,
//! bf16 autocast, a forward pass alone) go to the TorchScript module it was
//! compiled from.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};
use torch_sys::C_tensor;

use crate::knobs;
use crate::network::seam::{Cotangent, Network, Outputs, Pass, TapId, Weights, Wrt};
use crate::network::torchscript::TorchScript;
use crate::precision::Precision;

extern "C" {
    fn classviz_aoti_load(
        path: *const c_char,
        device: c_int,
        error: *mut c_char,
        length: usize,
    ) -> *mut c_void;
    fn classviz_aoti_free(loader: *mut c_void);
    fn classviz_aoti_run(
        loader: *mut c_void,
        inputs: *const *mut C_tensor,
        count: c_int,
        outputs: *mut *mut C_tensor,
        capacity: c_int,
        error: *mut c_char,
        length: usize,
    ) -> c_int;
    fn classviz_aoti_graphs_built() -> c_int;
    fn classviz_aoti_capture(
        loader: *mut c_void,
        inputs: *const *mut C_tensor,
        count: c_int,
        warmups: c_int,
        error: *mut c_char,
        length: usize,
    ) -> *mut c_void;
    fn classviz_aoti_replay(
        graph: *mut c_void,
        inputs: *const *mut C_tensor,
        count: c_int,
        outputs: *mut *mut C_tensor,
        capacity: c_int,
        error: *mut c_char,
        length: usize,
    ) -> c_int;
    fn classviz_aoti_graph_free(graph: *mut c_void);
}

/// Room for the shim's error messages.
const ERROR_BYTES: usize = 2048;
/// Runs before a CUDA graph is captured: AOTInductor allocates and folds its
/// constants on its first runs, which a capture must not see.
const GRAPH_WARMUPS: c_int = 2;

/// The error text the shim wrote, on one line.
fn message(buffer: &[u8]) -> String {
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let text = String::from_utf8_lossy(&buffer[..end]);
    text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("unknown error").to_string()
}

/// Pointers to tensors for the shim, which only reads through them.
fn pointers(tensors: &[&Tensor]) -> Vec<*mut C_tensor> {
    tensors.iter().map(|t| t.as_ptr() as *mut C_tensor).collect()
}

/// Take ownership of the tensors the shim allocated.
fn adopt(raw: &[*mut C_tensor], count: c_int) -> Vec<Tensor> {
    // SAFETY: the shim wrote `count` new heap tensors; each is adopted once.
    raw[..count.max(0) as usize].iter().map(|&p| unsafe { Tensor::from_ptr(p) }).collect()
}

/// The shim's run and replay calls: a handle, input tensors, room for outputs
/// and for an error message; they return the output count, or -1.
type ShimCall = unsafe extern "C" fn(
    *mut c_void,
    *const *mut C_tensor,
    c_int,
    *mut *mut C_tensor,
    c_int,
    *mut c_char,
    usize,
) -> c_int;

/// Call the shim's `function` on `handle` with `inputs`; the tensors it
/// allocated, owned, or its error message.
fn call(
    function: ShimCall,
    handle: NonNull<c_void>,
    inputs: &[&Tensor],
    expected: usize,
) -> Result<Vec<Tensor>, String> {
    let raw = pointers(inputs);
    let mut out = vec![std::ptr::null_mut(); expected];
    let mut error = vec![0u8; ERROR_BYTES];
    // SAFETY: `handle` is live (owned by the caller), `raw` holds live tensors,
    // and `out` and `error` have the room the call is told of.
    let count = unsafe {
        function(
            handle.as_ptr(),
            raw.as_ptr(),
            raw.len() as c_int,
            out.as_mut_ptr(),
            expected as c_int,
            error.as_mut_ptr().cast(),
            ERROR_BYTES,
        )
    };
    if count < 0 {
        return Err(message(&error));
    }
    Ok(adopt(&out, count))
}

/// A loaded package.
pub struct Package {
    loader: NonNull<c_void>,
}

// SAFETY: AOTInductor's model container guards its runners with a mutex; the
// loader is never freed while borrowed.
unsafe impl Send for Package {}
unsafe impl Sync for Package {}

impl Package {
    /// Load `path` for `device`; a damaged or mismatched package is an error.
    pub fn load(path: &Path, device: Device) -> Result<Package> {
        let text = CString::new(path.as_os_str().as_encoded_bytes())
            .context("a package path with a NUL byte")?;
        let index = match device {
            Device::Cuda(index) => index as c_int,
            _ => -1,
        };
        let mut error = vec![0u8; ERROR_BYTES];
        // SAFETY: a valid C string and an error buffer of the length given.
        let loader = unsafe {
            classviz_aoti_load(text.as_ptr(), index, error.as_mut_ptr().cast(), ERROR_BYTES)
        };
        NonNull::new(loader).map(|loader| Package { loader }).with_context(|| {
            format!("loading compiled package {}: {}", path.display(), message(&error))
        })
    }

    /// One run: `inputs` in, `expected` outputs back.
    pub fn run(&self, inputs: &[&Tensor], expected: usize) -> Result<Vec<Tensor>> {
        let outputs = call(classviz_aoti_run, self.loader, inputs, expected)
            .map_err(|e| anyhow::anyhow!("the compiled package failed: {e}"))?;
        if outputs.len() != expected {
            bail!("the compiled package returned {} outputs, expected {expected}", outputs.len());
        }
        Ok(outputs)
    }

    /// Capture one run on inputs shaped like `inputs` in a CUDA graph.
    fn capture(&self, inputs: &[&Tensor]) -> Result<Graph> {
        let raw = pointers(inputs);
        let mut error = vec![0u8; ERROR_BYTES];
        // SAFETY: as in `run`.
        let graph = unsafe {
            classviz_aoti_capture(
                self.loader.as_ptr(),
                raw.as_ptr(),
                raw.len() as c_int,
                GRAPH_WARMUPS,
                error.as_mut_ptr().cast(),
                ERROR_BYTES,
            )
        };
        NonNull::new(graph).map(|graph| Graph { graph }).with_context(|| message(&error))
    }
}

impl Drop for Package {
    fn drop(&mut self) {
        // SAFETY: the loader came from classviz_aoti_load and is freed once.
        unsafe { classviz_aoti_free(self.loader.as_ptr()) }
    }
}

/// One captured run, replayed with new inputs.
struct Graph {
    graph: NonNull<c_void>,
}

// SAFETY: replays are serialised by the Mutex that holds the graphs.
unsafe impl Send for Graph {}

impl Graph {
    fn replay(&self, inputs: &[&Tensor], expected: usize) -> Result<Vec<Tensor>> {
        let outputs = call(classviz_aoti_replay, self.graph, inputs, expected)
            .map_err(|e| anyhow::anyhow!("replaying the CUDA graph failed: {e}"))?;
        // The graph's outputs are overwritten by the next replay: copy them.
        outputs.iter().map(|t| Ok(t.f_detach_copy()?)).collect()
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: the graph came from classviz_aoti_capture and is freed once.
        unsafe { classviz_aoti_graph_free(self.graph.as_ptr()) }
    }
}

/// Whether this build can capture CUDA graphs.
pub fn graphs_built() -> bool {
    // SAFETY: a constant query.
    unsafe { classviz_aoti_graphs_built() == 1 }
}

/// The compiled step of a model, with the TorchScript module it was compiled
/// from for everything else.
pub struct Compiled {
    package: Package,
    fallback: TorchScript,
    device: Device,
    /// The batch the package was compiled for; `None`: any.
    batch: Option<i64>,
    /// The model's taps the package returns after the scores, in order.
    taps: Vec<TapId>,
    /// `[classes]` and each tap's `[C, H, W]`: the shapes of zero weights.
    shapes: Vec<Vec<i64>>,
    /// CUDA graphs by batch size; `None` where capture is off or failed.
    graphs: Option<Mutex<HashMap<i64, Graph>>>,
    file: String,
}

impl Compiled {
    /// The package at `path` (for `batch`, returning `taps` with `shapes`),
    /// with `fallback` for the calls it does not cover.
    pub fn new(
        package: Package,
        fallback: TorchScript,
        batch: Option<i64>,
        taps: Vec<TapId>,
        shapes: Vec<Vec<i64>>,
        path: &Path,
    ) -> Compiled {
        let device = fallback.device();
        let graphs = (device.is_cuda() && graphs_built() && knobs::cuda_graphs())
            .then(|| Mutex::new(HashMap::new()));
        let file = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        Compiled { package, fallback, device, batch, taps, shapes, graphs, file }
    }

    /// Whether the package can take this product.
    fn covers(&self, pass: &Pass<'_>) -> bool {
        pass.wrt == Wrt::Input
            && pass.precision != Precision::Bf16
            && pass.taps.iter().all(|tap| self.taps.contains(tap))
    }

    /// The package's inputs for `x` and `weights`: every weight it takes, zero
    /// where the product puts none.
    fn inputs(&self, x: &Tensor, taps: &[TapId], weights: &Weights) -> Result<Vec<Tensor>> {
        let rows = x.size()[0];
        let zeros = |shape: &[i64]| -> Result<Tensor> {
            let mut full = vec![rows];
            full.extend_from_slice(shape);
            Ok(Tensor::f_zeros(full.as_slice(), (Kind::Float, self.device))?)
        };
        let mut inputs = vec![x.f_contiguous()?];
        inputs.push(match &weights.scores {
            Some(w) => w.f_to_kind(Kind::Float)?.f_contiguous()?,
            None => zeros(&self.shapes[0])?,
        });
        for (k, model_tap) in self.taps.iter().enumerate() {
            let given = taps
                .iter()
                .position(|t| t == model_tap)
                .and_then(|i| weights.taps.get(i))
                .and_then(Option::as_ref);
            inputs.push(match given {
                Some(w) => w.f_to_kind(Kind::Float)?.f_contiguous()?,
                None => zeros(&self.shapes[k + 1])?,
            });
        }
        Ok(inputs)
    }

    /// One run of the package (or its CUDA graph) on a batch of its size.
    fn step(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let expected = 2 + self.taps.len();
        let borrowed: Vec<&Tensor> = inputs.iter().collect();
        let Some(graphs) = &self.graphs else { return self.package.run(&borrowed, expected) };
        let rows = inputs[0].size()[0];
        let mut graphs =
            graphs.lock().map_err(|_| anyhow::anyhow!("a CUDA graph lock was poisoned"))?;
        if let std::collections::hash_map::Entry::Vacant(slot) = graphs.entry(rows) {
            match self.package.capture(&borrowed) {
                Ok(graph) => {
                    knobs::trace(|| format!("CUDA graph captured for a batch of {rows}"));
                    slot.insert(graph);
                }
                Err(err) => {
                    knobs::trace(|| format!("no CUDA graph for a batch of {rows}: {err:#}"));
                    return self.package.run(&borrowed, expected);
                }
            }
        }
        graphs[&rows].replay(&borrowed, expected)
    }

    /// The batch size `rows` are run at: the package's when it has a fixed
    /// one; with CUDA graphs, the smallest larger batch already captured (so
    /// a last, smaller batch replays a graph instead of capturing another);
    /// `None` to run them as they are.
    fn padded_batch(&self, rows: i64) -> Option<i64> {
        if let Some(batch) = self.batch {
            return (batch != rows).then_some(batch);
        }
        let graphs = self.graphs.as_ref()?.lock().ok()?;
        if graphs.contains_key(&rows) {
            return None;
        }
        graphs.keys().copied().filter(|&captured| captured > rows).min()
    }

    /// The step on any number of rows: padded (with copies of the last row,
    /// whose outputs are dropped; rows do not interact in eval mode) or split
    /// to the batch of [`Compiled::padded_batch`].
    fn step_any(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let rows = inputs[0].size()[0];
        let Some(batch) = self.padded_batch(rows) else { return self.step(inputs) };
        let mut parts: Vec<Vec<Tensor>> = Vec::new();
        for start in (0..rows).step_by(batch as usize) {
            let take = batch.min(rows - start);
            let chunk = inputs
                .iter()
                .map(|t| {
                    let part = t.f_narrow(0, start, take)?;
                    if take == batch {
                        return Ok(part);
                    }
                    let mut repeats = vec![1; part.dim()];
                    repeats[0] = batch - take;
                    let pad = part.f_narrow(0, take - 1, 1)?.f_repeat(repeats.as_slice())?;
                    Ok(Tensor::f_cat(&[part, pad], 0)?)
                })
                .collect::<Result<Vec<_>>>()?;
            let outputs = self.step(&chunk)?;
            parts.push(outputs.iter().map(|o| o.f_narrow(0, 0, take)).collect::<Result<_, _>>()?);
        }
        (0..parts[0].len())
            .map(|i| Ok(Tensor::f_cat(&parts.iter().map(|p| &p[i]).collect::<Vec<_>>(), 0)?))
            .collect()
    }
}

impl Network for Compiled {
    fn device(&self) -> Device {
        self.device
    }

    fn engine(&self) -> String {
        let graphs = if self.graphs.is_some() { ", CUDA graphs" } else { "" };
        format!("compiled {}{graphs}", self.file)
    }

    fn supports_autocast(&self) -> bool {
        false
    }

    fn forward(&self, x: &Tensor, taps: &[TapId], precision: Precision) -> Result<Outputs> {
        self.fallback.forward(x, taps, precision)
    }

    fn vjp(&self, x: &Tensor, pass: Pass<'_>) -> Result<(Outputs, Tensor)> {
        if !self.covers(&pass) {
            return self.fallback.vjp(x, pass);
        }
        let computed;
        let weights = match pass.cotangent {
            Cotangent::Fixed(weights) => weights,
            Cotangent::Of(weights_of) => {
                computed = weights_of(&self.fallback.forward(x, pass.taps, Precision::Fp32)?)?;
                &computed
            }
        };
        let inputs = self.inputs(x, pass.taps, weights)?;
        let mut outputs = self.step_any(&inputs)?;
        let gradient = outputs.pop().context("the package returned no gradient")?;
        let scores = outputs.remove(0);
        let taps = pass
            .taps
            .iter()
            .map(|tap| {
                let k =
                    self.taps.iter().position(|t| t == tap).context("a tap the package lacks")?;
                Ok(outputs[k].shallow_clone())
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((Outputs { scores, taps }, gradient))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_messages_are_one_line() {
        let mut buffer = vec![0u8; 64];
        buffer[..22].copy_from_slice(b"\n  bad zip\nframe #0\0\0\0");
        assert_eq!(message(&buffer), "bad zip");
        assert_eq!(message(&[0u8; 4]), "unknown error");
    }

    #[test]
    fn a_missing_package_is_an_error_not_a_crash() {
        let message =
            Package::load(Path::new("/nonexistent/model.pt2"), Device::Cpu).err().unwrap();
        assert!(format!("{message:#}").contains("/nonexistent/model.pt2"), "{message:#}");
    }
}
