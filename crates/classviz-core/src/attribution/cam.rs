//! Class activation maps from a tap's activations A (`[K, h, w]`) and the
//! class score's gradient G there, with no hooks: a tapped export returns A
//! beside the scores, and the network seam takes the gradient at a tap. Each
//! map is upsampled (bilinear) to the input, rectified and scaled to [0, 1].
//!
//! - Grad-CAM (Selvaraju et al. 2017): ReLU(Σ_k mean_ij(G_k) · A_k);
//! - Grad-CAM++ (Chattopadhay et al. 2018): the channel weights
//!   Σ_ij a_kij · ReLU(G_kij) with a = G² / (2G² + Σ_ab A_kab · G³);
//! - LayerCAM (Jiang et al. 2021): ReLU(Σ_k ReLU(G_k) ⊙ A_k), per position;
//! - Score-CAM (Wang et al. 2020): forward passes only; each channel,
//!   upsampled and scaled to [0, 1], masks the image, and weighs its channel
//!   by the class probability it keeps: p_c(x ⊙ H_k) − p_c(mean image).

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

use super::method::Method;
use classviz_engine::model::{sample_batch, Model};
use classviz_engine::network::{Cotangent, Pass, TapId, Weights, Wrt};
use classviz_engine::precision::Precision;

/// A tap's activations A (`[1, K, h, w]`) at a photo and the gradient of
/// the class score there, ∂S_c/∂A: what the gradient-weighted maps share.
pub struct TapGradient {
    pub tap: TapId,
    activations: Tensor,
    gradient: Tensor,
}

impl TapGradient {
    /// A and ∂S_c/∂A at `tap` for `class` at the photo `x`: one forward and
    /// one backward pass. A gradient that is zero everywhere is refused: no
    /// map can be made from it.
    pub fn of(model: &Model, x: &Tensor, class: i64, tap: TapId) -> Result<TapGradient> {
        let taken = TapGradient::take(model, x, class, tap)?;
        if taken.is_zero()? {
            bail!(
                "the class score's gradient at tap {} is zero everywhere, so no gradient-weighted map can be made there: the score does not depend on its positions (in a ViT, the last block's patch tokens never reach the class token; a head that is all zeros does the same); take the map at an earlier tap (--tap; `classviz info` lists them)",
                model.info.tap_info(tap).name
            );
        }
        Ok(taken)
    }

    fn take(model: &Model, x: &Tensor, class: i64, tap: TapId) -> Result<TapGradient> {
        let classes = model.info.labels.len() as i64;
        let weights =
            Weights { taps: vec![None], ..Weights::one_hot(1, classes, class, model.device())? };
        let pass = Pass {
            taps: &[tap],
            cotangent: Cotangent::Fixed(&weights),
            wrt: Wrt::Tap(0),
            precision: Precision::Fp32,
        };
        let (outputs, gradient) = model.network.vjp(x, pass)?;
        let activations = outputs.taps[0].f_to_kind(Kind::Float)?;
        Ok(TapGradient { tap, activations, gradient: gradient.f_to_kind(Kind::Float)? })
    }

    /// Whether the gradient is exactly zero at every position and channel.
    fn is_zero(&self) -> Result<bool> {
        Ok(f64::try_from(self.gradient.f_abs()?.f_max()?)? == 0.0)
    }
}

/// The default tap of class activation maps for `class` at the photo `x`:
/// the last spatial tap whose class-score gradient is not zero there. A
/// ViT's last block is passed over (its patch tokens never reach the class
/// token), and a CNN's last stage is taken, as Grad-CAM's authors do.
pub fn default_tap(model: &Model, x: &Tensor, class: i64) -> Result<TapId> {
    let candidates = model.info.cam_taps()?;
    for tap in &candidates {
        if !TapGradient::take(model, x, class, tap.id)?.is_zero()? {
            return Ok(tap.id);
        }
    }
    let names: Vec<&str> = candidates.iter().map(|t| t.name.as_str()).collect();
    bail!(
        "the class score's gradient is zero at every spatial tap ({}): no class activation map can be made; does the score depend on the input at all?",
        names.join(", ")
    )
}

/// The map `[H, W]` (input size, in [0, 1]) of the class activation map
/// `kind` for `class` at the photo `x` (`[1, C, H, W]`, model space), at the
/// model's tap `tap`; the gradient-weighted ones from `shared`, the tap's
/// gradient when it has been taken already.
pub fn cam(
    model: &Model,
    x: &Tensor,
    class: i64,
    kind: Method,
    tap: TapId,
    shared: Option<&TapGradient>,
) -> Result<Tensor> {
    let (height, width) = (x.size()[2], x.size()[3]);
    let coarse = match (kind, shared) {
        (Method::ScoreCam, _) => score_cam(model, x, class, tap)?,
        (_, Some(taken)) if taken.tap == tap => {
            gradient_cam(kind, &taken.activations, &taken.gradient)?
        }
        _ => {
            let taken = TapGradient::of(model, x, class, tap)?;
            gradient_cam(kind, &taken.activations, &taken.gradient)?
        }
    };
    upsampled_and_scaled(&coarse, height, width)
}

/// The gradient-weighted maps `[h, w]` (before ReLU) from A and G (`[1, K, h, w]`).
fn gradient_cam(kind: Method, a: &Tensor, g: &Tensor) -> Result<Tensor> {
    let spatial = [2i64, 3].as_slice();
    let weighted = match kind {
        Method::GradCam => {
            let alpha = g.f_mean_dim(spatial, true, Kind::Float)?;
            a.f_mul(&alpha)?.f_sum_dim_intlist([1].as_slice(), false, Kind::Float)?
        }
        Method::GradCamPlusPlus => {
            let (g2, g3) = (g.f_square()?, g.f_pow_tensor_scalar(3)?);
            let total = a.f_sum_dim_intlist(spatial, true, Kind::Float)?;
            let denominator = g2.f_mul_scalar(2.0)?.f_add(&total.f_mul(&g3)?)?;
            let safe = denominator.f_where_scalarother(&denominator.f_ne(0.0)?, 1.0)?;
            let coefficients = g2.f_div(&safe)?.f_where_scalarother(&g.f_ne(0.0)?, 0.0)?;
            let weights =
                coefficients.f_mul(&g.f_relu()?)?.f_sum_dim_intlist(spatial, true, Kind::Float)?;
            a.f_mul(&weights)?.f_sum_dim_intlist([1].as_slice(), false, Kind::Float)?
        }
        Method::LayerCam => {
            g.f_relu()?.f_mul(a)?.f_sum_dim_intlist([1].as_slice(), false, Kind::Float)?
        }
        other => bail!("{other} takes no gradient at a tap"),
    };
    Ok(weighted.f_squeeze_dim(0)?)
}

/// Score-CAM's map `[h, w]` (before ReLU): channels weighted by the class
/// probability each keeps when it masks the image, batched.
fn score_cam(model: &Model, x: &Tensor, class: i64, tap: TapId) -> Result<Tensor> {
    let (height, width) = (x.size()[2], x.size()[3]);
    let activations = model.forward(x, &[tap])?.taps.remove(0).f_to_kind(Kind::Float)?;
    let masks = scaled_per_channel(&upsample(&activations.f_transpose(0, 1)?, height, width)?)?;
    let channels = masks.size()[0];
    let baseline = model.probabilities(&x.f_zeros_like()?)?.f_select(1, class)?;
    let batch = sample_batch(model.device());
    let kept = model.class_probabilities(channels, batch, class, |start, take| {
        Ok(x.f_mul(&masks.f_narrow(0, start, take)?)?)
    })?;
    let weights = kept.f_sub(&baseline)?.f_view([1, channels, 1, 1])?;
    Ok(activations
        .f_mul(&weights)?
        .f_sum_dim_intlist([1].as_slice(), false, Kind::Float)?
        .f_squeeze_dim(0)?)
}

/// `[N, C, h, w]` resampled to `[N, C, height, width]` (bilinear, corners not aligned).
fn upsample(t: &Tensor, height: i64, width: i64) -> Result<Tensor> {
    Ok(t.f_upsample_bilinear2d([height, width], false, None, None)?)
}

/// Each `[N, 1, H, W]` map scaled to [0, 1] by its own minimum and maximum
/// (a constant map becomes zero).
fn scaled_per_channel(maps: &Tensor) -> Result<Tensor> {
    let n = maps.size()[0];
    let flat = maps.f_view([n, -1])?;
    let low = flat.f_amin([1].as_slice(), true)?;
    let range = flat.f_amax([1].as_slice(), true)?.f_sub(&low)?;
    let scaled = flat.f_sub(&low)?.f_div(&range.f_clamp_min(1e-12)?)?;
    Ok(scaled.f_view_as(maps)?)
}

/// A coarse map `[h, w]` upsampled to `[height, width]`, rectified and scaled to [0, 1] by its maximum.
pub(super) fn upsampled_and_scaled(coarse: &Tensor, height: i64, width: i64) -> Result<Tensor> {
    let size = coarse.size();
    let map = upsample(&coarse.f_view([1, 1, size[0], size[1]])?, height, width)?
        .f_relu()?
        .f_view([height, width])?;
    let top = map.f_max()?.f_clamp_min(1e-12)?;
    Ok(map.f_div(&top)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn tensor(values: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(values).view(shape)
    }

    #[test]
    fn grad_cam_weighs_channels_by_their_mean_gradient() {
        // Two channels of 1×2; channel 0's gradient averages 1, channel 1's −1.
        let a = tensor(&[1.0, 2.0, 3.0, 5.0], &[1, 2, 1, 2]);
        let g = tensor(&[0.5, 1.5, -1.0, -1.0], &[1, 2, 1, 2]);
        let map = gradient_cam(Method::GradCam, &a, &g).unwrap();
        assert_eq!(Vec::<f32>::try_from(map.reshape([-1])).unwrap(), vec![1.0 - 3.0, 2.0 - 5.0]);
        let layer = gradient_cam(Method::LayerCam, &a, &g).unwrap();
        assert_eq!(Vec::<f32>::try_from(layer.reshape([-1])).unwrap(), vec![0.5, 3.0]);
    }

    #[test]
    fn grad_cam_plus_plus_matches_its_formula_on_one_channel() {
        let a = tensor(&[1.0, 3.0], &[1, 1, 1, 2]);
        let g = tensor(&[2.0, -1.0], &[1, 1, 1, 2]);
        // ΣA = 4; a_ij = g²/(2g² + 4g³): 4/(8 + 32) = 0.1 and 1/(2 − 4) = −0.5;
        // w = Σ a·ReLU(g) = 0.1·2 = 0.2; map = 0.2·A.
        let map = gradient_cam(Method::GradCamPlusPlus, &a, &g).unwrap();
        let values = Vec::<f32>::try_from(map.reshape([-1])).unwrap();
        assert!((values[0] - 0.2).abs() < 1e-6 && (values[1] - 0.6).abs() < 1e-6, "{values:?}");
    }

    #[test]
    fn maps_are_rectified_and_scaled_to_one() {
        let coarse = tensor(&[-1.0, 2.0, 4.0, 0.0], &[2, 2]);
        let map = upsampled_and_scaled(&coarse, 4, 4).unwrap();
        assert_eq!(map.size(), vec![4, 4]);
        assert!((f64::try_from(map.max()).unwrap() - 1.0).abs() < 1e-6);
        assert!(f64::try_from(map.min()).unwrap() >= 0.0);
        let constant =
            scaled_per_channel(&Tensor::ones([2, 1, 3, 3], (Kind::Float, Device::Cpu))).unwrap();
        assert_eq!(f64::try_from(constant.abs().max()).unwrap(), 0.0);
    }
}
