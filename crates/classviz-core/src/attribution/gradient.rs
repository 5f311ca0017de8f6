//! Gradient-based attributions `[C, H, W]`: the gradient `∂S_c/∂I` at the
//! photo (the paper), SmoothGrad (Smilkov et al. 2017: the gradient averaged
//! over noisy copies), gradient × input, and integrated gradients
//! (Sundararajan et al. 2017). The samples go through the network in batches.

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::faithfulness::insertion_start;
use super::method::{Baseline, Method, MethodSettings};
use classviz_engine::input::Normalise;
use classviz_engine::model::{sample_batch, Model};
use classviz_engine::network::{Cotangent, Pass, Weights, Wrt};
use classviz_engine::precision::Precision;

/// The attribution `[C, H, W]` of a gradient-based `method` for `class` at `x`.
pub fn attribution(
    model: &Model,
    x: &Tensor,
    class: i64,
    method: Method,
    settings: &MethodSettings,
) -> Result<Tensor> {
    Ok(match method {
        Method::Gradient => gradients(model, x, class)?.f_get(0)?,
        Method::GradientXInput => gradients(model, x, class)?.f_mul(x)?.f_get(0)?,
        Method::Smoothgrad => smoothgrad(model, x, class, settings.samples, settings.noise)?,
        Method::IntegratedGradients => {
            integrated_gradients(model, x, class, settings.steps, settings.baseline)?
        }
        other => bail!("{other} is not a gradient-based method"),
    })
}

/// Smilkov et al.: the gradient averaged over `samples` noisy copies (σ =
/// `noise` × the input's range), `[C, H, W]`; the map is taken of the average.
fn smoothgrad(model: &Model, x: &Tensor, class: i64, samples: i64, noise: f64) -> Result<Tensor> {
    let range = f64::try_from(x.f_max()?.f_sub(&x.f_min()?)?)?;
    let mut total = x.f_zeros_like()?;
    for chunk in chunks(samples, sample_batch(x.device())) {
        let copies = x.f_expand([chunk, -1, -1, -1], false)?;
        let noisy = copies.f_add(&copies.f_randn_like()?.f_mul_scalar(noise * range)?)?;
        total = total.f_add(&summed_gradients(model, &noisy, class)?)?;
    }
    Ok(total.f_div_scalar(samples as f64)?.f_get(0)?)
}

/// Sundararajan et al.: (x − baseline) times the gradient averaged along the
/// straight path from the baseline, a midpoint Riemann sum of `steps`, `[C, H, W]`.
fn integrated_gradients(
    model: &Model,
    x: &Tensor,
    class: i64,
    steps: i64,
    baseline: Baseline,
) -> Result<Tensor> {
    let reference = match baseline {
        Baseline::Mean => x.f_zeros_like()?,
        Baseline::Black => model.input().normalise(&x.f_zeros_like()?)?,
        Baseline::Blur => insertion_start(x)?,
    };
    let delta = x.f_sub(&reference)?;
    let mut total = x.f_zeros_like()?;
    let mut done = 0;
    for chunk in chunks(steps, sample_batch(x.device())) {
        let alphas = Tensor::f_arange(chunk, (Kind::Float, x.device()))?
            .f_add_scalar(done as f64 + 0.5)?
            .f_div_scalar(steps as f64)?;
        let path = reference.f_add(&alphas.f_view([chunk, 1, 1, 1])?.f_mul(&delta)?)?;
        total = total.f_add(&summed_gradients(model, &path, class)?)?;
        done += chunk;
    }
    Ok(delta.f_mul(&total)?.f_div_scalar(steps as f64)?.f_get(0)?)
}

/// The gradients of a batch summed over it, `[1, C, H, W]`.
fn summed_gradients(model: &Model, batch: &Tensor, class: i64) -> Result<Tensor> {
    Ok(gradients(model, batch, class)?.f_sum_dim_intlist([0].as_slice(), true, Kind::Float)?)
}

/// Split `total` samples into batches of at most `size`.
fn chunks(total: i64, size: i64) -> impl Iterator<Item = i64> {
    (0..total).step_by(size as usize).map(move |start| size.min(total - start))
}

/// ∂S_c/∂x for each image of the batch `x`.
fn gradients(model: &Model, x: &Tensor, class: i64) -> Result<Tensor> {
    let classes = model.info.labels.len() as i64;
    let weights = Weights::one_hot(x.size()[0], classes, class, model.device())?;
    let pass = Pass {
        taps: &[],
        cotangent: Cotangent::Fixed(&weights),
        wrt: Wrt::Input,
        precision: Precision::Fp32,
    };
    Ok(model.network.vjp(x, pass)?.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_total() {
        assert_eq!(chunks(40, 16).collect::<Vec<_>>(), vec![16, 16, 8]);
        assert_eq!(chunks(25, 5).collect::<Vec<_>>(), vec![5; 5]);
    }
}
