//! Dataset exemplars: the real images that drive a class or a unit most (and
//! least). Every image's activation for every target comes from one forward
//! pass per batch; each target keeps only its `top` best and `bottom` worst
//! images, so memory grows with targets × K, not with the folder. For a unit
//! at a spatial tap, where in the image it fires most is kept too, and its
//! receptive field there is found from the gradient's support.

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use crate::objective::Objective;
use classviz_engine::model::Model;
use classviz_engine::network::{Cotangent, Pass, TapId, Weights, Wrt};
use classviz_engine::precision::Precision;

/// One image's activation for one target, and where on the tap's grid a
/// unit fires most (row, column; `None` for classes).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scored {
    /// The image's place in the scan's sorted list of every image.
    pub image: usize,
    pub activation: f64,
    pub position: Option<(i64, i64)>,
}

/// A target's best and worst images so far. Ties go to the image earlier in
/// the list, so that any split of the scan (batches, shards, a resumed run)
/// keeps the same images as one pass would.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Keeper {
    top: usize,
    bottom: usize,
    /// Best first.
    pub best: Vec<Scored>,
    /// Worst first.
    pub worst: Vec<Scored>,
}

impl Keeper {
    pub fn new(top: usize, bottom: usize) -> Keeper {
        Keeper { top, bottom, best: Vec::new(), worst: Vec::new() }
    }

    /// Consider one more image.
    pub fn offer(&mut self, scored: Scored) {
        keep(&mut self.best, scored.clone(), self.top, above);
        keep(&mut self.worst, scored, self.bottom, below);
    }

    /// Take in another keeper's images (another shard's, or an earlier run's).
    pub fn merge(&mut self, other: &Keeper) {
        for scored in other.best.iter().chain(&other.worst) {
            if !self.best.contains(scored) && !self.worst.contains(scored) {
                self.offer(scored.clone());
            }
        }
    }
}

/// Whether `a` ranks above `b` among the best: a higher activation, or the
/// same and an earlier image.
fn above(a: &Scored, b: &Scored) -> bool {
    a.activation > b.activation || tie_earlier(a, b)
}

/// Whether `a` ranks above `b` among the worst: a lower activation, or the
/// same and an earlier image.
fn below(a: &Scored, b: &Scored) -> bool {
    a.activation < b.activation || tie_earlier(a, b)
}

fn tie_earlier(a: &Scored, b: &Scored) -> bool {
    a.activation == b.activation && a.image < b.image
}

/// Insert `scored` into `kept` (ordered by `first`) if it is among the best `most`.
fn keep(
    kept: &mut Vec<Scored>,
    scored: Scored,
    most: usize,
    first: impl Fn(&Scored, &Scored) -> bool,
) {
    if most == 0 || kept.iter().any(|k| k.image == scored.image) {
        return;
    }
    let at = kept.iter().position(|k| first(&scored, k)).unwrap_or(kept.len());
    if at < most {
        kept.insert(at, scored);
        kept.truncate(most);
    }
}

/// The activations `[images][targets]` of a batch `x` (`[N, C, H, W]`, the
/// model's space) whose first image is `first` in the scan's list: a class's
/// logit S_c, a channel's mean over the tap's grid (and where it is largest),
/// or a neuron (a channel at the grid's centre).
pub fn activations(
    model: &Model,
    x: &Tensor,
    first: usize,
    objective: &Objective,
    targets: &[i64],
) -> Result<Vec<Vec<Scored>>> {
    let taps: Vec<TapId> = objective.tap().map(|t| t.id).into_iter().collect();
    let outputs = tch::no_grad(|| model.forward(x, &taps))?;
    let rows = x.size()[0];
    let index = Tensor::f_from_slice(targets)?.f_to_device(x.device())?;
    let (values, positions) = match objective {
        Objective::Class(_) => (outputs.scores.f_index_select(1, &index)?, None),
        Objective::Channel(_) | Objective::Neuron(_) => {
            let maps = outputs.taps[0].f_index_select(1, &index)?.f_to_kind(Kind::Float)?;
            unit_values(&maps, matches!(objective, Objective::Neuron(_)))?
        }
        Objective::Layer(_) => bail!("exemplars show classes, channels and neurons, not a layer"),
    };
    let values = host(&values.f_to_kind(Kind::Double)?)?;
    let positions = positions.map(|p| host_i64(&p)).transpose()?;
    let count = targets.len();
    Ok((0..rows as usize)
        .map(|row| {
            (0..count)
                .map(|t| Scored {
                    image: first + row,
                    activation: values[row * count + t],
                    position: positions
                        .as_ref()
                        .map(|p| (p[2 * (row * count + t)], p[2 * (row * count + t) + 1])),
                })
                .collect()
        })
        .collect())
}

/// For maps `[N, T, h, w]`: each channel's mean (or its centre, for a neuron)
/// `[N, T]`, and where each is largest (or the centre) `[N, T, 2]`.
fn unit_values(maps: &Tensor, neuron: bool) -> Result<(Tensor, Option<Tensor>)> {
    let size = maps.size();
    let (n, t, h, w) = (size[0], size[1], size[2], size[3]);
    if neuron {
        let centre = maps.f_select(2, h / 2)?.f_select(2, w / 2)?;
        let at =
            Tensor::f_from_slice(&[h / 2, w / 2])?.f_expand([n, t, 2], false)?.f_contiguous()?;
        return Ok((centre, Some(at)));
    }
    let flat = maps.f_reshape([n, t, h * w])?;
    let best = flat.f_argmax(-1, false)?;
    let at = Tensor::f_stack(&[best.f_div_scalar_mode(w, "floor")?, best.f_remainder(w)?], -1)?;
    Ok((flat.f_mean_dim([-1].as_slice(), false, Kind::Float)?, Some(at)))
}

fn host(t: &Tensor) -> Result<Vec<f64>> {
    Ok(Vec::<f64>::try_from(t.f_to_device(Device::Cpu)?.f_contiguous()?.f_view(-1)?)?)
}

fn host_i64(t: &Tensor) -> Result<Vec<i64>> {
    Ok(Vec::<i64>::try_from(t.f_to_device(Device::Cpu)?.f_contiguous()?.f_view(-1)?)?)
}

/// The receptive field of position `(row, column)` of the model's tap `tap`,
/// in input pixels `(x0, y0, x1, y1)`, end exclusive: the input pixels on
/// which that position's activations (all channels) depend, from the support
/// of their gradient at a slightly noisy mean image. For a convolutional
/// network it is the textbook receptive field clipped to the image; where
/// attention or global pooling mixes positions, it is the whole image.
pub fn receptive_field(
    model: &Model,
    tap: TapId,
    (row, column): (i64, i64),
) -> Result<(u32, u32, u32, u32)> {
    let input = model.input();
    let x = Tensor::f_randn(
        [1, input.channels, input.height, input.width],
        (Kind::Float, model.device()),
    )?
    .f_mul_scalar(1e-2)?;
    let [c, h, w] = model.info.tap_info(tap).grid_shape()?;
    let weights = Tensor::f_zeros([1, c, h, w], (Kind::Float, model.device()))?;
    let _ = weights.f_select(2, row)?.f_select(2, column)?.f_fill_(1.0)?;
    let weights = Weights { scores: None, taps: vec![Some(weights)] };
    let pass = Pass {
        taps: &[tap],
        cotangent: Cotangent::Fixed(&weights),
        wrt: Wrt::Input,
        precision: Precision::Fp32,
    };
    let (_, gradient) = model.network.vjp(&x, pass)?;
    let support =
        gradient.f_abs()?.f_sum_dim_intlist([0, 1].as_slice(), false, Kind::Float)?.f_gt(0.0)?;
    let rows = host_i64(&support.f_any_dim(1, false)?.f_to_kind(Kind::Int64)?)?;
    let columns = host_i64(&support.f_any_dim(0, false)?.f_to_kind(Kind::Int64)?)?;
    let span = |flags: &[i64]| -> Option<(u32, u32)> {
        let first = flags.iter().position(|&f| f != 0)?;
        let last = flags.iter().rposition(|&f| f != 0)?;
        Some((first as u32, last as u32 + 1))
    };
    let ((y0, y1), (x0, x1)) =
        span(&rows).zip(span(&columns)).context("the unit does not depend on the input")?;
    Ok((x0, y0, x1, y1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(image: usize, activation: f64) -> Scored {
        Scored { image, activation, position: None }
    }

    #[test]
    fn the_keeper_holds_the_best_and_worst_with_ties_to_the_earlier_image() {
        let mut keeper = Keeper::new(2, 2);
        for (image, activation) in [(0, 1.0), (1, 3.0), (2, 3.0), (3, -1.0), (4, 2.0), (5, -1.0)] {
            keeper.offer(scored(image, activation));
        }
        let images = |kept: &[Scored]| kept.iter().map(|s| s.image).collect::<Vec<_>>();
        assert_eq!(images(&keeper.best), vec![1, 2], "3.0 twice: the earlier first");
        assert_eq!(images(&keeper.worst), vec![3, 5], "-1.0 twice: the earlier first");
    }

    #[test]
    fn merged_halves_keep_what_one_pass_keeps() {
        let all: Vec<Scored> =
            (0..40).map(|i| scored(i, f64::from((i as u32 * 37) % 11))).collect();
        let mut one = Keeper::new(5, 3);
        all.iter().for_each(|s| one.offer(s.clone()));
        let (mut even, mut odd) = (Keeper::new(5, 3), Keeper::new(5, 3));
        for s in &all {
            if s.image % 2 == 0 {
                even.offer(s.clone())
            } else {
                odd.offer(s.clone())
            }
        }
        even.merge(&odd);
        assert_eq!((even.best, even.worst), (one.best, one.worst));
    }
}
