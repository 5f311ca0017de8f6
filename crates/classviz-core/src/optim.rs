//! The optimisers of the ascent: the paper's plain gradient ascent, and Adam.
//! Each turns the gradient of the objective into the step added to the
//! parameters (an ascent: the step points up the gradient).

use anyhow::Result;
use tch::Tensor;

classviz_records::choice! {
    /// `--optimizer`.
    pub enum OptimizerKind {
        /// Plain gradient ascent (the paper): the step is η·gradient.
        Sga = "sga",
        /// Adam (Kingma & Ba 2015; β = 0.9, 0.999).
        Adam = "adam",
    }
}

/// One optimiser's state for one parameter tensor.
pub trait Optimizer {
    /// The step for `gradient` (to be added to the parameters) at learning rate η.
    fn step(&mut self, gradient: &Tensor, learning_rate: f64) -> Result<Tensor>;
}

impl OptimizerKind {
    /// A fresh optimiser for parameters shaped like `like`.
    pub fn start(self, like: &Tensor) -> Result<Box<dyn Optimizer>> {
        Ok(match self {
            OptimizerKind::Sga => Box::new(Sga),
            OptimizerKind::Adam => Box::new(Adam::new(like)?),
        })
    }
}

/// Plain gradient ascent: x ← x + η·g.
pub struct Sga;

impl Optimizer for Sga {
    fn step(&mut self, gradient: &Tensor, learning_rate: f64) -> Result<Tensor> {
        Ok(gradient.f_mul_scalar(learning_rate)?)
    }
}

const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPSILON: f64 = 1e-8;

/// Adam's running moments for one tensor.
pub struct Adam {
    first: Tensor,
    second: Tensor,
    steps: i32,
}

impl Adam {
    pub fn new(like: &Tensor) -> Result<Adam> {
        Ok(Adam { first: like.f_zeros_like()?, second: like.f_zeros_like()?, steps: 0 })
    }
}

impl Optimizer for Adam {
    fn step(&mut self, gradient: &Tensor, learning_rate: f64) -> Result<Tensor> {
        self.steps += 1;
        self.first = self
            .first
            .f_mul_scalar(ADAM_BETA1)?
            .f_add(&gradient.f_mul_scalar(1.0 - ADAM_BETA1)?)?;
        self.second = self
            .second
            .f_mul_scalar(ADAM_BETA2)?
            .f_add(&gradient.f_square()?.f_mul_scalar(1.0 - ADAM_BETA2)?)?;
        let first = self.first.f_div_scalar(1.0 - ADAM_BETA1.powi(self.steps))?;
        let second = self.second.f_div_scalar(1.0 - ADAM_BETA2.powi(self.steps))?;
        Ok(first
            .f_div(&second.f_sqrt()?.f_add_scalar(ADAM_EPSILON)?)?
            .f_mul_scalar(learning_rate)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn adam_first_step_is_lr_times_sign() {
        let mut adam = Adam::new(&Tensor::zeros([3], (Kind::Float, Device::Cpu))).unwrap();
        let step = adam.step(&Tensor::from_slice(&[2.0f32, -0.5, 1e-3]), 0.1).unwrap();
        let step = Vec::<f64>::try_from(step.to_kind(Kind::Double)).unwrap();
        for (s, expected) in step.iter().zip([0.1, -0.1, 0.1]) {
            assert!((s - expected).abs() < 1e-4, "{s} vs {expected}");
        }
    }

    #[test]
    fn sga_scales_the_gradient() {
        let gradient = Tensor::from_slice(&[2.0f32, -0.5]);
        let step = OptimizerKind::Sga.start(&gradient).unwrap().step(&gradient, 0.5).unwrap();
        assert_eq!(Vec::<f32>::try_from(step).unwrap(), vec![1.0, -0.25]);
    }

    #[test]
    fn both_optimisers_climb_a_concave_bowl() {
        // f(x) = −‖x − 3‖²: both reach x = 3 from 0.
        for kind in [OptimizerKind::Sga, OptimizerKind::Adam] {
            let mut x = Tensor::zeros([2], (Kind::Float, Device::Cpu));
            let mut optimiser = kind.start(&x).unwrap();
            for _ in 0..500 {
                let gradient = (&x - 3.0) * -2.0;
                x += optimiser.step(&gradient, 0.05).unwrap();
            }
            let error = f64::try_from((&x - 3.0).abs().max()).unwrap();
            assert!(error < 1e-2, "{kind:?} ended {error} from the optimum");
        }
    }
}
