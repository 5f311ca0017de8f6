//! What classviz finds out about a network by running it, before a model
//! exists: its input shape (from the sidecar, the flags, or by trying common
//! shapes), whether its outputs are probabilities, whether its taps are what
//! the sidecar says, and whether a batch fits in memory. Pure functions of
//! the network and the files beside it.

use std::fmt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tch::{Kind, Tensor};

use crate::memory;
use crate::network::{Cotangent, Network, Pass, TapId, Weights, Wrt};
use crate::precision::Precision;
use classviz_records::input::{check_channel_values, InputSpec, FLOAT_BYTES};
use classviz_records::input::{ChannelValues, InputSize};
use classviz_records::sidecar::{sidecar_path, Sidecar, Tap};

/// Flags that override the sidecar's description of the input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputOverrides {
    pub mean: Option<ChannelValues>,
    pub std: Option<ChannelValues>,
    pub size: Option<InputSize>,
}

/// Where the input shape came from, for `classviz info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeSource {
    Sidecar,
    Flags,
    Probed,
}

impl fmt::Display for ShapeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShapeSource::Sidecar => "sidecar",
            ShapeSource::Flags => "flags",
            ShapeSource::Probed => "probing",
        })
    }
}

/// Input shapes tried, in order, for a model with no sidecar and no `--size`.
const PROBE_SHAPES: [[i64; 3]; 8] = [
    [3, 224, 224],
    [1, 28, 28],
    [3, 32, 32],
    [1, 32, 32],
    [3, 299, 299],
    [3, 256, 256],
    [3, 64, 64],
    [1, 64, 64],
];

/// With nothing measured yet, an input is assumed to take at least this many
/// times its own size in memory to go through the network (input, output, gradient).
const MIN_MEMORY_FACTOR: u64 = 4;

/// What probing settled: the input, where its shape came from, the number of
/// classes and the kind of the scores; and what the user should know.
#[derive(Debug, Clone)]
pub struct Settled {
    pub input: InputSpec,
    pub source: ShapeSource,
    pub classes: i64,
    pub score_kind: Kind,
    pub warnings: Vec<String>,
}

/// Fix the input from the sidecar, the flags, or by probing shapes.
pub fn settle_input(
    network: &dyn Network,
    sidecar: Option<&Sidecar>,
    overrides: &InputOverrides,
    path: &Path,
) -> Result<Settled> {
    let candidates = candidate_shapes(sidecar, overrides);
    // A size given on the command line may be far larger than the network
    // was made for: measure a pass at the sidecar's size and refuse a
    // probe that could not fit, before allocating it.
    let per_value = match (overrides.size, sidecar) {
        (Some(_), Some(s)) => bytes_per_input_value(network, s.input_shape[..3].try_into()?).ok(),
        _ => None,
    };
    for (shape, _) in &candidates {
        check_fits(shape, 1, per_value, "--size")?;
    }
    let mut first_error = None;
    for &(shape, source) in &candidates {
        match probe(network, shape) {
            Ok((classes, score_kind)) => {
                let (input, warnings) = input_spec(shape, sidecar, overrides, path)?;
                return Ok(Settled { input, source, classes, score_kind, warnings });
            }
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    let err = first_error.unwrap_or_else(|| anyhow!("no input shape to try"));
    Err(match candidates[..] {
        [(shape, _)] => err.context(format!(
            "it does not accept input of shape {:?}; check --size or the sidecar's input_shape",
            [1, shape[0], shape[1], shape[2]]
        )),
        _ => err.context(format!(
            "no input shape worked (tried {}); pass --size or write a sidecar ({})",
            candidates
                .iter()
                .map(|(s, _)| format!("{}x{}x{}", s[0], s[1], s[2]))
                .collect::<Vec<_>>()
                .join(", "),
            sidecar_path(path).display()
        )),
    })
}

/// The shapes to try: the flags' size, the sidecar's shape, or the usual ones.
fn candidate_shapes(
    sidecar: Option<&Sidecar>,
    overrides: &InputOverrides,
) -> Vec<([i64; 3], ShapeSource)> {
    let known_channels =
        sidecar.map(|s| s.input_shape[0]).or(overrides.mean.as_ref().map(|m| m.0.len() as i64));
    match (overrides.size, sidecar) {
        (Some(size), _) => known_channels
            .map_or(vec![3, 1], |c| vec![c])
            .into_iter()
            .map(|c| ([c, size.height, size.width], ShapeSource::Flags))
            .collect(),
        (None, Some(s)) => {
            vec![([s.input_shape[0], s.input_shape[1], s.input_shape[2]], ShapeSource::Sidecar)]
        }
        (None, None) => PROBE_SHAPES
            .iter()
            .filter(|shape| known_channels.is_none_or(|c| c == shape[0]))
            .map(|&shape| (shape, ShapeSource::Probed))
            .collect(),
    }
}

/// The input spec for a shape that worked, with the mean and std from the
/// flags or the sidecar (or none: a warning, and [0,1] images unnormalised).
fn input_spec(
    [channels, height, width]: [i64; 3],
    sidecar: Option<&Sidecar>,
    overrides: &InputOverrides,
    path: &Path,
) -> Result<(InputSpec, Vec<String>)> {
    let mean =
        overrides.mean.as_ref().map(|m| m.0.clone()).or_else(|| sidecar.map(|s| s.mean.clone()));
    let std =
        overrides.std.as_ref().map(|s| s.0.clone()).or_else(|| sidecar.map(|s| s.std.clone()));
    let mut warnings = Vec::new();
    let (mean, std) = match (mean, std) {
        (Some(mean), Some(std)) => (mean, std),
        (mean, std) => {
            warnings.push(format!(
                "no mean/std for {}: assuming it takes [0,1] images unnormalised; pass --mean and --std or write a sidecar",
                path.display()
            ));
            (
                mean.unwrap_or(vec![0.0; channels as usize]),
                std.unwrap_or(vec![1.0; channels as usize]),
            )
        }
    };
    check_channel_values("mean", &mean, channels)?;
    check_channel_values("std", &std, channels)?;
    Ok((InputSpec { channels, height, width, mean, std }, warnings))
}

/// Run one zero image of `shape` through the network: the number of classes
/// and the kind of the scores.
fn probe(network: &dyn Network, [channels, height, width]: [i64; 3]) -> Result<(i64, Kind)> {
    let zeros = Tensor::f_zeros([1, channels, height, width], (Kind::Float, network.device()))?;
    let scores = network.forward(&zeros, &[], Precision::Fp32)?.scores;
    match scores.size()[..] {
        [1, classes] if classes > 0 => Ok((classes, scores.kind())),
        ref other => {
            bail!(
                "its output has shape {other:?}, expected [N, classes]: is it an image classifier?"
            )
        }
    }
}

/// Whether the network's outputs look like probabilities (non-negative,
/// summing to 1): a softmax-ended model, where the paper wants pre-softmax scores.
pub fn outputs_look_like_probabilities(network: &dyn Network, input: &InputSpec) -> Result<bool> {
    let x = Tensor::f_randn(input.batch_shape(2), (Kind::Float, network.device()))?;
    let outputs = network.forward(&x, &[], Precision::Fp32)?.scores.f_to_kind(Kind::Double)?;
    let non_negative = f64::try_from(outputs.f_min()?)? >= 0.0;
    let sums = outputs.f_sum_dim_intlist(-1, false, Kind::Double)?;
    let sums_to_one = f64::try_from(sums.f_sub_scalar(1.0)?.f_abs()?.f_max()?)? < 1e-3;
    Ok(non_negative && sums_to_one && outputs.size()[1] > 1)
}

/// Check the sidecar's taps against what the network returns.
pub fn check_taps(network: &dyn Network, input: &InputSpec, taps: &[Tap]) -> Result<()> {
    if taps.is_empty() {
        return Ok(());
    }
    let zeros = Tensor::f_zeros(input.batch_shape(1), (Kind::Float, network.device()))?;
    let all: Vec<TapId> = (0..taps.len()).map(TapId::at).collect();
    let outputs = network.forward(&zeros, &all, Precision::Fp32)?;
    for (tap, activation) in taps.iter().zip(&outputs.taps) {
        let shape = activation.size();
        let expected = tap.output_shape()?;
        if shape.len() != 4 || shape[1..] != expected[..] {
            bail!(
                "tap {} has shape {:?} but the sidecar says {:?}",
                tap.name,
                &shape[1.min(shape.len())..],
                tap.shape
            );
        }
    }
    Ok(())
}

/// Refuse a batch of `batch` images that would not fit in memory, before
/// allocating it. The activations are measured with one pass of one image
/// at the input size. On CUDA, running out of memory is an error libtorch
/// reports cleanly, so nothing is measured there.
pub fn check_batch_fits(network: &dyn Network, input: &InputSpec, batch: usize) -> Result<()> {
    if network.device().is_cuda() {
        return Ok(());
    }
    let shape = [input.channels, input.height, input.width];
    let per_value = bytes_per_input_value(network, shape).ok();
    check_fits(&shape, batch as u64, per_value, "--batch or --size")
}

/// Bytes of memory per input value that one forward and backward pass of a
/// single image of `shape` took, measured as the rise of the process's peak
/// resident memory (CPU only).
fn bytes_per_input_value(
    network: &dyn Network,
    [channels, height, width]: [i64; 3],
) -> Result<u64> {
    if network.device().is_cuda() {
        bail!("measured on the CPU only");
    }
    let meter = memory::PeakMeter::start();
    let input = Tensor::f_zeros([1, channels, height, width], (Kind::Float, network.device()))?;
    let every_score = |outputs: &crate::network::Outputs| -> Result<Weights> {
        Ok(Weights { scores: Some(outputs.scores.f_ones_like()?), taps: Vec::new() })
    };
    let pass = Pass {
        taps: &[],
        cotangent: Cotangent::Of(&every_score),
        wrt: Wrt::Input,
        precision: Precision::Fp32,
    };
    let _ = network.vjp(&input, pass)?;
    let grown = meter.growth().context("peak memory cannot be read")?;
    let values = (channels * height * width) as u64;
    Ok((grown / values.max(1)).max(MIN_MEMORY_FACTOR * FLOAT_BYTES))
}

/// Refuse `batch` images of `[C, H, W]` that would not fit in the memory left,
/// at `bytes_per_value` bytes per input value (measured, or a floor).
fn check_fits(
    &[channels, height, width]: &[i64; 3],
    batch: u64,
    bytes_per_value: Option<u64>,
    what_to_shrink: &str,
) -> Result<()> {
    let Some(available) = memory::available_bytes() else { return Ok(()) };
    let values = (channels as u64).saturating_mul(height as u64).saturating_mul(width as u64);
    let per_value = bytes_per_value.unwrap_or(MIN_MEMORY_FACTOR * FLOAT_BYTES);
    let per_image = values.saturating_mul(per_value);
    let needed = per_image.saturating_mul(batch);
    if needed > available {
        let fitting = available / per_image.max(1);
        let advice = if batch > 1 && fitting >= 1 {
            format!("use --batch {fitting} or less, or a smaller --size")
        } else {
            format!("use a smaller {what_to_shrink}")
        };
        bail!(
            "{batch} image(s) of {channels}x{height}x{width} would need about {} of memory ({} per image{}), but only {} is available; {advice}",
            memory::human(needed),
            memory::human(per_image),
            if bytes_per_value.is_some() { ", measured" } else { " at the least" },
            memory::human(available),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_beyond_memory_is_refused_with_advice() {
        let Some(available) = memory::available_bytes() else { return };
        let side = ((available / 12) as f64).sqrt() as i64 + 1000;
        let message = check_fits(&[3, side, side], 1, None, "--size").unwrap_err().to_string();
        assert!(message.contains("use a smaller --size"), "{message}");
        let message = check_fits(&[3, 224, 224], 1 << 40, Some(1000), "--batch").unwrap_err();
        assert!(message.to_string().contains("use --batch"), "{message}");
        assert!(check_fits(&[3, 8, 8], 4, Some(1000), "--batch").is_ok());
    }

    #[test]
    fn flags_channels_and_sidecars_choose_the_shapes_tried() {
        let size = Some(InputSize { height: 8, width: 9 });
        let flags = InputOverrides { size, ..InputOverrides::default() };
        let shapes: Vec<[i64; 3]> =
            candidate_shapes(None, &flags).into_iter().map(|(s, _)| s).collect();
        assert_eq!(shapes, vec![[3, 8, 9], [1, 8, 9]]);
        let gray =
            InputOverrides { mean: Some(ChannelValues(vec![0.5])), ..InputOverrides::default() };
        assert!(candidate_shapes(None, &gray)
            .iter()
            .all(|(s, source)| s[0] == 1 && *source == ShapeSource::Probed));
    }
}
