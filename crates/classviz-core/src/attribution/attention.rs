//! Attributions made for transformers, from the attention probabilities
//! A_l (`[heads, T, T]`, rows summing to one) of every block, which a model
//! exported with `--attention` returns as taps:
//!
//! - attention rollout (Abnar & Zuidema 2020): the heads' mean with the
//!   residual connection, Â_l = ½(E_h A_l + I), multiplied through the
//!   blocks, R = Â_L ⋯ Â_1; class-agnostic, one forward pass;
//! - gradient-weighted rollout (Chefer, Gur & Wolf 2021, "Generic
//!   Attention-model Explainability", their rule for self-attention):
//!   Ā_l = E_h[(∂S_c/∂A_l ⊙ A_l)⁺] and R ← R + Ā_l R from R = I, block by
//!   block; one forward and one backward pass for every block at once.
//!
//! The map is the row of R of the tokens the head reads (the class token, or
//! the mean of the patches' rows for a pooled model) over the patch tokens,
//! laid out as the patch grid, upsampled to the input (bilinear) and scaled
//! to [0, 1] by its maximum.

use anyhow::{bail, Context, Result};
use tch::{Kind, Tensor};

use super::cam::upsampled_and_scaled;
use super::method::Method;
use classviz_engine::model::Model;
use classviz_engine::network::{Cotangent, Pass, TapId, Weights, Wrt};
use classviz_engine::precision::Precision;
use classviz_records::sidecar::{Readout, Tap};

/// The map `[H, W]` (input size, in [0, 1]) of `method` (rollout or
/// gradient-rollout) for `class` at the photo `x` (`[1, C, H, W]`, model
/// space), through the attention taps `taps` (first block first).
pub fn attention_map(
    model: &Model,
    x: &Tensor,
    class: i64,
    method: Method,
    taps: &[TapId],
) -> Result<Tensor> {
    let Some(&first) = taps.first() else { bail!("{method} needs the model's attention taps") };
    let info = model.info.tap_info(first);
    let relevance = match method {
        Method::Rollout => {
            let outputs = model.forward(x, taps)?;
            let blocks = outputs
                .taps
                .iter()
                .map(|a| Ok(a.f_to_kind(Kind::Float)?.f_squeeze_dim(0)?))
                .collect::<Result<Vec<_>>>()?;
            rollout(&blocks)?
        }
        Method::GradientRollout => {
            let (blocks, gradients) = attention_gradients(model, x, class, taps)?;
            gradient_rollout(&blocks, &gradients)?
        }
        other => bail!("{other} is not an attention method"),
    };
    let coarse = read_out(&relevance, info)?;
    let (height, width) = (x.size()[2], x.size()[3]);
    upsampled_and_scaled(&coarse, height, width)
}

/// The probabilities A_l (`[heads, T, T]` each) and ∂S_c/∂A_l at every
/// attention tap, from one forward and one backward pass.
fn attention_gradients(
    model: &Model,
    x: &Tensor,
    class: i64,
    taps: &[TapId],
) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    let classes = model.info.labels.len() as i64;
    let weights = Weights {
        taps: taps.iter().map(|_| None).collect(),
        ..Weights::one_hot(1, classes, class, model.device())?
    };
    let pass = Pass {
        taps,
        cotangent: Cotangent::Fixed(&weights),
        wrt: Wrt::Taps,
        precision: Precision::Fp32,
    };
    let (outputs, flat) = model.network.vjp(x, pass)?;
    let flat = flat.f_to_kind(Kind::Float)?.f_squeeze_dim(0)?;
    let mut blocks = Vec::with_capacity(taps.len());
    let mut gradients = Vec::with_capacity(taps.len());
    let mut start = 0;
    for activation in &outputs.taps {
        let a = activation.f_to_kind(Kind::Float)?.f_squeeze_dim(0)?;
        let size = a.numel() as i64;
        gradients.push(flat.f_narrow(0, start, size)?.f_view_as(&a)?);
        start += size;
        blocks.push(a);
    }
    Ok((blocks, gradients))
}

/// Attention rollout: R = Â_L ⋯ Â_1 with Â_l = ½(E_h A_l + I), `[T, T]`.
pub fn rollout(blocks: &[Tensor]) -> Result<Tensor> {
    let mut relevance: Option<Tensor> = None;
    for a in blocks {
        let tokens = a.size()[1];
        let identity = Tensor::f_eye(tokens, (Kind::Float, a.device()))?;
        let mixed = a
            .f_mean_dim([0].as_slice(), false, Kind::Float)?
            .f_add(&identity)?
            .f_mul_scalar(0.5)?;
        relevance = Some(match relevance {
            None => mixed,
            Some(r) => mixed.f_matmul(&r)?,
        });
    }
    relevance.context("attention rollout needs at least one block")
}

/// Chefer et al.'s rule: R ← R + Ā_l R from R = I, with
/// Ā_l = E_h[(G_l ⊙ A_l)⁺], `[T, T]`.
pub fn gradient_rollout(blocks: &[Tensor], gradients: &[Tensor]) -> Result<Tensor> {
    let first = blocks.first().context("gradient-weighted rollout needs at least one block")?;
    let tokens = first.size()[1];
    let mut relevance = Tensor::f_eye(tokens, (Kind::Float, first.device()))?;
    for (a, g) in blocks.iter().zip(gradients) {
        let weighted = g.f_mul(a)?.f_relu()?.f_mean_dim([0].as_slice(), false, Kind::Float)?;
        relevance = relevance.f_add(&weighted.f_matmul(&relevance)?)?;
    }
    Ok(relevance)
}

/// The relevance `[h, w]` of the patch tokens for the tokens the head reads:
/// row 0 of R (the class token), or the mean of the patches' rows.
fn read_out(relevance: &Tensor, tap: &Tap) -> Result<Tensor> {
    let prefix = i64::from(tap.prefix_tokens.unwrap_or(0));
    let [height, width] = tap
        .grid
        .with_context(|| format!("attention tap {} has no patch grid in its sidecar", tap.name))?;
    let patches = relevance.f_narrow(1, prefix, height * width)?;
    let row = match (tap.readout.unwrap_or(Readout::Token), prefix) {
        (Readout::Token, p) if p > 0 => patches.f_select(0, 0)?,
        _ => patches.f_narrow(0, prefix, height * width)?.f_mean_dim(
            [0].as_slice(),
            false,
            Kind::Float,
        )?,
    };
    Ok(row.f_view([height, width])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(values: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(values).view(shape)
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t.reshape([-1])).unwrap()
    }

    #[test]
    fn rollout_mixes_each_block_with_the_residual_and_multiplies_through() {
        // One head, 2 tokens: block 1 sends everything to token 1, block 2 keeps each token.
        let first = matrix(&[0.0, 1.0, 0.0, 1.0], &[1, 2, 2]);
        let second = matrix(&[1.0, 0.0, 0.0, 1.0], &[1, 2, 2]);
        // Â1 = [[.5, .5], [0, 1]], Â2 = I: R = Â1.
        assert_eq!(
            values(&rollout(&[first.shallow_clone(), second]).unwrap()),
            vec![0.5, 0.5, 0.0, 1.0]
        );
        // Twice Â1: [[.25, .75], [0, 1]]; rows still sum to one.
        let twice = rollout(&[first.shallow_clone(), first]).unwrap();
        assert_eq!(values(&twice), vec![0.25, 0.75, 0.0, 1.0]);
    }

    #[test]
    fn rollout_averages_the_heads() {
        let heads = matrix(&[1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0], &[2, 2, 2]);
        // E_h A = [[.5, .5], [.5, .5]]; Â = [[.75, .25], [.25, .75]].
        assert_eq!(values(&rollout(&[heads]).unwrap()), vec![0.75, 0.25, 0.25, 0.75]);
    }

    #[test]
    fn gradient_rollout_keeps_positive_evidence_only() {
        let a = matrix(&[0.5, 0.5, 0.25, 0.75], &[1, 2, 2]);
        let g = matrix(&[2.0, -2.0, 0.0, 4.0], &[1, 2, 2]);
        // Ā = [[1, 0], [0, 3]]; R = I + Ā I = [[2, 0], [0, 4]].
        let r = gradient_rollout(&[a.shallow_clone()], &[g.shallow_clone()]).unwrap();
        assert_eq!(values(&r), vec![2.0, 0.0, 0.0, 4.0]);
        // A second block applies to the relevance so far: R + Ā R = [[4, 0], [0, 16]].
        let r2 = gradient_rollout(&[a.shallow_clone(), a], &[g.shallow_clone(), g]).unwrap();
        assert_eq!(values(&r2), vec![4.0, 0.0, 0.0, 16.0]);
    }

    #[test]
    fn the_class_token_row_or_the_patches_mean_is_read_out() {
        // 1 prefix token and a 1x2 grid: R rows are (cls, p0, p1).
        let r = matrix(&[9.0, 1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 5.0, 6.0], &[3, 3]);
        let mut tap = Tap::grid("blocks.0", [1, 1, 1]);
        tap.prefix_tokens = Some(1);
        tap.grid = Some([1, 2]);
        assert_eq!(values(&read_out(&r, &tap).unwrap()), vec![1.0, 2.0]);
        tap.readout = Some(Readout::Mean);
        assert_eq!(values(&read_out(&r, &tap).unwrap()), vec![4.0, 5.0]);
        tap.prefix_tokens = Some(0);
        tap.grid = Some([1, 3]);
        tap.readout = None;
        let mean = values(&read_out(&r, &tap).unwrap());
        assert_eq!(mean, vec![3.0, 3.0, 4.0]);
    }
}
