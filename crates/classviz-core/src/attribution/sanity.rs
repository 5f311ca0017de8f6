//! Sanity checks for saliency maps (Adebayo et al. 2018, "Sanity Checks for
//! Saliency Maps"): how alike two maps are, by the Spearman rank correlation
//! of their pixels and by their structural similarity (SSIM; Wang et al.
//! 2004). A method whose map barely changes when the network's top layers are
//! re-initialised shows the image, not what the network learned.

/// A map counts as unchanged by randomisation at or above this Spearman ρ.
pub const FLAG_SPEARMAN: f64 = 0.5;
/// SSIM's Gaussian window: σ and radius in pixels (Wang et al.: 1.5 and 5).
const SSIM_SIGMA: f64 = 1.5;
const SSIM_RADIUS: i64 = 5;
/// SSIM's stabilisers for maps scaled to [0, 1]: (0.01·L)² and (0.03·L)².
const SSIM_C1: f64 = 1e-4;
const SSIM_C2: f64 = 9e-4;

/// The ranks of `values` (1-based; ties share their mean rank).
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let shared = (start + end + 1) as f64 / 2.0;
        order[start..end].iter().for_each(|&i| ranks[i] = shared);
        start = end;
    }
    ranks
}

/// Pearson's correlation; 0 where either side is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    if va <= 0.0 || vb <= 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

/// Spearman's rank correlation of two maps.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&ranks(a), &ranks(b))
}

/// Each map scaled to [0, 1] by its own minimum and maximum.
pub fn unit_range(values: &[f64]) -> Vec<f64> {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let range = high - low;
    values.iter().map(|v| if range > 0.0 { (v - low) / range } else { 0.0 }).collect()
}

/// The mean structural similarity of two `width × height` maps, each scaled to
/// [0, 1] first, with an 11×11 Gaussian window (σ 1.5) clipped at the edges.
pub fn ssim(a: &[f64], b: &[f64], width: usize, height: usize) -> f64 {
    let (a, b) = (unit_range(a), unit_range(b));
    let product = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(p, q)| p * q).collect::<Vec<_>>();
    let window = |values: &[f64]| gaussian_filter(values, width, height);
    let (mu_a, mu_b) = (window(&a), window(&b));
    let (aa, bb, ab) =
        (window(&product(&a, &a)), window(&product(&b, &b)), window(&product(&a, &b)));
    let mut total = 0.0;
    for i in 0..a.len() {
        let (ma, mb) = (mu_a[i], mu_b[i]);
        let (va, vb, cov) = (aa[i] - ma * ma, bb[i] - mb * mb, ab[i] - ma * mb);
        total += ((2.0 * ma * mb + SSIM_C1) * (2.0 * cov + SSIM_C2))
            / ((ma * ma + mb * mb + SSIM_C1) * (va + vb + SSIM_C2));
    }
    total / a.len() as f64
}

/// A separable Gaussian average of a map, renormalised where the window leaves the map.
fn gaussian_filter(values: &[f64], width: usize, height: usize) -> Vec<f64> {
    let taps: Vec<f64> = (-SSIM_RADIUS..=SSIM_RADIUS)
        .map(|i| (-((i * i) as f64) / (2.0 * SSIM_SIGMA * SSIM_SIGMA)).exp())
        .collect();
    let pass = |input: &[f64], horizontal: bool| -> Vec<f64> {
        let mut out = vec![0.0; input.len()];
        for y in 0..height {
            for x in 0..width {
                let (mut sum, mut weight) = (0.0, 0.0);
                for (k, tap) in taps.iter().enumerate() {
                    let offset = k as i64 - SSIM_RADIUS;
                    let (nx, ny) = if horizontal {
                        (x as i64 + offset, y as i64)
                    } else {
                        (x as i64, y as i64 + offset)
                    };
                    if nx < 0 || ny < 0 || nx >= width as i64 || ny >= height as i64 {
                        continue;
                    }
                    sum += tap * input[ny as usize * width + nx as usize];
                    weight += tap;
                }
                out[y * width + x] = sum / weight;
            }
        }
        out
    };
    pass(&pass(values, true), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_share_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn spearman_sees_monotone_relations_and_their_reverse() {
        let a: Vec<f64> = (0..50).map(f64::from).collect();
        let cubed: Vec<f64> = a.iter().map(|x| x.powi(3)).collect();
        let reversed: Vec<f64> = a.iter().rev().copied().collect();
        assert!((spearman(&a, &cubed) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &reversed) + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&a, &vec![1.0; 50]), 0.0, "a constant map correlates with nothing");
    }

    #[test]
    fn ssim_is_one_for_equal_maps_and_low_for_unrelated_ones() {
        let (width, height) = (24, 16);
        let smooth: Vec<f64> =
            (0..width * height).map(|p| ((p % width) as f64 / 5.0).sin()).collect();
        assert!((ssim(&smooth, &smooth, width, height) - 1.0).abs() < 1e-9);
        let scaled: Vec<f64> = smooth.iter().map(|v| 3.0 * v + 1.0).collect();
        assert!((ssim(&smooth, &scaled, width, height) - 1.0).abs() < 1e-9, "scaling is undone");
        let mut rng = crate::rng::Rng::new(4);
        let noise: Vec<f64> = (0..width * height).map(|_| rng.unit()).collect();
        let unrelated = ssim(&smooth, &noise, width, height);
        assert!(unrelated < 0.2, "{unrelated}");
    }
}
