//! What an image maximises: a class score (the paper's pre-softmax S_c, or
//! its log-probability or probability), or a unit inside the network read
//! from a tap: one channel's mean activation, one neuron (a channel at the
//! centre), or a whole layer's mean squared activation (DeepDream). Also the
//! similarity of images' Gram matrices, which the facets' diversity penalty lowers.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use classviz_engine::network::{Outputs, Weights};

/// `--objective`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Objective {
    /// The class score itself (pre-softmax), as in the paper.
    #[default]
    Logit,
    /// log p_c: log-softmax of the scores, or the log of a softmax-ended model's output.
    LogProb,
    /// p_c: softmax of the scores, or a softmax-ended model's output itself.
    Prob,
    /// The mean activation of a channel of a tap.
    Channel(String),
    /// A channel of a tap at the centre position.
    Neuron(String),
    /// The mean squared activation of a whole tap (DeepDream).
    Layer(String),
}

/// A parsed `--objective`: the objective and, for `channel:TAP:K` and
/// `neuron:TAP:K`, the unit K.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectiveSpec {
    pub objective: Objective,
    pub unit: Option<i64>,
}

impl FromStr for ObjectiveSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let plain = |objective| Ok(ObjectiveSpec { objective, unit: None });
        match text.to_ascii_lowercase().as_str() {
            "logit" => return plain(Objective::Logit),
            "log-prob" | "logprob" => return plain(Objective::LogProb),
            "prob" => return plain(Objective::Prob),
            _ => {}
        }
        let (kind, rest) = text.split_once(':').ok_or_else(|| {
            format!("'{text}' is not logit, log-prob, prob, channel:TAP[:K], neuron:TAP[:K] or layer:TAP")
        })?;
        let (tap, unit) =
            match (kind, rest.rsplit_once(':')) {
                ("layer", _) => (rest, None),
                (_, Some((tap, unit))) => {
                    let unit =
                        unit.trim().parse::<i64>().ok().filter(|u| *u >= 0).ok_or_else(|| {
                            format!("'{unit}' in '{text}' is not a channel number")
                        })?;
                    (tap, Some(unit))
                }
                (_, None) => (rest, None),
            };
        if tap.trim().is_empty() {
            return Err(format!("'{text}' names no tap"));
        }
        let tap = tap.trim().to_string();
        let objective = match kind {
            "channel" => Objective::Channel(tap),
            "neuron" => Objective::Neuron(tap),
            "layer" => Objective::Layer(tap),
            _ => return Err(format!("'{kind}' in '{text}' is not channel, neuron or layer")),
        };
        Ok(ObjectiveSpec { objective, unit })
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Objective::Logit => write!(f, "logit"),
            Objective::LogProb => write!(f, "log-prob"),
            Objective::Prob => write!(f, "prob"),
            Objective::Channel(tap) => write!(f, "channel:{tap}"),
            Objective::Neuron(tap) => write!(f, "neuron:{tap}"),
            Objective::Layer(tap) => write!(f, "layer:{tap}"),
        }
    }
}

impl Objective {
    /// The tap a unit objective reads, `None` for class objectives.
    pub fn tap(&self) -> Option<&str> {
        match self {
            Objective::Channel(tap) | Objective::Neuron(tap) | Objective::Layer(tap) => Some(tap),
            _ => None,
        }
    }

    /// Whether the images are of classes (scored with labels and top-5).
    pub fn is_class(&self) -> bool {
        self.tap().is_none()
    }

    /// An image's file stem for unit `index` of this objective (class
    /// objectives name files by class elsewhere): `<tap>_c<K>`, `<tap>_n<K>`, `<tap>_layer`.
    pub fn unit_stem(&self, index: i64) -> String {
        match self {
            Objective::Channel(tap) => format!("{tap}_c{index}"),
            Objective::Neuron(tap) => format!("{tap}_n{index}"),
            Objective::Layer(tap) => format!("{tap}_layer"),
            _ => index.to_string(),
        }
    }
}

/// `--facets`' diversity term: `weight` × the mean pairwise similarity of
/// each target's `count` facets' Gram matrices at one tap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diversity {
    pub weight: f64,
    pub count: i64,
    /// The tap's position among the taps the goal asks for.
    pub tap: usize,
}

/// What one batch maximises: each row's objective for its target (a class, or
/// a channel of the tap), averaged over the views, less the facets' diversity
/// penalty. Rows are view-major: view k of image i is row k·N + i.
pub struct Goal {
    objective: Objective,
    /// `[K·N, 1]`: each row's class or channel.
    targets: Tensor,
    views: i64,
    /// The model's outputs are probabilities already (a softmax-ended model).
    probabilities: bool,
    diversity: Option<Diversity>,
    anchor: Option<Anchor>,
    /// The model's taps to ask for: the objective's first, then the facets'
    /// and the anchor's.
    pub taps: Vec<usize>,
}

/// Feature accentuation's penalty: `weight` × the mean squared difference of
/// f(T(x)) and f(T(x₀)) over one tap's activations, per image, averaged over
/// the views T (the photo is seen through the
/// same views as the image, so that the features compared are aligned).
struct Anchor {
    /// The tap's position among the taps the goal asks for.
    tap: usize,
    /// f(T(x₀)) `[K·N, C, H, W]`, view-major like the rows; set every step.
    reference: Option<Tensor>,
    weight: f64,
}

impl Goal {
    /// The goal of `objective` for rows whose targets are `targets` (`K·N`
    /// of them, view-major). `objective_tap` is the model's index of the
    /// objective's tap, `diversity_tap` that of the facets' tap.
    pub fn new(
        objective: &Objective,
        targets: &[i64],
        views: i64,
        probabilities: bool,
        objective_tap: Option<usize>,
        diversity: Option<(f64, i64, usize)>,
        device: Device,
    ) -> Result<Goal> {
        let mut taps: Vec<usize> = objective_tap.into_iter().collect();
        let diversity = diversity.map(|(weight, count, model_tap)| {
            let tap = taps.iter().position(|&t| t == model_tap).unwrap_or_else(|| {
                taps.push(model_tap);
                taps.len() - 1
            });
            Diversity { weight, count, tap }
        });
        let targets = Tensor::f_from_slice(targets)?.f_to_device(device)?.f_view([-1, 1])?;
        Ok(Goal {
            objective: objective.clone(),
            targets,
            views,
            probabilities,
            diversity,
            anchor: None,
            taps,
        })
    }

    /// Add feature accentuation's penalty at the model's tap `model_tap`:
    /// `weight` × ‖f(x) − reference‖² per row; the reference is given each
    /// step by [`Goal::set_anchor_reference`].
    pub fn anchor(&mut self, model_tap: usize, weight: f64) {
        let tap = self.taps.iter().position(|&t| t == model_tap).unwrap_or_else(|| {
            self.taps.push(model_tap);
            self.taps.len() - 1
        });
        self.anchor = Some(Anchor { tap, reference: None, weight });
    }

    /// Whether the anchor has a reference from an earlier step.
    pub fn has_anchor_reference(&self) -> bool {
        self.anchor.as_ref().is_some_and(|anchor| anchor.reference.is_some())
    }

    /// The anchor's reference for this step: the photo's activations at the
    /// anchor's tap, seen through this step's views (`[K·N, C, H, W]`).
    pub fn set_anchor_reference(&mut self, reference: Tensor) -> Result<()> {
        let rows = self.rows();
        let anchor = self.anchor.as_mut().context("the goal has no anchor")?;
        if reference.size().first() != Some(&rows) {
            bail!("the anchor's reference has {:?} rows, the batch {rows}", reference.size());
        }
        anchor.reference = Some(reference.f_detach()?);
        Ok(())
    }

    /// Rows of the batch the network sees: images × views.
    pub fn rows(&self) -> i64 {
        self.targets.size()[0]
    }

    /// Each row's objective `[K·N]` for its target.
    pub fn per_row(&self, outputs: &Outputs) -> Result<Tensor> {
        let targets = &self.targets;
        let tap = || {
            outputs
                .taps
                .first()
                .map(|t| t.f_to_kind(Kind::Float))
                .context("the objective's tap is missing")
        };
        Ok(match &self.objective {
            Objective::Logit | Objective::LogProb | Objective::Prob => {
                class_objective(&outputs.scores, targets, &self.objective, self.probabilities)?
            }
            Objective::Channel(_) => tap()??
                .f_mean_dim([2, 3].as_slice(), false, Kind::Float)?
                .f_gather(1, targets, false)?
                .f_view(-1)?,
            Objective::Neuron(_) => {
                let tap = tap()??;
                let size = tap.size();
                tap.f_select(2, size[2] / 2)?
                    .f_select(2, size[3] / 2)?
                    .f_gather(1, targets, false)?
                    .f_view(-1)?
            }
            Objective::Layer(_) => {
                tap()??.f_square()?.f_mean_dim([1, 2, 3].as_slice(), false, Kind::Float)?
            }
        })
    }

    /// The scalar ascended: the rows' sum over the views, less the diversity penalty.
    pub fn total(&self, outputs: &Outputs) -> Result<Tensor> {
        let mut total = self.per_row(outputs)?.f_sum(Kind::Float)?;
        if self.views > 1 {
            total = total.f_div_scalar(self.views as f64)?;
        }
        if let Some(anchor) = &self.anchor {
            let reference = anchor.reference.as_ref().context("the anchor has no reference")?;
            let distance =
                outputs.taps[anchor.tap].f_sub(reference)?.f_square()?.f_sum(Kind::Float)?;
            // The mean over each image's activations, so that W means the same
            // at any tap of any model.
            let per_image = reference.numel() as f64 / self.rows() as f64;
            let weight = anchor.weight / (self.views as f64 * per_image);
            total = total.f_sub(&distance.f_mul_scalar(weight)?)?;
        }
        let Some(diversity) = self.diversity.filter(|d| d.weight != 0.0) else { return Ok(total) };
        let activations = &outputs.taps[diversity.tap];
        let per_view = activations.size()[0] / self.views;
        let mut similarity = Tensor::f_zeros([], (Kind::Float, activations.device()))?;
        for view in 0..self.views {
            let rows = activations.f_narrow(0, view * per_view, per_view)?;
            let groups = gram_similarity(&rows, diversity.count)?;
            similarity = similarity.f_add(&groups.f_sum(Kind::Float)?)?;
        }
        Ok(total.f_sub(&similarity.f_mul_scalar(diversity.weight / self.views as f64)?)?)
    }

    /// Whether the total is linear in the outputs, so that its weights do not
    /// depend on them (a class score or a channel's mean, without facets).
    pub fn is_linear(&self) -> bool {
        let linear_objective = match self.objective {
            Objective::Logit | Objective::Channel(_) | Objective::Neuron(_) => true,
            Objective::LogProb | Objective::Prob => {
                self.probabilities && self.objective == Objective::Prob
            }
            Objective::Layer(_) => false,
        };
        linear_objective && self.diversity.is_none_or(|d| d.weight == 0.0) && self.anchor.is_none()
    }

    /// The weights of the total on the outputs: ∂total/∂outputs, by autograd
    /// on a detached copy.
    pub fn weights(&self, outputs: &Outputs) -> Result<Weights> {
        let scores = outputs.scores.f_detach()?.f_set_requires_grad(true)?;
        let taps: Vec<Tensor> = outputs
            .taps
            .iter()
            .map(|t| t.f_detach()?.f_set_requires_grad(true))
            .collect::<Result<_, _>>()?;
        let copy = Outputs {
            scores: scores.shallow_clone(),
            taps: taps.iter().map(Tensor::shallow_clone).collect(),
        };
        let total = self.total(&copy)?;
        let mut leaves = vec![&scores];
        leaves.extend(taps.iter());
        // An output the total does not use gets no gradient (an undefined
        // tensor): it weighs nothing.
        let mut gradients = Tensor::f_run_backward(&[&total], &leaves, false, false)
            .map_err(classviz_engine::network::torch_error)?
            .into_iter()
            .map(|gradient| gradient.defined().then_some(gradient));
        let scores = gradients.next().flatten();
        Ok(Weights { scores, taps: gradients.collect() })
    }
}

/// A class objective from the scores `[N, classes]` for each image's target
/// class (`targets`, `[N, 1]`): `[N]`. A softmax-ended model's outputs are
/// probabilities already.
fn class_objective(
    outputs: &Tensor,
    targets: &Tensor,
    objective: &Objective,
    outputs_probabilities: bool,
) -> Result<Tensor> {
    let outputs = outputs.f_to_kind(Kind::Float)?;
    let per_class = match (objective, outputs_probabilities) {
        (Objective::LogProb, false) => outputs.f_log_softmax(-1, Kind::Float)?,
        (Objective::LogProb, true) => outputs.f_clamp_min(f64::from(f32::MIN_POSITIVE))?.f_log()?,
        (Objective::Prob, false) => outputs.f_softmax(-1, Kind::Float)?,
        _ => outputs,
    };
    Ok(per_class.f_gather(1, targets, false)?.f_view(-1)?)
}

/// For activations `[G·F, C, H, W]` in G groups of F consecutive images: the
/// mean pairwise cosine similarity of the images' Gram matrices (C × C
/// channel correlations) within each group, `[G]`. 1 means the same style of
/// features, lower means more diverse (Lucid's diversity objective).
pub fn gram_similarity(activations: &Tensor, group: i64) -> Result<Tensor> {
    let size = activations.size();
    let (n, c) = (size[0], size[1]);
    if group < 2 || n % group != 0 {
        bail!("{n} images do not split into groups of {group} facets");
    }
    let flat = activations.f_to_kind(Kind::Float)?.f_reshape([n, c, -1])?;
    let gram = flat.f_matmul(&flat.f_transpose(1, 2)?)?.f_reshape([n, -1])?;
    let unit =
        gram.f_div(&gram.f_norm_scalaropt_dim(2, [1].as_slice(), true)?.f_clamp_min(1e-12)?)?;
    let grouped = unit.f_reshape([n / group, group, -1])?;
    let cosines = grouped.f_matmul(&grouped.f_transpose(1, 2)?)?;
    // Mean over the off-diagonal pairs: (Σ all − Σ diagonal) / (F² − F).
    let total = cosines.f_sum_dim_intlist([1, 2].as_slice(), false, Kind::Float)?;
    let diagonal =
        cosines.f_diagonal(0, 1, 2)?.f_sum_dim_intlist([1].as_slice(), false, Kind::Float)?;
    Ok(total.f_sub(&diagonal)?.f_div_scalar((group * group - group) as f64)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objectives_parse() {
        let parse = |text: &str| text.parse::<ObjectiveSpec>();
        assert_eq!(parse("logit").unwrap().objective, Objective::Logit);
        assert_eq!(parse("LOG-PROB").unwrap().objective, Objective::LogProb);
        assert_eq!(
            parse("channel:_blocks.3:5").unwrap(),
            ObjectiveSpec { objective: Objective::Channel("_blocks.3".into()), unit: Some(5) }
        );
        assert_eq!(
            parse("neuron:features").unwrap(),
            ObjectiveSpec { objective: Objective::Neuron("features".into()), unit: None }
        );
        assert_eq!(parse("layer:a.b").unwrap().objective, Objective::Layer("a.b".into()));
        for bad in ["channel:", "channel:x:-1", "channel:x:y", "pixel:x", "", "dream"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unit_file_stems() {
        assert_eq!(Objective::Channel("_blocks.3".into()).unit_stem(5), "_blocks.3_c5");
        assert_eq!(Objective::Neuron("t".into()).unit_stem(0), "t_n0");
        assert_eq!(Objective::Layer("t".into()).unit_stem(0), "t_layer");
    }

    #[test]
    fn gram_similarity_is_one_for_copies_and_lower_for_different_images() {
        let a = Tensor::randn([1, 4, 5, 5], (Kind::Float, Device::Cpu));
        let copies = Tensor::cat(&[&a, &a, &a], 0);
        let same = gram_similarity(&copies, 3).unwrap().double_value(&[0]);
        assert!((same - 1.0).abs() < 1e-5, "{same}");
        let channels = Tensor::zeros([2, 4, 5, 5], (Kind::Float, Device::Cpu));
        let _ = channels.get(0).get(0).fill_(1.0);
        let _ = channels.get(1).get(1).fill_(1.0);
        let orthogonal = gram_similarity(&channels, 2).unwrap().double_value(&[0]);
        assert!(orthogonal.abs() < 1e-6, "different channels: {orthogonal}");
        assert!(gram_similarity(&copies, 2).is_err());
    }
}

#[cfg(test)]
mod goal_tests {
    use super::*;

    fn outputs(scores: &[f32], classes: i64) -> Outputs {
        let rows = scores.len() as i64 / classes;
        Outputs { scores: Tensor::from_slice(scores).view([rows, classes]), taps: Vec::new() }
    }

    #[test]
    fn the_logit_goal_weighs_each_rows_target_over_the_views() {
        let goal =
            Goal::new(&Objective::Logit, &[1, 0, 1, 0], 2, false, None, None, Device::Cpu).unwrap();
        let out = outputs(&[0.0, 3.0, 5.0, 0.0, 0.0, 1.0, 7.0, 0.0], 2);
        assert_eq!(
            f64::try_from(goal.total(&out).unwrap()).unwrap(),
            (3.0 + 5.0 + 1.0 + 7.0) / 2.0
        );
        assert!(goal.is_linear());
        let weights = goal.weights(&out).unwrap().scores.unwrap();
        assert_eq!(
            Vec::<f32>::try_from(weights.reshape([-1])).unwrap(),
            vec![0.0, 0.5, 0.5, 0.0, 0.0, 0.5, 0.5, 0.0]
        );
    }

    #[test]
    fn log_prob_weights_depend_on_the_scores() {
        let goal = Goal::new(&Objective::LogProb, &[0], 1, false, None, None, Device::Cpu).unwrap();
        assert!(!goal.is_linear());
        let weights = goal.weights(&outputs(&[0.0, 0.0], 2)).unwrap().scores.unwrap();
        // ∂ log softmax_0 / ∂ s = e_0 − softmax = (0.5, −0.5).
        let weights = Vec::<f32>::try_from(weights.reshape([-1])).unwrap();
        assert!((weights[0] - 0.5).abs() < 1e-6 && (weights[1] + 0.5).abs() < 1e-6, "{weights:?}");
    }

    #[test]
    fn a_channel_goal_reads_its_tap() {
        let goal =
            Goal::new(&Objective::Channel("t".into()), &[1], 1, false, Some(3), None, Device::Cpu)
                .unwrap();
        assert_eq!(goal.taps, vec![3]);
        let tap = Tensor::from_slice(&[1.0f32, 1.0, 2.0, 4.0]).view([1, 2, 1, 2]);
        let out =
            Outputs { scores: Tensor::zeros([1, 2], (Kind::Float, Device::Cpu)), taps: vec![tap] };
        assert_eq!(f64::try_from(goal.per_row(&out).unwrap().get(0)).unwrap(), 3.0);
    }
}
