//! The paper's MNIST addition experiment (Jaderberg et al. 2015, appendix A): two RTS-distorted
//! digits, each in its own 42x42 channel, labelled with their sum (19 classes), learnt by an
//! FCN, a CNN, an ST-FCN (one transformer seeing both channels) and a 2xST-FCN (two
//! transformers, each seeing both channels, their 2-channel outputs concatenated into 4
//! channels for the FCN), all of about the same parameter count.
//!
//! The cells are trained, sharded and collected as Table 1's are ([`super::grid`]); this module
//! holds what differs: the models, the recipe per budget and the paper's numbers.
//!
//! Where the paper is silent, we choose (and RESULTS.md says so):
//! - the parameter count every model is matched to: the 2xST-FCN affine's with a classifier of
//!   two hidden layers of [`TWO_ST_HIDDEN`] units. Two of the ST-FCN's localization networks
//!   (fc 32 -> fc 32 -> fc 32 -> parameters on the 2x42x42 input) already hold 230k
//!   parameters, so no model here is as small as Table 1's;
//! - the transformers' output at half resolution (21x21 per channel), as for RTS in Table 1;
//! - the recipe: Table 1's (SGD 0.01, momentum 0.9, batch 256) but with the localization
//!   networks at the full rate (see [`recipe`]), and new pairs drawn every epoch.

use super::table1::{Budget, Entry, Family, GridData, matched_up_to, paper_recipe, paper_schedule};
use stn::data::addition::{CHANNELS, CLASSES, SIZE};
use stn::data::distort::Distortion;
use stn::model::{Arch, ModelConfig};
use stn::run::TrainConfig;
use stn::transformer::TransformKind;

/// The budgets of the addition experiment: the tutorial's network has no place in it.
pub const BUDGETS: [Budget; 3] = [Budget::Cpu, Budget::Paper, Budget::Smoke];

/// The row whose network draws the picture of transformed test pairs.
pub const PICTURE_ROW: &str = "2xST-FCN affine";

/// Hidden units of the 2xST-FCN affine's classifier, which sets every model's parameter count.
pub const TWO_ST_HIDDEN: usize = 64;

/// Widest second convolution tried when matching the CNN's parameter count.
const WIDEST_CNN: usize = 128;

/// Epochs of the `cpu` budget and the epoch after which the rate drops.
pub const CPU_EPOCHS: (usize, usize) = (60, 40);

/// The paper's MNIST addition test errors (%), by row label.
pub fn paper_error(label: &str) -> Option<f64> {
    Some(match label {
        "FCN" => 47.7,
        "CNN" => 14.7,
        "ST-FCN affine" => 22.6,
        "2xST-FCN affine" => 9.0,
        "2xST-FCN projective" => 5.9,
        "2xST-FCN TPS" => 5.8,
        _ => return None,
    })
}

/// The training recipe at `budget` (one of [`BUDGETS`]).
///
/// # Panics
/// For a budget not in [`BUDGETS`].
pub fn recipe(budget: Budget) -> TrainConfig {
    // The localization networks learn at the full rate here: at Table 1's tenth, the
    // 2xST-FCN affine was at 12% test accuracy after 15 epochs, at the full rate 37%
    // (0.05 with a tenth: 39%; 0.05 at the full rate diverged). RESULTS.md has the probe.
    let paper = |epochs, lr_step| paper_recipe(epochs, lr_step, 1.0);
    match budget {
        Budget::Cpu => paper(CPU_EPOCHS.0, CPU_EPOCHS.1),
        Budget::Smoke => paper(1, 1),
        // Table 1's schedule: the paper gives none of its own for this experiment.
        Budget::Paper => {
            let (epochs, lr_step) = paper_schedule();
            paper(epochs, lr_step)
        }
        Budget::Quick | Budget::Full => {
            panic!("the addition experiment has no {} budget", budget.name())
        }
    }
}

/// A network for the addition pairs: 2x42x42 in, 19 classes out, `transformers` transformers
/// of `transform` (sampling at 21x21) in front.
fn network(transform: Option<TransformKind>, transformers: usize) -> ModelConfig {
    ModelConfig::new(
        [SIZE, SIZE],
        transform,
        transform.and(Distortion::Rts.st_size()),
        false,
    )
    .with_channels(CHANNELS)
    .with_classes(CLASSES)
    .with_transformers(transformers)
}

/// The parameter count every model of the experiment is matched to.
pub fn target_parameters() -> usize {
    network(Some(TransformKind::Affine), 2)
        .with_arch(Arch::Fcn {
            hidden: TWO_ST_HIDDEN,
        })
        .parameter_count()
}

/// The models of the experiment at `budget`, each with every seed from `seed` on: FCN, CNN,
/// ST-FCN affine, and 2xST-FCN affine, projective and TPS (4x4 grid), each as wide as keeps its
/// parameter count nearest to [`target_parameters`].
pub fn plan(budget: Budget, seed: u64) -> Vec<Entry> {
    let target = target_parameters();
    let fit = |m, family| matched_up_to(m, target, family, WIDEST_CNN);
    let rows: Vec<(&'static str, ModelConfig)> = vec![
        ("FCN", fit(network(None, 1), Family::Fcn)),
        ("CNN", fit(network(None, 1), Family::Cnn)),
        (
            "ST-FCN affine",
            fit(network(Some(TransformKind::Affine), 1), Family::Fcn),
        ),
        (
            "2xST-FCN affine",
            fit(network(Some(TransformKind::Affine), 2), Family::Fcn),
        ),
        (
            "2xST-FCN projective",
            fit(network(Some(TransformKind::Projective), 2), Family::Fcn),
        ),
        (
            "2xST-FCN TPS",
            fit(
                network(Some(TransformKind::Tps { grid: 4 }), 2),
                Family::Fcn,
            ),
        ),
    ];
    let mut out = Vec::new();
    for s in 0..budget.seeds() as u64 {
        for (label, model) in &rows {
            out.push(Entry {
                dataset: GridData::Addition,
                label,
                model: model.clone(),
                seed: seed + s,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six models per seed, every one valid, of about the same parameter count, and each the
    /// family its label names.
    #[test]
    fn models_are_matched_and_named() {
        let target = target_parameters();
        let plan = plan(Budget::Cpu, 1);
        assert_eq!(plan.len(), 6);
        for e in &plan {
            assert!(e.model.validate().is_ok(), "{e:?}");
            let n = e.model.parameter_count();
            let ratio = n as f64 / target as f64;
            eprintln!("{:<20} {n:>7} parameters {:?}", e.label, e.model.arch);
            assert!(
                (0.97..=1.03).contains(&ratio),
                "{}: {n} vs {target}",
                e.label
            );
            assert_eq!((e.model.channels, e.model.classes), (2, 19));
            assert!(paper_error(e.label).is_some());
        }
        let families: Vec<String> = plan.iter().map(|e| e.family()).collect();
        assert_eq!(
            families,
            ["fcn", "cnn", "st-fcn", "2xst-fcn", "2xst-fcn", "2xst-fcn"]
        );
        assert_eq!(self::plan(Budget::Paper, 1).len(), 18);
    }

    /// Every budget trains the localization networks at the full rate; the paper budget on
    /// Table 1's paper schedule.
    #[test]
    fn recipes_share_the_localization_rate() {
        for b in BUDGETS {
            assert_eq!(recipe(b).sgd.loc_lr_scale, 1.0, "{}", b.name());
            assert_eq!(recipe(b).batch_size, 256);
        }
        let paper = recipe(Budget::Paper);
        assert_eq!((paper.epochs, paper.lr_step), (639, Some(213)));
        assert_eq!(
            (recipe(Budget::Cpu).epochs, recipe(Budget::Cpu).lr_step),
            (60, Some(40))
        );
    }
}
