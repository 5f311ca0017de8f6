//! What an image maximises: a class score (the paper's pre-softmax S_c, or
//! its log-probability or probability), or a unit inside the network read
//! from a tap: one channel's mean activation, one neuron (a channel at the
//! centre), or a whole layer's mean squared activation (DeepDream). Also the
//! similarity of images' Gram matrices, which the facets' diversity penalty lowers.

use std::fmt;

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use classviz_engine::network::{Outputs, TapId, Weights};
use classviz_engine::taps::TapRef;

classviz_records::choice! {
    /// What of a class's score an image maximises.
    pub enum ClassScore {
        default Logit;
        /// S_c, the pre-softmax score (the paper).
        Logit = "logit",
        /// S_c minus the mean of all the scores: raises the class against the
        /// others without softmax's saturation.
        CentredLogit = "centred-logit" | "centered-logit",
        /// log p_c: log-softmax of the scores (pushes away from near neighbours).
        LogProb = "log-prob" | "logprob",
        /// p_c: softmax of the scores.
        Prob = "prob",
    }
}

/// What is maximised, with any tap resolved against the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Objective {
    /// A class's score: S_c (the paper), centred, log p_c or p_c. A
    /// softmax-ended model's outputs are p_c already.
    Class(ClassScore),
    /// The mean activation of a channel of a tap.
    Channel(TapRef),
    /// A channel of a tap at the centre position.
    Neuron(TapRef),
    /// The mean squared activation of a whole tap (DeepDream).
    Layer(TapRef),
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Objective::Class(score) => write!(f, "{score}"),
            Objective::Channel(tap) => write!(f, "channel:{}", tap.name),
            Objective::Neuron(tap) => write!(f, "neuron:{}", tap.name),
            Objective::Layer(tap) => write!(f, "layer:{}", tap.name),
        }
    }
}

impl Default for Objective {
    fn default() -> Self {
        Objective::Class(ClassScore::Logit)
    }
}

impl Objective {
    /// The tap a unit objective reads, `None` for class objectives.
    pub fn tap(&self) -> Option<&TapRef> {
        match self {
            Objective::Channel(tap) | Objective::Neuron(tap) | Objective::Layer(tap) => Some(tap),
            _ => None,
        }
    }

    /// Whether the images are of classes (scored with labels and top-5).
    pub fn is_class(&self) -> bool {
        self.tap().is_none()
    }
}

/// `--facets`' diversity term: `weight` × the mean pairwise similarity of
/// each target's `count` facets' Gram matrices at the model's tap `tap`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diversity {
    pub weight: f64,
    pub count: i64,
    pub tap: TapId,
}

/// What a goal is made of.
pub struct GoalSpec<'a> {
    pub objective: &'a Objective,
    /// Each row's target (a class, or a channel of the objective's tap), `K·N`
    /// of them, view-major.
    pub targets: &'a [i64],
    /// K, the views of each image.
    pub views: i64,
    /// The model's outputs are probabilities already (a softmax-ended model).
    pub probabilities: bool,
    pub diversity: Option<Diversity>,
    pub device: Device,
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
    /// The diversity term, with its tap's position among `taps`.
    diversity: Option<(Diversity, usize)>,
    anchor: Option<Anchor>,
    /// The model's taps to ask for: the objective's first, then the facets'
    /// and the anchor's.
    pub taps: Vec<TapId>,
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
    /// The goal `spec` describes.
    pub fn new(spec: GoalSpec<'_>) -> Result<Goal> {
        let mut goal = Goal {
            objective: spec.objective.clone(),
            targets: Tensor::f_from_slice(spec.targets)?
                .f_to_device(spec.device)?
                .f_view([-1, 1])?,
            views: spec.views,
            probabilities: spec.probabilities,
            diversity: None,
            anchor: None,
            taps: spec.objective.tap().map(|tap| tap.id).into_iter().collect(),
        };
        goal.diversity =
            spec.diversity.map(|diversity| (diversity, goal.tap_position(diversity.tap)));
        Ok(goal)
    }

    /// Where `tap` is among the taps the goal asks for, added if new.
    fn tap_position(&mut self, tap: TapId) -> usize {
        self.taps.iter().position(|&t| t == tap).unwrap_or_else(|| {
            self.taps.push(tap);
            self.taps.len() - 1
        })
    }

    /// Add feature accentuation's penalty at the model's tap `tap`:
    /// `weight` × ‖f(x) − reference‖² per row; the reference is given each
    /// step by [`Goal::set_anchor_reference`].
    pub fn anchor(&mut self, tap: TapId, weight: f64) {
        let tap = self.tap_position(tap);
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
            Objective::Class(score) => {
                class_objective(&outputs.scores, targets, *score, self.probabilities)?
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
        let Some((diversity, tap)) = self.diversity.filter(|(d, _)| d.weight != 0.0) else {
            return Ok(total);
        };
        let activations = &outputs.taps[tap];
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
            Objective::Class(ClassScore::Logit | ClassScore::CentredLogit) => true,
            Objective::Class(ClassScore::Prob) => self.probabilities,
            Objective::Class(ClassScore::LogProb) => false,
            Objective::Channel(_) | Objective::Neuron(_) => true,
            Objective::Layer(_) => false,
        };
        linear_objective
            && self.diversity.is_none_or(|(d, _)| d.weight == 0.0)
            && self.anchor.is_none()
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
            .map_err(classviz_engine::error::torch_error)?
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
    score: ClassScore,
    outputs_probabilities: bool,
) -> Result<Tensor> {
    let outputs = outputs.f_to_kind(Kind::Float)?;
    let per_class = match (score, outputs_probabilities) {
        (ClassScore::LogProb, false) => outputs.f_log_softmax(-1, Kind::Float)?,
        (ClassScore::LogProb, true) => {
            outputs.f_clamp_min(f64::from(f32::MIN_POSITIVE))?.f_log()?
        }
        (ClassScore::Prob, false) => outputs.f_softmax(-1, Kind::Float)?,
        (ClassScore::CentredLogit, _) => {
            outputs.f_sub(&outputs.f_mean_dim([-1].as_slice(), true, Kind::Float)?)?
        }
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

    fn goal(objective: &Objective, targets: &[i64], views: i64) -> Goal {
        let spec = GoalSpec {
            objective,
            targets,
            views,
            probabilities: false,
            diversity: None,
            device: Device::Cpu,
        };
        Goal::new(spec).unwrap()
    }

    fn outputs(scores: &[f32], classes: i64) -> Outputs {
        let rows = scores.len() as i64 / classes;
        Outputs { scores: Tensor::from_slice(scores).view([rows, classes]), taps: Vec::new() }
    }

    #[test]
    fn the_logit_goal_weighs_each_rows_target_over_the_views() {
        let goal = goal(&Objective::default(), &[1, 0, 1, 0], 2);
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
        let goal = goal(&Objective::Class(ClassScore::LogProb), &[0], 1);
        assert!(!goal.is_linear());
        let weights = goal.weights(&outputs(&[0.0, 0.0], 2)).unwrap().scores.unwrap();
        // ∂ log softmax_0 / ∂ s = e_0 − softmax = (0.5, −0.5).
        let weights = Vec::<f32>::try_from(weights.reshape([-1])).unwrap();
        assert!((weights[0] - 0.5).abs() < 1e-6 && (weights[1] + 0.5).abs() < 1e-6, "{weights:?}");
    }

    #[test]
    fn the_centred_logit_weighs_the_target_against_the_mean_of_all_scores() {
        let goal = goal(&Objective::Class(ClassScore::CentredLogit), &[2], 1);
        assert!(goal.is_linear());
        let out = outputs(&[1.0, 2.0, 6.0, -1.0], 4);
        // S_2 − mean(S) = 6 − 2.
        assert_eq!(f64::try_from(goal.total(&out).unwrap()).unwrap(), 4.0);
        let weights = goal.weights(&out).unwrap().scores.unwrap();
        assert_eq!(
            Vec::<f32>::try_from(weights.reshape([-1])).unwrap(),
            vec![-0.25, -0.25, 0.75, -0.25]
        );
    }

    #[test]
    fn a_channel_goal_reads_its_tap() {
        let tap = TapRef { id: TapId::at(3), name: "t".into() };
        let goal = goal(&Objective::Channel(tap), &[1], 1);
        assert_eq!(goal.taps, vec![TapId::at(3)]);
        let tap = Tensor::from_slice(&[1.0f32, 1.0, 2.0, 4.0]).view([1, 2, 1, 2]);
        let out =
            Outputs { scores: Tensor::zeros([1, 2], (Kind::Float, Device::Cpu)), taps: vec![tap] };
        assert_eq!(f64::try_from(goal.per_row(&out).unwrap().get(0)).unwrap(), 3.0);
    }
}
