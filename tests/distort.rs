//! The distorted MNIST generators: determinism, parameter distributions, geometry, shapes.

use stn::data::distort::{
    Distortion, DistortionParams, SOURCE_SIZE, control_points, distort_dataset, distort_one,
    distort_set, elastic,
};
use stn::data::{Dataset, ImageSet};
use stn::geometry::warp::{project, rotate, scaled_corners};
use stn::rng::Rng;

const S: usize = SOURCE_SIZE;

/// A thick, asymmetric "7" inside the central 16×16 pixels (so any rotation keeps it in the
/// frame), with soft edges like MNIST's anti-aliasing. `variant` shifts and thickens it a little
/// so that a set holds different images.
fn digit(variant: usize) -> Vec<u8> {
    let mut img = vec![0u8; S * S];
    let shift = (variant % 3) as f64 - 1.0;
    let thick = 1.6 + (variant % 4) as f64 * 0.2;
    // Distance from pixel centre p to segment a-b.
    let dist = |p: [f64; 2], a: [f64; 2], b: [f64; 2]| {
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let t = (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
        ((p[0] - a[0] - t * dx).powi(2) + (p[1] - a[1] - t * dy).powi(2)).sqrt()
    };
    let strokes = [
        ([8.0 + shift, 8.0], [20.0, 8.0]),          // top bar
        ([20.0, 8.0], [12.0 + shift, 21.0]),        // diagonal
        ([13.0, 14.0], [18.0 + shift / 2.0, 14.0]), // crossbar, off-centre
    ];
    for y in 0..S {
        for x in 0..S {
            let p = [x as f64, y as f64];
            let d = strokes
                .iter()
                .map(|&(a, b)| dist(p, a, b))
                .fold(f64::INFINITY, f64::min);
            let v = (255.0 * (thick + 1.0 - d).clamp(0.0, 1.0)).round();
            img[y * S + x] = v as u8;
        }
    }
    img
}

fn set(n: usize) -> ImageSet {
    ImageSet {
        images: (0..n).flat_map(digit).collect(),
        labels: (0..n).map(|i| (i % 10) as u8).collect(),
        rows: S,
        cols: S,
        channels: 1,
    }
}

fn no_clutter(_: &mut Rng) -> Vec<u8> {
    vec![0; S * S]
}

/// Parameters of `draws` images distorted with one generator.
fn draw(kind: Distortion, draws: usize, seed: u64) -> Vec<DistortionParams> {
    let img = digit(0);
    let clutter = |_: &mut Rng| digit(1);
    let mut rng = Rng::new(seed);
    (0..draws)
        .map(|_| distort_one(kind, &img, &mut rng, &clutter).1)
        .collect()
}

fn std_dev(xs: &[f64]) -> f64 {
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64).sqrt()
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn same_seed_gives_identical_sets_on_any_thread_count() {
    let base = set(50);
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for kind in Distortion::ALL {
        let a = distort_set(kind, &base, 7, "train");
        let b = distort_set(kind, &base, 7, "train");
        let c = single.install(|| distort_set(kind, &base, 7, "train"));
        assert_eq!(a, b, "{kind}: two runs differ");
        assert_eq!(a, c, "{kind}: one thread differs from many");
        let other_seed = distort_set(kind, &base, 8, "train");
        let other_split = distort_set(kind, &base, 7, "test");
        for (what, other) in [("seed", &other_seed), ("split", &other_split)] {
            let differing = (0..base.len())
                .filter(|&i| a.image(i) != other.image(i))
                .count();
            assert!(
                differing >= 45,
                "{kind}: another {what} changed only {differing} of 50 images"
            );
        }
    }
}

#[test]
fn distort_set_matches_distort_one_with_the_documented_stream() {
    let base = set(5);
    for kind in [Distortion::R, Distortion::P, Distortion::E] {
        let out = distort_set(kind, &base, 3, "train");
        for i in 0..base.len() {
            let mut rng = Rng::derive(3, &format!("{}-train-{i}", kind.name()));
            let (img, _) = distort_one(kind, base.image(i), &mut rng, &no_clutter);
            assert_eq!(out.image(i), &img[..], "{kind} image {i}");
        }
    }
}

#[test]
fn r_angles_are_uniform_in_plus_minus_90() {
    let angles: Vec<f64> = draw(Distortion::R, 2000, 1)
        .into_iter()
        .map(|p| match p {
            DistortionParams::Rotation { degrees } => degrees,
            other => panic!("R gave {other:?}"),
        })
        .collect();
    assert!(angles.iter().all(|a| (-90.0..=90.0).contains(a)));
    let min = angles.iter().copied().fold(f64::INFINITY, f64::min);
    let max = angles.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert!(min < -85.0 && max > 85.0, "range {min}..{max}");
    let mut bins = [0usize; 6];
    for a in &angles {
        bins[(((a + 90.0) / 30.0) as usize).min(5)] += 1;
    }
    assert!(
        bins.iter().all(|&b| (250..=420).contains(&b)),
        "histogram {bins:?}"
    );
}

#[test]
fn rts_parameters_cover_their_ranges() {
    let params = draw(Distortion::Rts, 2000, 2);
    let (mut degrees, mut scales, mut offsets) = (vec![], vec![], vec![]);
    for p in params {
        let DistortionParams::Rts {
            degrees: d,
            scale,
            dx,
            dy,
        } = p
        else {
            panic!("RTS gave {p:?}")
        };
        degrees.push(d);
        scales.push(scale);
        offsets.extend([dx, dy]);
    }
    let span = |xs: &[f64]| {
        (
            xs.iter().copied().fold(f64::INFINITY, f64::min),
            xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    };
    let (lo, hi) = span(&degrees);
    assert!(
        (-45.0..-43.0).contains(&lo) && (43.0..=45.0).contains(&hi),
        "{lo}..{hi}"
    );
    let (lo, hi) = span(&scales);
    assert!(
        (0.7..0.71).contains(&lo) && (1.19..=1.2).contains(&hi),
        "{lo}..{hi}"
    );
    assert!(
        offsets
            .iter()
            .all(|o| o.fract() == 0.0 && (0.0..=14.0).contains(o))
    );
    for v in 0..=14 {
        let count = offsets.iter().filter(|&&o| o == v as f64).count();
        // 4000 draws over 15 values: about 267 each.
        assert!(
            (180..=360).contains(&count),
            "offset {v} drawn {count} times"
        );
    }
}

#[test]
fn p_corner_noise_has_sigma_5() {
    let mut noise = vec![];
    for p in draw(Distortion::P, 2000, 3) {
        let DistortionParams::Projective { corners, scale } = p else {
            panic!("P gave {p:?}")
        };
        assert!((0.75..=1.0).contains(&scale), "scale {scale}");
        // The noise moves the image frame's corners (the digit is scaled inside it).
        for (c, b) in corners.iter().zip(scaled_corners(S, 1.0)) {
            noise.extend([c[0] - b[0], c[1] - b[1]]);
        }
    }
    let mean = noise.iter().sum::<f64>() / noise.len() as f64;
    let sd = std_dev(&noise);
    assert!(mean.abs() < 0.2, "mean {mean}");
    assert!((4.5..=5.5).contains(&sd), "std {sd}");
}

#[test]
fn e_offsets_have_sigma_1_5() {
    let mut noise = vec![];
    for p in draw(Distortion::E, 2000, 4) {
        let DistortionParams::Elastic { offsets, scale } = p else {
            panic!("E gave {p:?}")
        };
        assert_eq!(offsets.len(), 16);
        assert!((0.75..=1.0).contains(&scale), "scale {scale}");
        noise.extend(offsets.iter().flatten());
    }
    let sd = std_dev(&noise);
    assert!((1.35..=1.65).contains(&sd), "std {sd}");
}

#[test]
fn tc_positions_cover_0_to_32() {
    let mut seen = [false; 33];
    for p in draw(Distortion::Tc, 2000, 5) {
        let DistortionParams::Cluttered { x, y } = p else {
            panic!("TC gave {p:?}")
        };
        assert!(x <= 32 && y <= 32, "({x}, {y})");
        seen[x] = true;
        seen[y] = true;
    }
    assert!(seen.iter().all(|&s| s), "some positions never drawn");
}

#[test]
fn rotating_back_recovers_the_digit() {
    let img = digit(0);
    let c = (S as f64 - 1.0) / 2.0;
    let interior: Vec<usize> = (0..S * S)
        .filter(|i| ((i % S) as f64 - c).hypot((i / S) as f64 - c) <= 12.0)
        .collect();
    let pick = |im: &[u8]| interior.iter().map(|&i| im[i] as f64).collect::<Vec<_>>();
    let mut rng = Rng::new(6);
    for _ in 0..20 {
        let (out, params) = distort_one(Distortion::R, &img, &mut rng, &no_clutter);
        let DistortionParams::Rotation { degrees } = params else {
            panic!("R gave {params:?}")
        };
        // The output is exactly the documented rotation.
        assert_eq!(out, rotate(&img, S, degrees, 1.0, S, [0, 0]));
        let back = rotate(&out, S, -degrees, 1.0, S, [0, 0]);
        let r = pearson(&pick(&img), &pick(&back));
        assert!(r > 0.9, "{degrees}°: correlation {r}");
        // And it really moved: the rotated digit differs from the original unless the angle is
        // small.
        if degrees.abs() > 30.0 {
            assert!(pearson(&pick(&img), &pick(&out)) < 0.7, "{degrees}°");
        }
    }
}

#[test]
fn rotation_direction_is_counterclockwise_on_screen() {
    // A single bright pixel right of centre moves above centre (smaller row) after +90°.
    let mut img = vec![0u8; S * S];
    img[13 * S + 20] = 255; // (x 20, y 13), centre is (13.5, 13.5)
    let out = rotate(&img, S, 90.0, 1.0, S, [0, 0]);
    let (i, _) = out.iter().enumerate().max_by_key(|&(_, v)| *v).unwrap();
    let (x, y) = (i % S, i / S);
    assert!(y < 10 && (12..=14).contains(&x), "moved to ({x}, {y})");
}

#[test]
fn identity_warps_reproduce_the_input() {
    let img = digit(2);
    assert_eq!(rotate(&img, S, 0.0, 1.0, S, [0, 0]), img);
    let placed = rotate(&img, S, 0.0, 1.0, 42, [5, 11]);
    for y in 0..42 {
        for x in 0..42 {
            let want = if (5..5 + S).contains(&x) && (11..11 + S).contains(&y) {
                img[(y - 11) * S + (x - 5)]
            } else {
                0
            };
            assert_eq!(placed[y * 42 + x], want, "({x}, {y})");
        }
    }
    assert_eq!(project(&img, S, 1.0, &scaled_corners(S, 1.0)).unwrap(), img);
    assert_eq!(
        elastic(&img, S, &vec![[0.0; 2]; control_points(S).len()]).unwrap(),
        img
    );
}

#[test]
fn warps_move_pixels_the_documented_way() {
    let img = digit(0);
    // P: shifting every corner by (+3, -2) is a translation of the image by (+3, -2).
    let corners = scaled_corners(S, 1.0).map(|[x, y]| [x + 3.0, y - 2.0]);
    let out = project(&img, S, 1.0, &corners).unwrap();
    for y in 0..S - 2 {
        for x in 3..S {
            assert_eq!(out[y * S + x], img[(y + 2) * S + x - 3], "P ({x}, {y})");
        }
    }
    // P with scale 0.5 and unmoved corners: shrinks about the centre, so the ink moves inwards.
    let small = project(&img, S, 0.5, &scaled_corners(S, 0.5)).unwrap();
    let ink = |im: &[u8]| im.iter().map(|&v| v as f64).sum::<f64>();
    let ratio = ink(&small) / ink(&img);
    assert!((0.2..0.3).contains(&ratio), "area ratio {ratio}");
    // E: offsets of (+2, +1) everywhere make the spline a translation: output p shows source
    // p + (2, 1).
    let out = elastic(&img, S, &vec![[2.0, 1.0]; 16]).unwrap();
    for y in 0..S - 1 {
        for x in 0..S - 2 {
            assert_eq!(out[y * S + x], img[(y + 1) * S + x + 2], "E ({x}, {y})");
        }
    }
}

#[test]
fn tc_output_contains_the_digit_at_its_position() {
    let img = digit(1);
    let clutter = |_: &mut Rng| digit(2);
    let mut rng = Rng::new(9);
    for _ in 0..50 {
        let (out, params) = distort_one(Distortion::Tc, &img, &mut rng, &clutter);
        let DistortionParams::Cluttered { x, y } = params else {
            panic!("TC gave {params:?}")
        };
        for r in 0..S {
            for c in 0..S {
                assert!(img[r * S + c] <= out[(y + r) * 60 + x + c]);
            }
        }
        // Clutter only ever adds digit strokes: nothing outside the digit exceeds the ink.
        let outside: usize = (0..60 * 60)
            .filter(|&i| {
                let (cx, cy) = (i % 60, i / 60);
                !((x..x + S).contains(&cx) && (y..y + S).contains(&cy))
            })
            .filter(|&i| out[i] > 0)
            .count();
        assert!(outside <= 6 * 36, "{outside} clutter pixels");
    }
}

#[test]
fn tc_clutter_comes_from_other_images() {
    // Image 0 is blank, image 1 is solid. Blank's clutter must come from the solid image, and
    // the solid image's clutter from the blank one, so it adds nothing.
    let base = ImageSet {
        images: [vec![0u8; S * S], vec![255u8; S * S]].concat(),
        labels: vec![0, 1],
        rows: S,
        cols: S,
        channels: 1,
    };
    for seed in 0..20 {
        let out = distort_set(Distortion::Tc, &base, seed, "train");
        let lit = |i: usize| out.image(i).iter().filter(|&&v| v > 0).count();
        assert!(lit(0) >= 36, "seed {seed}: blank image got no clutter");
        assert_eq!(
            lit(1),
            S * S,
            "seed {seed}: solid image got clutter from itself"
        );
    }
}

#[test]
fn sizes_and_labels_are_kept() {
    let base = Dataset {
        train: set(12),
        test: set(7),
    };
    for kind in Distortion::ALL {
        let out = distort_dataset(kind, &base, 11);
        for (got, src) in [(&out.train, &base.train), (&out.test, &base.test)] {
            let side = kind.size();
            assert_eq!((got.rows, got.cols), (side, side), "{kind}");
            assert_eq!(got.images.len(), src.len() * side * side, "{kind}");
            assert_eq!(got.labels, src.labels, "{kind}");
            assert!(
                (0..got.len()).all(|i| got.image(i).iter().any(|&v| v > 0)),
                "{kind}: an image lost all its ink"
            );
        }
        // Train and test use different streams.
        assert_ne!(out.train.image(0), out.test.image(0), "{kind}");
    }
    let sizes: Vec<usize> = Distortion::ALL.iter().map(|d| d.size()).collect();
    assert_eq!(sizes, [28, 42, 28, 28, 60]);
    let names: Vec<&str> = Distortion::ALL.iter().map(|d| d.name()).collect();
    assert_eq!(names, ["r", "rts", "p", "e", "tc"]);
    assert_eq!(Distortion::parse("RTS"), Some(Distortion::Rts));
    assert!(Distortion::ALL.iter().all(|d| !d.describe().is_empty()));
}

/// TC's clutter is added and clipped (deepmind/mnist-cluttered), not max-combined.
#[test]
fn tc_clutter_adds_and_clips() {
    use stn::geometry::warp::paste_add;
    let mut canvas = vec![0u8, 100, 200, 250];
    let src = vec![10u8, 100, 100, 100];
    paste_add(&mut canvas, 2, &src, 2, 2, [0, 0], [0, 0]);
    assert_eq!(canvas, [10, 200, 255, 255]);
}

/// E with zero offsets is the scaling alone; at scale 1, the plain spline warp.
#[test]
fn e_scales_before_the_spline() {
    use stn::data::distort::{elastic, elastic_scaled};
    let img = digit(1);
    let zero = vec![[0.0; 2]; 16];
    assert_eq!(elastic_scaled(&img, S, 1.0, &zero).unwrap(), img);
    let wobble: Vec<[f64; 2]> = (0..16).map(|i| [0.3 * i as f64 - 2.0, 1.0]).collect();
    assert_eq!(
        elastic_scaled(&img, S, 1.0, &wobble).unwrap(),
        elastic(&img, S, &wobble).unwrap()
    );
    let half = elastic_scaled(&img, S, 0.5, &zero).unwrap();
    assert_eq!(half, rotate(&img, S, 0.0, 0.5, S, [0, 0]));
}
