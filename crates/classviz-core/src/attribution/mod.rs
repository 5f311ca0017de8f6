//! Attribution: which pixels of a photo decide a class (Simonyan et al. §3).
//! A [`Method`] makes a map `[H, W]` from the photo and the network:
//! gradient-based maps ([`gradient`]: the paper's `M(i,j) = max_ch |w(i,j,ch)|`
//! of the gradient `w = ∂S_c/∂I`, SmoothGrad, gradient × input, integrated
//! gradients), class activation maps at a tap ([`cam`]) and a transformer's
//! attention rollouts ([`attention`]). [`faithfulness`]
//! scores a map's pixel order by deletion and insertion against random
//! orders; [`sanity`] compares maps on a trained and a randomised network.

pub mod attention;
pub mod cam;
pub mod faithfulness;
pub mod gradient;
pub mod method;
pub mod sanity;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use crate::priors;
use crate::segment;
use classviz_engine::model::Model;

pub use method::{
    Attribution, Baseline, Method, MethodSettings, ATTENTION_METHODS, CAMS, CONTRIBUTION_SMOOTHING,
};

/// The maps of one photo for one class: what the attributions share (the tap
/// gradient of the gradient-weighted class activation maps) is taken once, up
/// front, so that a map that cannot be made is refused before any is.
pub struct Attributor<'a> {
    model: &'a Model,
    x: &'a Tensor,
    class: i64,
    settings: &'a MethodSettings,
    tap_gradient: Option<cam::TapGradient>,
}

impl<'a> Attributor<'a> {
    /// For `attributions` of `class` at the normalised photo `x` (`[1, C, H, W]`).
    pub fn new(
        model: &'a Model,
        x: &'a Tensor,
        class: i64,
        settings: &'a MethodSettings,
        attributions: &[Attribution],
    ) -> Result<Attributor<'a>> {
        let gradient_cam =
            attributions.iter().find(|a| a.method.is_cam() && a.method != Method::ScoreCam);
        let tap_gradient = match gradient_cam {
            Some(a) => {
                let tap = a.tap.context("a class activation map needs a tap")?;
                Some(cam::TapGradient::of(model, x, class, tap)?)
            }
            None => None,
        };
        Ok(Attributor { model, x, class, settings, tap_gradient })
    }

    /// The attribution `[C, H, W]` (a CAM's is `[1, H, W]`) and its saliency map `[H, W]`.
    pub fn attribute(&self, attribution: Attribution) -> Result<(Tensor, Tensor)> {
        let (model, x, class) = (self.model, self.x, self.class);
        let method = attribution.method;
        if method.is_cam() {
            let tap = attribution.tap.context("a class activation map needs a tap")?;
            let map = cam::cam(model, x, class, method, tap, self.tap_gradient.as_ref())?;
            return Ok((map.f_unsqueeze(0)?, map));
        }
        if method.is_attention() {
            let taps = model.info.attention_taps(&format!("--method {method}"))?;
            let ids: Vec<_> = taps.iter().map(|t| t.id).collect();
            let map = attention::attention_map(model, x, class, method, &ids)?;
            return Ok((map.f_unsqueeze(0)?, map));
        }
        let attribution = gradient::attribution(model, x, class, method, self.settings)?;
        let map = match method {
            // Sensitivities (the paper's gradient, SmoothGrad): how strongly a
            // pixel moves the score either way, M = max_ch |w|.
            Method::Gradient | Method::Smoothgrad => {
                attribution.f_abs()?.f_amax([0].as_slice(), false)?
            }
            // Contributions (gradient × input, integrated gradients; IG's sum to
            // the score's change from the baseline): the signed sum over channels,
            // so that evidence for the class ranks first and evidence against last.
            _ => attribution.f_sum_dim_intlist([0].as_slice(), false, Kind::Float)?,
        };
        Ok((attribution, map))
    }
}

/// One attribution `[C, H, W]` (a CAM's is `[1, H, W]`) for `class` at the
/// normalised photo `x` (`[1, C, H, W]`), and its saliency map `[H, W]`.
pub fn attribute(
    model: &Model,
    x: &Tensor,
    class: i64,
    attribution: Attribution,
    settings: &MethodSettings,
) -> Result<(Tensor, Tensor)> {
    Attributor::new(model, x, class, settings, &[attribution])?.attribute(attribution)
}

/// `map` (`[H, W]`) pooled by a Gaussian of `sigma` pixels (unchanged at 0).
pub fn smooth_map(map: &Tensor, sigma: f64) -> Result<Tensor> {
    let size = map.size();
    let (height, width) = (size[0], size[1]);
    Ok(priors::gaussian_blur(&map.f_view([1, 1, height, width])?, sigma)?
        .f_view([height, width])?)
}

/// `--box`: the box covers the largest connected region of the pixels holding
/// this fraction of the total saliency mass.
const BOX_MASS: f64 = 0.5;

/// Bounding box `(x0, y0, x1, y1)` (inclusive, in map pixels) of the largest
/// 8-connected region among the pixels that hold the top `BOX_MASS` of saliency.
pub fn bounding_box(map: &Tensor) -> Result<(u32, u32, u32, u32)> {
    let (height, width) = (map.size()[0] as usize, map.size()[1] as usize);
    let values = map_values(map)?;
    let mut sorted = values.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = sorted.iter().sum();
    let mut mass = 0.0;
    let mut threshold = sorted[0];
    for &value in &sorted {
        mass += value;
        threshold = value;
        if mass >= BOX_MASS * total {
            break;
        }
    }
    let selected: Vec<bool> = values.iter().map(|&v| v >= threshold && v > 0.0).collect();
    segment::largest_component_box(&selected, width, height)
        .context("the saliency map is all zero: no box")
}

/// The map's values, row by row, on the CPU.
pub fn map_values(map: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(
        map.f_to_kind(Kind::Double)?.f_to_device(Device::Cpu)?.f_reshape([-1])?,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use classviz_records::choice::Choice;

    #[test]
    fn all_expands_to_every_method_and_the_cams_only_with_a_tap() {
        assert_eq!(Method::All.expand(true, true).len(), Method::ALL.len() - 1);
        assert!(Method::All.expand(false, true).iter().all(|m| !m.is_cam()));
        assert!(Method::All.expand(true, false).iter().all(|m| !m.is_attention()));
        assert_eq!(Method::All.expand(false, true).iter().filter(|m| m.is_attention()).count(), 2);
        assert_eq!(Method::ScoreCam.expand(false, false), vec![Method::ScoreCam]);
        assert_eq!(Method::parse("GRAD-CAM++"), Ok(Method::GradCamPlusPlus));
    }

    #[test]
    fn smoothing_pools_neighbours_and_zero_leaves_the_map() {
        let mut delta = vec![0f32; 81];
        delta[40] = 1.0;
        let map = Tensor::from_slice(&delta).view([9, 9]);
        let same = smooth_map(&map, 0.0).unwrap();
        assert_eq!(f64::try_from((&same - &map).abs().max()).unwrap(), 0.0);
        let pooled = smooth_map(&map, 1.0).unwrap();
        let centre = pooled.double_value(&[4, 4]);
        let beside = pooled.double_value(&[4, 5]);
        assert!(centre < 1.0 && beside > 0.0 && beside < centre, "{centre} {beside}");
        assert!((f64::try_from(pooled.sum(Kind::Double)).unwrap() - 1.0).abs() < 1e-4);
        let flat = smooth_map(&Tensor::ones([9, 9], (Kind::Float, Device::Cpu)), 1.0).unwrap();
        assert!((f64::try_from(flat.min()).unwrap() - 1.0).abs() < 1e-5);
    }

    #[test]
    fn box_is_the_largest_salient_region() {
        let mut values = vec![0.0f32; 10 * 12];
        // A big blob at x 2..=5, y 3..=6 and a small, equally hot one elsewhere.
        for y in 3..=6 {
            for x in 2..=5 {
                values[y * 12 + x] = 1.0;
            }
        }
        values[12 + 10] = 1.0;
        let map = Tensor::from_slice(&values).view([10, 12]);
        assert_eq!(bounding_box(&map).unwrap(), (2, 3, 5, 6));
    }
}
