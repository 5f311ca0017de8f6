//! The one seam between classviz and a network: scores (and tap outputs) for
//! a batch, and the gradient of a weighted sum of them (a vector-Jacobian
//! product). The ascent and saliency see a network only through it; the
//! TorchScript module and the compiled AOTInductor package implement it.

use anyhow::{bail, Result};
use tch::{Device, Tensor};

use crate::precision::Precision;

/// A tap of the model, by its place in the sidecar's list of taps: a name is
/// resolved to one once (`ModelInfo::tap`), and only the id travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TapId(usize);

impl TapId {
    /// The model's tap at `index` in its sidecar's list.
    pub fn at(index: usize) -> TapId {
        TapId(index)
    }

    pub fn index(self) -> usize {
        self.0
    }
}

/// What a network returns for a batch `[N, C, H, W]`.
pub struct Outputs {
    /// The class scores `[N, classes]`.
    pub scores: Tensor,
    /// The taps asked for, in the order asked (`[N, C, H, W]` each).
    pub taps: Vec<Tensor>,
}

impl Outputs {
    /// The same outputs outside autograd.
    pub fn detached(&self) -> Result<Outputs> {
        Ok(Outputs {
            scores: self.scores.f_detach()?,
            taps: self.taps.iter().map(Tensor::f_detach).collect::<Result<_, _>>()?,
        })
    }
}

/// A tap's activation as an image-shaped `[N, C, H, W]`: a transformer's
/// tokens `[N, T, C]` (a class token and a square grid of patches) become the
/// patch grid, the class token dropped; other shapes are left as they are.
pub fn tap_as_grid(tap: Tensor) -> Result<Tensor> {
    let size = tap.size();
    let [n, tokens, channels] = size[..] else { return Ok(tap) };
    let Some(side) = classviz_records::sidecar::token_grid_side(tokens) else { return Ok(tap) };
    Ok(tap
        .f_narrow(1, 1, tokens - 1)?
        .f_reshape([n, side, side, channels])?
        .f_permute([0, 3, 1, 2])?)
}

/// Weights on outputs: the v of a vector-Jacobian product. A tap left `None`
/// weighs zero.
pub struct Weights {
    pub scores: Option<Tensor>,
    pub taps: Vec<Option<Tensor>>,
}

impl Weights {
    /// Weights that pick class `class` in each of `rows` rows of `classes`
    /// scores: the gradient of S_c.
    pub fn one_hot(rows: i64, classes: i64, class: i64, device: Device) -> Result<Weights> {
        Weights::one_hot_rows(&vec![class; rows as usize], classes, device)
    }

    /// Weights that pick class `targets[i]` in row i of `classes` scores.
    pub fn one_hot_rows(targets: &[i64], classes: i64, device: Device) -> Result<Weights> {
        let rows = targets.len() as i64;
        let index = Tensor::f_from_slice(targets)?.f_view([rows, 1])?.f_to_device(device)?;
        let scores = Tensor::f_zeros([rows, classes], (tch::Kind::Float, device))?
            .f_scatter_value(1, &index, 1.0)?;
        Ok(Weights { scores: Some(scores), taps: Vec::new() })
    }

    /// ⟨self, outputs⟩ = Σ weight·output, as a scalar in autograd.
    pub fn inner_product(&self, outputs: &Outputs) -> Result<Tensor> {
        let mut terms = Vec::new();
        if let Some(weight) = &self.scores {
            terms.push(outputs.scores.f_mul(weight)?.f_sum(tch::Kind::Float)?);
        }
        for (weight, tap) in self.taps.iter().zip(&outputs.taps) {
            if let Some(weight) = weight {
                terms.push(tap.f_mul(weight)?.f_sum(tch::Kind::Float)?);
            }
        }
        let mut terms = terms.into_iter();
        let Some(first) = terms.next() else { bail!("a vector-Jacobian product with no weights") };
        terms.try_fold(first, |total, term| Ok(total.f_add(&term)?))
    }
}

/// The weights of a product: known before the pass (an objective linear in
/// the outputs, such as a class score or a channel's mean), or computed from
/// the outputs (log-probabilities, a layer's energy, the facets' diversity).
pub enum Cotangent<'a> {
    Fixed(&'a Weights),
    Of(&'a dyn Fn(&Outputs) -> Result<Weights>),
}

/// What the gradient is taken with respect to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrt {
    /// The input batch: the ascent, gradient saliency.
    Input,
    /// The output of tap `k` of those asked for: class activation maps.
    Tap(usize),
    /// Every tap asked for, in one backward pass: each image's gradients
    /// flattened and concatenated in the taps' order, `[N, Σ sizes]`
    /// (the attention rollouts' gradients at every block).
    Taps,
}

/// One vector-Jacobian product: the taps to return, the weights, what the
/// gradient is with respect to, and the forward pass's arithmetic.
pub struct Pass<'a> {
    pub taps: &'a [TapId],
    pub cotangent: Cotangent<'a>,
    pub wrt: Wrt,
    pub precision: Precision,
}

/// A network as classviz uses it. Taps are asked for by [`TapId`].
pub trait Network: Send + Sync {
    fn device(&self) -> Device;

    /// What runs the network, for reports: "torchscript", "compiled …".
    fn engine(&self) -> String;

    /// Whether bf16 autocast may wrap its calls (a compiled graph fixes its arithmetic).
    fn supports_autocast(&self) -> bool;

    /// The outputs at `x` (model space) without gradients, with the forward
    /// pass in `precision` (resolved for the batch: fp32 or bf16).
    fn forward(&self, x: &Tensor, taps: &[TapId], precision: Precision) -> Result<Outputs>;

    /// The outputs at `x`, detached, and the gradient of ⟨w, outputs⟩ with
    /// respect to `wrt`, for the weights w the cotangent gives.
    fn vjp(&self, x: &Tensor, pass: Pass<'_>) -> Result<(Outputs, Tensor)>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn tokens_become_a_grid_without_the_class_token() {
        // 1 class token + 2×2 patches of 3 channels; patch p holds p in every channel.
        let tokens =
            Tensor::arange(5, (Kind::Float, Device::Cpu)).view([1, 5, 1]).expand([1, 5, 3], false);
        let grid = tap_as_grid(tokens.contiguous()).unwrap();
        assert_eq!(grid.size(), vec![1, 3, 2, 2]);
        let first_channel = Vec::<f32>::try_from(grid.get(0).get(0).reshape([-1])).unwrap();
        assert_eq!(first_channel, vec![1.0, 2.0, 3.0, 4.0]);
        let image = Tensor::zeros([1, 3, 4, 4], (Kind::Float, Device::Cpu));
        assert_eq!(tap_as_grid(image).unwrap().size(), vec![1, 3, 4, 4]);
    }

    #[test]
    fn the_inner_product_weighs_scores_and_taps() {
        let outputs = Outputs {
            scores: Tensor::from_slice(&[1.0f32, 2.0]).view([1, 2]),
            taps: vec![Tensor::from_slice(&[3.0f32]).view([1, 1, 1, 1])],
        };
        let weights = Weights {
            scores: Some(Tensor::from_slice(&[0.0f32, 1.0]).view([1, 2])),
            taps: vec![Some(Tensor::from_slice(&[2.0f32]).view([1, 1, 1, 1]))],
        };
        assert_eq!(f64::try_from(weights.inner_product(&outputs).unwrap()).unwrap(), 8.0);
        let none = Weights { scores: None, taps: vec![None] };
        assert!(none.inner_product(&outputs).is_err());
    }

    #[test]
    fn one_hot_weights_pick_the_class_in_every_row() {
        let weights = Weights::one_hot(2, 3, 1, Device::Cpu).unwrap();
        let scores = Vec::<f32>::try_from(weights.scores.unwrap().reshape([-1])).unwrap();
        assert_eq!(scores, vec![0.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
        assert!(weights.taps.is_empty());
    }
}
