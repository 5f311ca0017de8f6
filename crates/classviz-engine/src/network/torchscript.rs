//! A TorchScript module behind the network seam: a frozen `torch.jit` export
//! run by libtorch's interpreter, whose gradients come from autograd.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use tch::{CModule, Device, IValue, Tensor};

use crate::error::torch_error;

use crate::knobs::{self, Jit};
use crate::network::seam::{tap_as_grid, Cotangent, Network, Outputs, Pass, TapId, Wrt};
use crate::precision::{self, Precision};
use classviz_records::sidecar::OutputSelector;

/// Dict keys tried, in order, when no `--output-key` is given.
const DEFAULT_OUTPUT_KEYS: [&str; 2] = ["logits", "out"];

/// A loaded TorchScript classifier, in eval mode with frozen parameters.
pub struct TorchScript {
    module: CModule,
    device: Device,
    /// Where the class scores are in a tuple, list or dict output.
    output: Option<OutputSelector>,
    /// The model's taps (dict keys beside the scores), in the sidecar's order.
    tap_names: Vec<String>,
    /// Trainable parameters (0 for a frozen export, whose weights are constants).
    pub parameter_count: i64,
}

impl TorchScript {
    /// Load `path` on `device` in eval mode with its parameters frozen.
    pub fn load(
        path: &Path,
        device: Device,
        output: Option<OutputSelector>,
        tap_names: Vec<String>,
    ) -> Result<TorchScript> {
        use_jit_mode(device)?;
        let mut module =
            CModule::load_on_device(path, device).map_err(torch_error).with_context(|| {
                format!(
                    "loading model {} (is it a TorchScript file from torch.jit.save?)",
                    path.display()
                )
            })?;
        module.f_set_eval().map_err(torch_error)?;
        // set_eval() leaves parameters requiring grad; without this every
        // backward pass would also compute weight gradients.
        let mut parameter_count = 0;
        for (_, mut parameter) in module.named_parameters().map_err(torch_error)? {
            parameter_count += parameter.numel() as i64;
            let _ = parameter.f_requires_grad_(false).map_err(torch_error)?;
        }
        Ok(TorchScript { module, device, output, tap_names, parameter_count })
    }

    /// The outputs with autograd's graph, for taps `taps`; the input as given.
    fn outputs(&self, x: &Tensor, taps: &[TapId]) -> Result<Outputs> {
        Ok(self.raw_outputs(x, taps)?.0)
    }

    /// The outputs, and the taps as the model returned them (a transformer's
    /// tokens before they become a grid), for gradients at a tap.
    fn raw_outputs(&self, x: &Tensor, taps: &[TapId]) -> Result<(Outputs, Vec<Tensor>)> {
        use_jit_mode(self.device)?;
        let value =
            self.module.forward_is(&[IValue::Tensor(self.laid_out(x)?)]).map_err(torch_error)?;
        if taps.is_empty() {
            let scores = select_output(value, self.output.as_ref())?;
            return Ok((
                Outputs { scores: check_scores(scores, x)?, taps: Vec::new() },
                Vec::new(),
            ));
        }
        let IValue::GenericDict(mut entries) = value else {
            bail!("the model returns no dict, so it has no taps to read");
        };
        let mut tensors = Vec::with_capacity(taps.len());
        for &tap in taps {
            let name = self.tap_names.get(tap.index()).context("no such tap")?;
            let position = entries
                .iter()
                .position(|(key, _)| matches!(key, IValue::String(k) if k == name))
                .with_context(|| format!("the model's output has no entry {name}"))?;
            match entries.swap_remove(position).1 {
                IValue::Tensor(tensor) => tensors.push(tensor),
                _ => bail!("the model's output {name} is not a tensor"),
            }
        }
        let scores = select_output(IValue::GenericDict(entries), self.output.as_ref())?;
        let grids =
            tensors.iter().map(|t| tap_as_grid(t.shallow_clone())).collect::<Result<_>>()?;
        Ok((Outputs { scores: check_scores(scores, x)?, taps: grids }, tensors))
    }

    /// libtorch's CPU convolutions run markedly faster on channels-last (NHWC)
    /// input; a tensor already laid out so is not copied. On CUDA it is a
    /// measured choice (docs/gpu.md).
    fn laid_out(&self, x: &Tensor) -> Result<Tensor> {
        let channels_last = match self.device {
            Device::Cpu => true,
            _ => knobs::cuda_channels_last(),
        };
        Ok(if channels_last && x.dim() == 4 {
            x.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_permute([0, 3, 1, 2])?
        } else {
            x.shallow_clone()
        })
    }
}

impl Network for TorchScript {
    fn device(&self) -> Device {
        self.device
    }

    fn engine(&self) -> String {
        "torchscript".to_string()
    }

    fn supports_autocast(&self) -> bool {
        true
    }

    fn forward(&self, x: &Tensor, taps: &[TapId], arithmetic: Precision) -> Result<Outputs> {
        let batch = x.size()[0];
        tch::no_grad(|| precision::run(arithmetic, self.device, batch, || self.outputs(x, taps)))
    }

    fn vjp(&self, x: &Tensor, pass: Pass<'_>) -> Result<(Outputs, Tensor)> {
        let input = x.f_detach()?.f_set_requires_grad(true)?;
        let batch = x.size()[0];
        let (outputs, raw) = precision::run(pass.precision, self.device, batch, || {
            self.raw_outputs(&input, pass.taps)
        })?;
        let computed;
        let weights = match pass.cotangent {
            Cotangent::Fixed(weights) => weights,
            Cotangent::Of(weights_of) => {
                computed = weights_of(&outputs.detached()?)?;
                &computed
            }
        };
        let total = weights.inner_product(&outputs)?;
        // At a tap, the gradient is taken at the tensor the model returned and
        // laid out like the tap's grid.
        let with_respect_to: Vec<&Tensor> = match pass.wrt {
            Wrt::Input => vec![&input],
            Wrt::Tap(k) => vec![raw.get(k).context("the gradient of a tap not asked for")?],
            Wrt::Taps => raw.iter().collect(),
        };
        let mut gradients = Tensor::f_run_backward(&[&total], &with_respect_to, false, false)
            .map_err(torch_error)?;
        let gradient = match pass.wrt {
            Wrt::Input => gradients.remove(0),
            Wrt::Tap(_) => tap_as_grid(gradients.remove(0))?,
            Wrt::Taps => {
                let flat = gradients
                    .into_iter()
                    .map(|g| Ok(tap_as_grid(g)?.f_reshape([batch, -1])?))
                    .collect::<Result<Vec<_>>>()?;
                Tensor::f_cat(&flat, 1)?
            }
        };
        Ok((outputs.detached()?, gradient))
    }
}

/// Set how TorchScript runs graphs on this thread (the setting is thread-local).
fn use_jit_mode(device: Device) -> Result<()> {
    let simple = knobs::jit(device.is_cuda()) == Jit::Simple;
    tch::jit::f_set_graph_executor_optimize(!simple).map_err(torch_error)?;
    Ok(())
}

/// The scores must be `[N, classes]` for an input of N images.
fn check_scores(scores: Tensor, x: &Tensor) -> Result<Tensor> {
    if scores.dim() != 2 || scores.size()[0] != x.size()[0] {
        bail!(
            "its output has shape {:?}, expected [N, classes] for input {:?}: is it an image classifier?",
            scores.size(),
            x.size()
        );
    }
    Ok(scores)
}

/// Pick the class-score tensor out of whatever the model's forward returned:
/// a tensor; element 0 (or `selector`'s) of a tuple or list; a dict's
/// `selector` key, else its "logits" or "out" entry.
fn select_output(output: IValue, selector: Option<&OutputSelector>) -> Result<Tensor> {
    let index = match selector {
        Some(OutputSelector::Index(index)) => *index,
        _ => 0,
    };
    let not_a_tensor = || {
        anyhow!(
            "model output {} is not a tensor",
            selector.map_or("element 0".into(), |s| s.to_string())
        )
    };
    match output {
        IValue::Tensor(tensor) => Ok(tensor),
        IValue::TensorList(tensors) => {
            let count = tensors.len();
            tensors.into_iter().nth(index).ok_or_else(|| {
                anyhow!("model returned {count} tensors; --output-index {index} is out of range")
            })
        }
        IValue::Tuple(items) | IValue::GenericList(items) => {
            let count = items.len();
            match items.into_iter().nth(index) {
                Some(IValue::Tensor(tensor)) => Ok(tensor),
                Some(_) => Err(not_a_tensor()),
                None => {
                    bail!("model returned {count} outputs; --output-index {index} is out of range")
                }
            }
        }
        IValue::GenericDict(pairs) => {
            select_from_dict(pairs, selector).and_then(|value| match value {
                IValue::Tensor(tensor) => Ok(tensor),
                _ => Err(not_a_tensor()),
            })
        }
        _ => bail!("model returned something other than a tensor of class scores"),
    }
}

/// The dict entry holding the scores: `selector`'s key, else "logits" or "out".
fn select_from_dict(
    pairs: Vec<(IValue, IValue)>,
    selector: Option<&OutputSelector>,
) -> Result<IValue> {
    let mut entries: Vec<(String, IValue)> = pairs
        .into_iter()
        .filter_map(|(key, value)| match key {
            IValue::String(key) => Some((key, value)),
            _ => None,
        })
        .collect();
    let keys: Vec<String> = entries.iter().map(|(k, _)| k.clone()).collect();
    let wanted: Vec<&str> = match selector {
        Some(OutputSelector::Key(key)) => vec![key.as_str()],
        _ => DEFAULT_OUTPUT_KEYS.to_vec(),
    };
    let position = wanted.iter().find_map(|w| entries.iter().position(|(k, _)| k == w));
    match position {
        Some(p) => Ok(entries.swap_remove(p).1),
        None => bail!("model returned a dict with keys {keys:?}; choose one with --output-key"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_chosen_from_tuples_and_dicts() {
        let tensor = |v: f32| IValue::Tensor(Tensor::from_slice(&[v]));
        let pick = |value: IValue, selector: Option<OutputSelector>| {
            select_output(value, selector.as_ref()).map(|t| t.double_value(&[0]))
        };
        let tuple = || IValue::Tuple(vec![tensor(1.0), tensor(2.0)]);
        assert_eq!(pick(tuple(), None).unwrap(), 1.0);
        assert_eq!(pick(tuple(), Some(OutputSelector::Index(1))).unwrap(), 2.0);
        assert!(pick(tuple(), Some(OutputSelector::Index(5)))
            .unwrap_err()
            .to_string()
            .contains("out of range"));
        let dict = || {
            IValue::GenericDict(vec![
                (IValue::String("aux".into()), tensor(3.0)),
                (IValue::String("logits".into()), tensor(4.0)),
            ])
        };
        assert_eq!(pick(dict(), None).unwrap(), 4.0);
        assert_eq!(pick(dict(), Some(OutputSelector::Key("aux".into()))).unwrap(), 3.0);
        assert!(pick(dict(), Some(OutputSelector::Key("x".into()))).is_err());
    }
}
