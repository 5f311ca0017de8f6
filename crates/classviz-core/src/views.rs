//! Transformation robustness: the random views through which the network
//! sees an image at each step. Lucid's padding, jitter, scaling and rotation
//! (Olah et al., "Feature Visualization", Distill 2017), or MaCo's crops of a
//! larger canvas (Fel et al. 2023); K views per step, batched (expectation
//! over transformations), with optional noise on each.

use std::f64::consts::PI;

use anyhow::Result;
use tch::{Kind, Tensor};

use crate::rng::Rng;
use classviz_records::input::InputSpec;

/// The random transforms of each step. `Transforms::none()` is the paper's:
/// the image itself, once.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Transforms {
    /// Reflection padding (pixels) around the image before the transforms.
    pub pad: i64,
    /// Random translation up to ± this many pixels.
    pub jitter: i64,
    /// Scale factors, one drawn at random per view.
    pub scales: Vec<f64>,
    /// Random rotation up to ± this many degrees.
    pub rotate: f64,
    /// Random views per image per step, batched; the objective is their mean.
    pub views: u32,
    /// The optimised canvas's side as a multiple of the model's input side.
    pub canvas: f64,
    /// MaCo crops: each view is a square box of this fraction (low, high) of
    /// the canvas side, placed around the centre, resized to the input.
    pub crop_box: Option<(f64, f64)>,
    /// σ of the Gaussian noise, and half-width of the uniform noise, added to
    /// each view (in the model's zero-centred units).
    pub view_noise: f64,
}

impl Transforms {
    /// No transform: the network sees the image itself.
    pub fn none() -> Transforms {
        Transforms {
            pad: 0,
            jitter: 0,
            scales: vec![1.0],
            rotate: 0.0,
            views: 1,
            canvas: 1.0,
            crop_box: None,
            view_noise: 0.0,
        }
    }

    /// Whether any random transform is on.
    pub fn random(&self) -> bool {
        self.pad > 0
            || self.jitter > 0
            || self.rotate > 0.0
            || self.scales.iter().any(|&s| s != 1.0)
            || self.crop_box.is_some()
    }

    /// Whether the network sees exactly the image, once per step.
    pub fn is_identity(&self) -> bool {
        !self.random() && self.views <= 1 && self.canvas == 1.0 && self.view_noise == 0.0
    }
}

/// The input side (pixels) for which the presets' padding and jitter are
/// given; on another input they scale with its shorter side.
pub const TRANSFORM_REFERENCE_SIDE: i64 = 224;

/// A preset's `pixels` of padding or jitter for an input whose shorter side
/// is `side`: in proportion to `TRANSFORM_REFERENCE_SIDE`, at least 1 where
/// the preset has any. The natural preset's 16 px on a 28-pixel digit moved it
/// off its own frame (docs/benchmarks.md).
pub fn scaled_pixels(pixels: i64, side: i64) -> i64 {
    if pixels == 0 {
        return 0;
    }
    ((pixels as f64 * side as f64 / TRANSFORM_REFERENCE_SIDE as f64).round() as i64).max(1)
}

/// Evenly spaced scale factors from `low` to `high` (Lucid draws from 11 of them
/// over 0.9–1.1): one every 0.02.
pub fn scale_range(low: f64, high: f64) -> Vec<f64> {
    let steps = (((high - low) / SCALE_STEP).round() as usize).max(1);
    (0..=steps).map(|i| low + (high - low) * i as f64 / steps as f64).collect()
}

const SCALE_STEP: f64 = 0.02;
/// MaCo crop centres: Gaussian around the canvas centre, σ this fraction of its side.
const CROP_CENTRE_SPREAD: f64 = 0.15;

/// The input spec with the canvas's size: `canvas` times the input side.
pub fn canvas_spec(input: &InputSpec, canvas: f64) -> InputSpec {
    let side = |n: i64| ((n as f64 * canvas).round() as i64).max(1);
    InputSpec { height: side(input.height), width: side(input.width), ..input.clone() }
}

/// One random view of the canvas: the box it covers (in canvas pixels), its
/// rotation (radians) and its centre's offset from the canvas centre (pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub box_width: f64,
    pub box_height: f64,
    pub angle: f64,
    pub shift_x: f64,
    pub shift_y: f64,
}

impl View {
    /// The whole input-sized canvas, untransformed.
    pub fn identity(input: &InputSpec) -> View {
        View {
            box_width: input.width as f64,
            box_height: input.height as f64,
            angle: 0.0,
            shift_x: 0.0,
            shift_y: 0.0,
        }
    }
}

/// Draw `transforms.views` random views of a canvas for a model taking
/// `input`. Lucid's transforms: a scale s (the box is the input size / s), a
/// rotation and a jitter; MaCo's crops: a square box of a random fraction of
/// the canvas side, its centre normal around the canvas centre, kept inside.
/// `strength` (1: as given) scales the transforms down: jitter, rotation and
/// the scales' distance from 1 in proportion, and the crops' smallest size
/// towards their largest.
pub fn draw_views(
    transforms: &Transforms,
    input: &InputSpec,
    strength: f64,
    rng: &mut Rng,
) -> Vec<View> {
    let canvas = canvas_spec(input, transforms.canvas);
    (0..transforms.views.max(1))
        .map(|_| match transforms.crop_box {
            Some(range) => crop_view(weakened_crops(range, strength), &canvas, rng),
            None => lucid_view(transforms, input, strength, rng),
        })
        .collect()
}

/// A crop range at `strength`: the smallest crop moves towards the largest.
fn weakened_crops((low, high): (f64, f64), strength: f64) -> (f64, f64) {
    if strength == 1.0 {
        return (low, high);
    }
    (high - (high - low) * strength, high)
}

/// A MaCo crop: a box of a random fraction of the canvas's sides (the input's
/// aspect, so that resampling it to the input does not stretch it), its
/// centre normal around the canvas centre, kept inside.
fn crop_view((low, high): (f64, f64), canvas: &InputSpec, rng: &mut Rng) -> View {
    let (cw, ch) = (canvas.width as f64, canvas.height as f64);
    let fraction = low + (high - low) * rng.unit();
    let (box_width, box_height) = (fraction * cw, fraction * ch);
    let room_x = ((cw - box_width) / 2.0).max(0.0);
    let room_y = ((ch - box_height) / 2.0).max(0.0);
    let spread = CROP_CENTRE_SPREAD * cw.min(ch);
    View {
        box_width,
        box_height,
        angle: 0.0,
        shift_x: (rng.normal() * spread).clamp(-room_x, room_x),
        shift_y: (rng.normal() * spread).clamp(-room_y, room_y),
    }
}

fn lucid_view(transforms: &Transforms, input: &InputSpec, strength: f64, rng: &mut Rng) -> View {
    let drawn = transforms.scales[rng.below(transforms.scales.len())];
    let scale = if strength == 1.0 { drawn } else { 1.0 + (drawn - 1.0) * strength };
    let angle = (rng.unit() * 2.0 - 1.0) * transforms.rotate * strength * PI / 180.0;
    let jitter = (transforms.jitter as f64 * strength).round() as i64;
    let (tx, ty) = (rng.symmetric(jitter) as f64, rng.symmetric(jitter) as f64);
    View {
        box_width: input.width as f64 / scale,
        box_height: input.height as f64 / scale,
        angle,
        shift_x: tx,
        shift_y: ty,
    }
}

/// The views of a batch of canvases `[N, C, Hc, Wc]`, each resampled to the
/// input size: `[K·N, C, H, W]`, view-major (view k of image i is row k·N + i).
/// The canvas is reflection-padded by `transforms.pad` first;
/// `transforms.view_noise` adds Gaussian and uniform noise to every view.
pub fn apply_views(
    images: &Tensor,
    transforms: &Transforms,
    views: &[View],
    input: &InputSpec,
) -> Result<Tensor> {
    let size = images.size();
    let (h, w) = (size[2], size[3]);
    let identity = views.len() == 1
        && views[0] == View::identity(input)
        && transforms.pad == 0
        && (h, w) == (input.height, input.width);
    let seen = if identity {
        images.shallow_clone()
    } else {
        resample(images, transforms.pad, views, input)?
    };
    if transforms.view_noise > 0.0 {
        let noise = transforms.view_noise;
        let gaussian = seen.f_randn_like()?.f_mul_scalar(noise)?;
        let uniform =
            seen.f_rand_like()?.f_mul_scalar(2.0)?.f_sub_scalar(1.0)?.f_mul_scalar(noise)?;
        Ok(seen.f_add(&gaussian)?.f_add(&uniform)?)
    } else {
        Ok(seen)
    }
}

/// Pad by `pad` (reflection), then sample each view's box at the input size.
fn resample(images: &Tensor, pad: i64, views: &[View], input: &InputSpec) -> Result<Tensor> {
    let size = images.size();
    let (n, c, h, w) = (size[0], size[1], size[2], size[3]);
    let pad = pad.min(h - 1).min(w - 1).max(0);
    let padded = if pad > 0 {
        images.f_pad([pad, pad, pad, pad], "reflect", None)?
    } else {
        images.shallow_clone()
    };
    let (ph, pw) = ((h + 2 * pad) as f64, (w + 2 * pad) as f64);
    let mut thetas = Vec::with_capacity(views.len() * 6);
    for view in views {
        let (cos, sin) = (view.angle.cos(), view.angle.sin());
        // Output pixel → padded-canvas coordinates, in grid_sample's [-1, 1] units.
        thetas.extend_from_slice(&[
            cos * view.box_width / pw,
            -sin * view.box_height / pw,
            2.0 * view.shift_x / pw,
            sin * view.box_width / ph,
            cos * view.box_height / ph,
            2.0 * view.shift_y / ph,
        ]);
    }
    let k = views.len() as i64;
    let theta = Tensor::f_from_slice(&thetas)?
        .f_to_kind(images.kind())?
        .f_to_device(images.device())?
        .f_view([k, 1, 2, 3])?
        .f_expand([k, n, 2, 3], false)?
        .f_reshape([k * n, 2, 3])?;
    let grid =
        Tensor::f_affine_grid_generator(&theta, [k * n, c, input.height, input.width], false)?;
    let source = if k > 1 { padded.f_repeat([k, 1, 1, 1])? } else { padded };
    const BILINEAR: i64 = 0;
    const REFLECTION: i64 = 2;
    Ok(source.f_grid_sampler(&grid, BILINEAR, REFLECTION, false)?)
}

/// What a canvas shows as a target's image: with MaCo crops, the view at the
/// canvas centre at the crops' mean size, resampled to the input (what the
/// network looked at, on average); otherwise the canvas itself. `images` may
/// have any channel count (an attribution map has one).
pub fn central_view(images: &Tensor, transforms: &Transforms, input: &InputSpec) -> Result<Tensor> {
    let Some((low, high)) = transforms.crop_box else { return Ok(images.shallow_clone()) };
    let size = images.size();
    let fraction = (low + high) / 2.0;
    let (box_width, box_height) = (fraction * size[3] as f64, fraction * size[2] as f64);
    let view = View { box_width, box_height, angle: 0.0, shift_x: 0.0, shift_y: 0.0 };
    let plain = Transforms { pad: 0, view_noise: 0.0, ..transforms.clone() };
    apply_views(images, &plain, &[view], input)
}

/// The mean over views of a view-major `[K·N, …]` per-row value: `[N, …]`.
pub fn mean_over_views(per_row: &Tensor, views: i64) -> Result<Tensor> {
    let size = per_row.size();
    let mut shape = vec![views, size[0] / views];
    shape.extend_from_slice(&size[1..]);
    Ok(per_row.f_view(shape.as_slice())?.f_mean_dim([0].as_slice(), false, Kind::Float)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn spec() -> InputSpec {
        InputSpec::small_rgb()
    }

    fn lucid() -> Transforms {
        Transforms {
            pad: 16,
            jitter: 16,
            scales: scale_range(0.8, 1.2),
            rotate: 20.0,
            ..Transforms::none()
        }
    }

    fn maco() -> Transforms {
        Transforms {
            canvas: 1.0 / 0.35,
            crop_box: Some((0.2, 0.5)),
            views: 4,
            view_noise: 0.05,
            ..Transforms::none()
        }
    }

    #[test]
    fn preset_pixels_scale_with_the_input_side() {
        assert_eq!(scaled_pixels(16, 224), 16);
        assert_eq!(scaled_pixels(16, 28), 2);
        assert_eq!(scaled_pixels(16, 448), 32);
        assert_eq!(scaled_pixels(8, 8), 1, "at least one pixel");
        assert_eq!(scaled_pixels(0, 28), 0);
    }

    #[test]
    fn views_with_a_fixed_seed_are_reproducible() {
        tch::manual_seed(2);
        let images = Tensor::randn([2, 3, 16, 12], (Kind::Float, Device::Cpu));
        let transforms = Transforms { views: 3, ..lucid() };
        let run = |seed| {
            let views = draw_views(&transforms, &spec(), 1.0, &mut Rng::new(seed));
            apply_views(&images, &transforms, &views, &spec()).unwrap()
        };
        let (a, b, c) = (run(7), run(7), run(8));
        assert!(a.equal(&b), "same seed, same views");
        assert!(!a.equal(&c), "another seed, other views");
        assert_eq!(a.size(), vec![6, 3, 16, 12]);
    }

    #[test]
    fn identity_view_when_all_off() {
        let images = Tensor::randn([1, 3, 16, 12], (Kind::Float, Device::Cpu));
        let none = Transforms::none();
        assert!(none.is_identity());
        let views = draw_views(&none, &spec(), 1.0, &mut Rng::new(0));
        assert_eq!(views, vec![View::identity(&spec())]);
        assert!(apply_views(&images, &none, &views, &spec()).unwrap().equal(&images));
    }

    #[test]
    fn crops_fall_inside_the_canvas() {
        let transforms = Transforms { views: 64, ..maco() };
        let canvas = canvas_spec(&spec(), transforms.canvas);
        assert_eq!((canvas.height, canvas.width), (46, 34), "canvas = input / 0.35");
        let (cw, ch) = (canvas.width as f64, canvas.height as f64);
        let mut rng = Rng::new(3);
        for _ in 0..20 {
            for view in draw_views(&transforms, &spec(), 1.0, &mut rng) {
                let fraction = view.box_width / cw;
                assert!((0.2 - 1e-9..=0.5 + 1e-9).contains(&fraction), "{view:?}");
                assert!((view.box_height / ch - fraction).abs() < 1e-9, "the input's aspect");
                assert!(view.shift_x.abs() + view.box_width / 2.0 <= cw / 2.0 + 1e-9, "{view:?}");
                assert!(view.shift_y.abs() + view.box_height / 2.0 <= ch / 2.0 + 1e-9, "{view:?}");
            }
        }
    }

    #[test]
    fn a_centred_crop_samples_the_canvas_centre() {
        // A canvas whose pixel values are their column index: a centred crop of
        // half the side, resampled to the input, spans the middle columns.
        let input = InputSpec { height: 8, width: 8, ..spec() };
        let transforms =
            Transforms { canvas: 2.0, crop_box: Some((0.5, 0.5)), ..Transforms::none() };
        let columns = Tensor::arange(16, (Kind::Float, Device::Cpu)).view([1, 1, 1, 16]);
        let canvas = columns.expand([1, 3, 16, 16], false).contiguous();
        let view = View { box_width: 8.0, box_height: 8.0, angle: 0.0, shift_x: 0.0, shift_y: 0.0 };
        let seen = apply_views(&canvas, &transforms, &[view], &input).unwrap();
        let row = Vec::<f64>::try_from(seen.get(0).get(0).get(3).to_kind(Kind::Double)).unwrap();
        assert_eq!(
            row.iter().map(|v| v.round() as i64).collect::<Vec<_>>(),
            (4..12).collect::<Vec<_>>()
        );
        let central = central_view(&canvas, &transforms, &input).unwrap();
        assert!(central.equal(&seen), "the central view is the centred crop of mean size");
    }

    #[test]
    fn identical_views_give_the_gradient_of_one() {
        tch::manual_seed(6);
        let input = spec();
        let transforms = Transforms { jitter: 3, rotate: 15.0, ..lucid() };
        let view = draw_views(&transforms, &input, 1.0, &mut Rng::new(9))[0];
        let images = Tensor::randn([2, 3, 16, 12], (Kind::Float, Device::Cpu));
        let weights = Tensor::randn([2, 3, 16, 12], (Kind::Float, Device::Cpu));
        let gradient = |k: usize| {
            let x = images.detach().set_requires_grad(true);
            let seen = apply_views(&x, &transforms, &vec![view; k], &input).unwrap();
            let per_view = seen.view([k as i64, 2, 3, 16, 12]) * &weights;
            let objective = per_view.square().sum(Kind::Float) / k as f64;
            Tensor::run_backward(&[&objective], &[&x], false, false).remove(0)
        };
        let one = gradient(1);
        for k in [2, 4] {
            let difference = f64::try_from((gradient(k) - &one).abs().max()).unwrap();
            assert!(difference < 1e-5, "{k} identical views: gradient off by {difference}");
        }
    }

    #[test]
    fn scale_ranges() {
        let lucid = scale_range(0.9, 1.1);
        assert_eq!(lucid.len(), 11);
        assert!((lucid[0] - 0.9).abs() < 1e-12 && (lucid[10] - 1.1).abs() < 1e-12);
        assert_eq!(scale_range(1.0, 1.0), vec![1.0, 1.0]);
    }

    #[test]
    fn the_mean_over_views_averages_view_major_rows() {
        let rows = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 6.0]);
        let mean = Vec::<f32>::try_from(mean_over_views(&rows, 2).unwrap()).unwrap();
        assert_eq!(mean, vec![2.0, 4.0]);
    }
}
