//! The paper's §3.1 object segmentation from a saliency map: the most salient
//! pixels seed the foreground's colour model and the least salient the
//! background's (Gaussian mixtures, as in GrabCut; Rother et al. 2004), and a
//! graph cut (Boykov & Jolly 2001) labels every pixel, balancing each pixel's
//! colour likelihoods against colour-sensitive smoothness between neighbours.
//! The object's box is that of the mask's largest connected part.

use anyhow::{bail, Result};

use crate::maxflow;
use crate::rng::Rng;

/// Foreground seeds: pixels above this quantile of the map (the paper's 95%).
pub const FOREGROUND_QUANTILE: f64 = 0.95;
/// Background seeds: pixels below this quantile (the paper's 30%).
pub const BACKGROUND_QUANTILE: f64 = 0.30;
/// Gaussians per colour model (GrabCut's five).
const COMPONENTS: usize = 5;
/// EM iterations per colour model.
const EM_STEPS: usize = 10;
/// Weight of the smoothness term between neighbours (GrabCut's γ = 50).
const SMOOTHNESS: f64 = 50.0;
/// Re-fits of the colour models to the cut, then cuts again (GrabCut's iteration).
const REFITS: usize = 2;
/// Ridge on each covariance, in [0,1]² colour units, so none is singular.
const COVARIANCE_RIDGE: f64 = 1e-4;

/// A segmentation: per pixel whether it is the object, and the box
/// `(x0, y0, x1, y1)` (inclusive) of its largest connected part.
#[derive(Debug, Clone, PartialEq)]
pub struct Segmentation {
    pub mask: Vec<bool>,
    pub bbox: Option<(u32, u32, u32, u32)>,
}

/// Segment an RGB image (`rgb`: 3 values in [0,1] per pixel, row-major) of
/// `width × height` from its saliency `map` (one value per pixel).
pub fn segment(rgb: &[[f64; 3]], map: &[f64], width: usize, height: usize) -> Result<Segmentation> {
    if rgb.len() != width * height || map.len() != rgb.len() || rgb.is_empty() {
        bail!("a segmentation needs one colour and one saliency value per pixel");
    }
    let high = quantile(map, FOREGROUND_QUANTILE);
    let low = quantile(map, BACKGROUND_QUANTILE);
    let seeds: Vec<Seed> = map
        .iter()
        .map(|&v| {
            if v >= high && v > low {
                Seed::Object
            } else if v <= low {
                Seed::Background
            } else {
                Seed::Unknown
            }
        })
        .collect();
    let mut labels: Vec<bool> = seeds.iter().map(|s| *s == Seed::Object).collect();
    for _ in 0..=REFITS {
        let object = fit_where(rgb, &labels, true, &seeds)?;
        let background = fit_where(rgb, &labels, false, &seeds)?;
        labels = cut(rgb, &seeds, &object, &background, width, height);
    }
    let bbox = largest_component_box(&labels, width, height);
    Ok(Segmentation { mask: labels, bbox })
}

/// What a pixel's saliency says before the cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seed {
    Object,
    Background,
    Unknown,
}

/// The `q` quantile of `values` (nearest rank).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1)]
}

/// A colour model fitted to the pixels labelled `object` (seeds keep their side).
fn fit_where(rgb: &[[f64; 3]], labels: &[bool], object: bool, seeds: &[Seed]) -> Result<Mixture> {
    let wanted = if object { Seed::Object } else { Seed::Background };
    let mut colours: Vec<[f64; 3]> = rgb
        .iter()
        .zip(labels.iter().zip(seeds))
        .filter(|(_, (&label, &seed))| seed == wanted || (seed == Seed::Unknown && label == object))
        .map(|(c, _)| *c)
        .collect();
    if colours.is_empty() {
        // A flat map gives no seeds of one kind: model that side by every pixel.
        colours = rgb.to_vec();
    }
    Ok(Mixture::fit(&colours))
}

/// The graph cut: source side is the object. A pixel pays −log p(colour | side)
/// for its side, seeds cannot change side, and neighbours of different sides
/// pay γ·exp(−β‖Δcolour‖²)/distance.
fn cut(
    rgb: &[[f64; 3]],
    seeds: &[Seed],
    object: &Mixture,
    background: &Mixture,
    width: usize,
    height: usize,
) -> Vec<bool> {
    let pixels = width * height;
    let (source, sink) = (pixels, pixels + 1);
    let mut network = maxflow::Network::new(pixels + 2);
    let hard = 1e9;
    for (p, colour) in rgb.iter().enumerate() {
        let (to_object, to_background) = match seeds[p] {
            Seed::Object => (hard, 0.0),
            Seed::Background => (0.0, hard),
            Seed::Unknown => (background.cost(colour), object.cost(colour)),
        };
        network.add_edge(source, p, to_object, 0.0);
        network.add_edge(p, sink, to_background, 0.0);
    }
    let beta = contrast(rgb, width, height);
    for y in 0..height {
        for x in 0..width {
            let p = y * width + x;
            for (dx, dy) in [(1i64, 0i64), (0, 1), (1, 1), (-1, 1)] {
                let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                if nx < 0 || nx >= width as i64 || ny >= height as i64 {
                    continue;
                }
                let q = ny as usize * width + nx as usize;
                let distance = ((dx * dx + dy * dy) as f64).sqrt();
                let weight = SMOOTHNESS / distance * (-beta * squared(&rgb[p], &rgb[q])).exp();
                network.add_edge(p, q, weight, weight);
            }
        }
    }
    let (_, object_side) = network.min_cut(source, sink);
    object_side[..pixels].to_vec()
}

/// β = 1 / (2·mean ‖Δcolour‖²) over horizontal and vertical neighbours.
fn contrast(rgb: &[[f64; 3]], width: usize, height: usize) -> f64 {
    let (mut total, mut count) = (0.0, 0usize);
    for y in 0..height {
        for x in 0..width {
            let p = y * width + x;
            if x + 1 < width {
                total += squared(&rgb[p], &rgb[p + 1]);
                count += 1;
            }
            if y + 1 < height {
                total += squared(&rgb[p], &rgb[p + width]);
                count += 1;
            }
        }
    }
    let mean = total / count.max(1) as f64;
    if mean > 0.0 {
        1.0 / (2.0 * mean)
    } else {
        0.0
    }
}

fn squared(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    (0..3).map(|i| (a[i] - b[i]).powi(2)).sum()
}

/// The bounding box (inclusive) of the largest 8-connected part of `mask`.
pub fn largest_component_box(
    mask: &[bool],
    width: usize,
    height: usize,
) -> Option<(u32, u32, u32, u32)> {
    let mut seen = vec![false; mask.len()];
    let mut best: Option<(usize, (usize, usize, usize, usize))> = None;
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        let (mut size, mut bounds) = (0, (usize::MAX, usize::MAX, 0, 0));
        let mut stack = vec![start];
        seen[start] = true;
        while let Some(p) = stack.pop() {
            let (x, y) = (p % width, p / width);
            size += 1;
            bounds = (bounds.0.min(x), bounds.1.min(y), bounds.2.max(x), bounds.3.max(y));
            for (dx, dy) in
                [(-1i64, -1i64), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1)]
            {
                let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                if nx < 0 || ny < 0 || nx >= width as i64 || ny >= height as i64 {
                    continue;
                }
                let q = ny as usize * width + nx as usize;
                if mask[q] && !seen[q] {
                    seen[q] = true;
                    stack.push(q);
                }
            }
        }
        if best.is_none_or(|(s, _)| size > s) {
            best = Some((size, bounds));
        }
    }
    best.map(|(_, (x0, y0, x1, y1))| (x0 as u32, y0 as u32, x1 as u32, y1 as u32))
}

/// A Gaussian mixture over RGB colours with full covariances.
#[derive(Debug, Clone)]
struct Mixture {
    components: Vec<Gaussian>,
}

#[derive(Debug, Clone)]
struct Gaussian {
    weight: f64,
    mean: [f64; 3],
    /// The inverse covariance, and log((2π)^3 · det Σ) / 2.
    precision: [[f64; 3]; 3],
    log_normaliser: f64,
}

impl Mixture {
    /// Fit by EM from a k-means++ start (seeded: the same pixels give the same model).
    fn fit(colours: &[[f64; 3]]) -> Mixture {
        let k = COMPONENTS.min(colours.len()).max(1);
        let mut rng = Rng::new(colours.len() as u64);
        let mut means = vec![colours[rng.below(colours.len())]];
        while means.len() < k {
            let distances: Vec<f64> = colours
                .iter()
                .map(|c| means.iter().map(|m| squared(c, m)).fold(f64::INFINITY, f64::min))
                .collect();
            let total: f64 = distances.iter().sum();
            if total <= 0.0 {
                break;
            }
            let mut pick = rng.unit() * total;
            let index = distances.iter().position(|&d| {
                pick -= d;
                pick <= 0.0
            });
            means.push(colours[index.unwrap_or(colours.len() - 1)]);
        }
        let mut responsibilities: Vec<Vec<f64>> = colours
            .iter()
            .map(|c| {
                let nearest = (0..means.len())
                    .min_by(|&a, &b| squared(c, &means[a]).total_cmp(&squared(c, &means[b])));
                (0..means.len()).map(|j| if Some(j) == nearest { 1.0 } else { 0.0 }).collect()
            })
            .collect();
        let mut mixture = Mixture::maximise(colours, &responsibilities);
        for _ in 0..EM_STEPS {
            responsibilities = colours.iter().map(|c| mixture.posterior(c)).collect();
            mixture = Mixture::maximise(colours, &responsibilities);
        }
        mixture
    }

    /// The M step: weights, means and covariances from the responsibilities.
    fn maximise(colours: &[[f64; 3]], responsibilities: &[Vec<f64>]) -> Mixture {
        let k = responsibilities[0].len();
        let mut components = Vec::with_capacity(k);
        for j in 0..k {
            let mass: f64 = responsibilities.iter().map(|r| r[j]).sum();
            if mass <= 1e-9 {
                continue;
            }
            let mut mean = [0.0; 3];
            for (c, r) in colours.iter().zip(responsibilities) {
                (0..3).for_each(|i| mean[i] += r[j] * c[i] / mass);
            }
            let mut covariance = [[0.0; 3]; 3];
            for (c, r) in colours.iter().zip(responsibilities) {
                for a in 0..3 {
                    for b in 0..3 {
                        covariance[a][b] += r[j] * (c[a] - mean[a]) * (c[b] - mean[b]) / mass;
                    }
                }
            }
            (0..3).for_each(|i| covariance[i][i] += COVARIANCE_RIDGE);
            let (precision, determinant) = invert(&covariance);
            let log_normaliser = 0.5 * (3.0 * (2.0 * std::f64::consts::PI).ln() + determinant.ln());
            components.push(Gaussian {
                weight: mass / colours.len() as f64,
                mean,
                precision,
                log_normaliser,
            });
        }
        Mixture { components }
    }

    /// Each component's log weight·density at `colour`.
    fn log_densities(&self, colour: &[f64; 3]) -> Vec<f64> {
        self.components
            .iter()
            .map(|g| {
                let d = [colour[0] - g.mean[0], colour[1] - g.mean[1], colour[2] - g.mean[2]];
                let mut quadratic = 0.0;
                for a in 0..3 {
                    for b in 0..3 {
                        quadratic += d[a] * g.precision[a][b] * d[b];
                    }
                }
                g.weight.ln() - g.log_normaliser - 0.5 * quadratic
            })
            .collect()
    }

    fn posterior(&self, colour: &[f64; 3]) -> Vec<f64> {
        let logs = self.log_densities(colour);
        let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = logs.iter().map(|l| (l - top).exp()).collect();
        let total: f64 = exps.iter().sum();
        exps.iter().map(|e| e / total).collect()
    }

    /// −log p(colour): the cost of giving a pixel of this colour to this model.
    fn cost(&self, colour: &[f64; 3]) -> f64 {
        let logs = self.log_densities(colour);
        let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        -(top + logs.iter().map(|l| (l - top).exp()).sum::<f64>().ln())
    }
}

/// The inverse and the determinant of a symmetric positive-definite 3×3 matrix.
fn invert(m: &[[f64; 3]; 3]) -> ([[f64; 3]; 3], f64) {
    let cofactor = |r: usize, c: usize| {
        let rows: Vec<usize> = (0..3).filter(|&i| i != r).collect();
        let columns: Vec<usize> = (0..3).filter(|&i| i != c).collect();
        let minor = m[rows[0]][columns[0]] * m[rows[1]][columns[1]]
            - m[rows[0]][columns[1]] * m[rows[1]][columns[0]];
        if (r + c).is_multiple_of(2) {
            minor
        } else {
            -minor
        }
    };
    let determinant: f64 = (0..3).map(|c| m[0][c] * cofactor(0, c)).sum();
    let mut inverse = [[0.0; 3]; 3];
    for (r, row) in inverse.iter_mut().enumerate() {
        for (c, value) in row.iter_mut().enumerate() {
            *value = cofactor(c, r) / determinant;
        }
    }
    (inverse, determinant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_red_square_on_green_is_found_from_a_rough_map() {
        let (width, height) = (40, 30);
        let mut rgb = vec![[0.1, 0.7, 0.2]; width * height];
        let mut map = vec![0.0; width * height];
        let mut rng = Rng::new(2);
        for y in 0..height {
            for x in 0..width {
                let inside = (10..=24).contains(&x) && (8..=20).contains(&y);
                let p = y * width + x;
                let noise = rng.unit() * 0.1;
                if inside {
                    rgb[p] = [0.8 + noise, 0.1, 0.15];
                }
                // The map peaks in the square's middle, blurred and noisy, as saliency is.
                let (dx, dy) = (x as f64 - 17.0, y as f64 - 14.0);
                map[p] = (-(dx * dx + dy * dy) / 30.0).exp() + rng.unit() * 0.05;
            }
        }
        let segmentation = segment(&rgb, &map, width, height).unwrap();
        let truth: Vec<bool> = (0..width * height)
            .map(|p| (10..=24).contains(&(p % width)) && (8..=20).contains(&(p / width)))
            .collect();
        let both = segmentation.mask.iter().zip(&truth).filter(|(a, b)| **a && **b).count();
        let either = segmentation.mask.iter().zip(&truth).filter(|(a, b)| **a || **b).count();
        let iou = both as f64 / either as f64;
        assert!(iou > 0.9, "mask IoU {iou}");
        assert_eq!(segmentation.bbox, Some((10, 8, 24, 20)));
    }

    #[test]
    fn the_largest_part_gives_the_box() {
        let (width, height) = (6, 5);
        let mut mask = vec![false; width * height];
        for (x, y) in [(0, 0), (3, 1), (4, 1), (3, 2), (4, 2), (4, 3)] {
            mask[y * width + x] = true;
        }
        assert_eq!(largest_component_box(&mask, width, height), Some((3, 1, 4, 3)));
        assert_eq!(largest_component_box(&[false; 4], 2, 2), None);
    }

    #[test]
    fn inverses_are_inverses() {
        let m = [[2.0, 0.3, 0.1], [0.3, 1.5, 0.2], [0.1, 0.2, 1.0]];
        let (inverse, determinant) = invert(&m);
        for (r, row) in m.iter().enumerate() {
            for c in 0..3 {
                let product: f64 = row.iter().zip(&inverse).map(|(a, b)| a * b[c]).sum();
                assert!((product - if r == c { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!((determinant - 2.827).abs() < 1e-9, "{determinant}");
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let values: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.95), 95.0);
        assert_eq!(quantile(&values, 0.3), 30.0);
    }
}
