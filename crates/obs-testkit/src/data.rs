//! Synthetic classification datasets generated from a seed.

use crate::rng::Rng;

/// Which synthetic dataset a run trains on. Inputs are 2-D points in roughly `[-1, 1]²`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dataset {
    /// Interleaved spiral arms, one per class (two classes give the classic two spirals).
    Spirals {
        /// Number of classes (arms); values below 2 are treated as 2.
        classes: usize,
        /// Full turns each arm makes.
        turns: f32,
        /// Standard deviation of the Gaussian noise added to each coordinate.
        noise: f32,
    },
    /// Gaussian blobs with centres evenly spaced on a circle of radius 0.7.
    Blobs {
        /// Number of classes (blobs); values below 2 are treated as 2.
        classes: usize,
        /// Standard deviation of each blob.
        spread: f32,
    },
}

impl Dataset {
    /// Two spirals with one full turn and a little noise: learnable by a small MLP in a few
    /// hundred steps, but not linearly separable.
    pub const TWO_SPIRALS: Dataset = Dataset::Spirals { classes: 2, turns: 1.0, noise: 0.04 };

    /// Number of classes (at least 2).
    pub fn classes(&self) -> usize {
        match *self {
            Dataset::Spirals { classes, .. } | Dataset::Blobs { classes, .. } => classes.max(2),
        }
    }

    /// Number of input features (always 2).
    pub const fn features(&self) -> usize {
        2
    }

    /// `n` labelled points, balanced over the classes, in a seeded random order.
    pub fn generate(&self, n: usize, rng: &mut Rng) -> Samples {
        let k = self.classes();
        let mut x = Vec::with_capacity(n * 2);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let class = i % k;
            let (px, py) = match *self {
                Dataset::Spirals { turns, noise, .. } => {
                    // Radius grows from 0.1 to 1 along the arm; arms are rotated copies.
                    let t = rng.uniform();
                    let r = 0.1 + 0.9 * t;
                    let angle = std::f32::consts::TAU * (turns * t + class as f32 / k as f32);
                    (r * angle.cos() + noise * rng.normal(), r * angle.sin() + noise * rng.normal())
                }
                Dataset::Blobs { spread, .. } => {
                    let angle = std::f32::consts::TAU * class as f32 / k as f32;
                    (
                        0.7 * angle.cos() + spread * rng.normal(),
                        0.7 * angle.sin() + spread * rng.normal(),
                    )
                }
            };
            x.push(px);
            x.push(py);
            y.push(class);
        }
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        let mut samples = Samples { x: Vec::with_capacity(n * 2), y: Vec::with_capacity(n) };
        for i in order {
            samples.x.extend_from_slice(&x[i * 2..i * 2 + 2]);
            samples.y.push(y[i]);
        }
        samples
    }
}

/// Labelled samples: `x` is row-major `[len, features]`, `y` holds class indices.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Samples {
    /// Inputs, row-major.
    pub x: Vec<f32>,
    /// Class labels.
    pub y: Vec<usize>,
}

impl Samples {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// A train/validation split generated from one seed: both halves come from the same
/// distribution, drawn in one pass and cut after `train` samples.
pub fn split(dataset: &Dataset, train: usize, val: usize, seed: u64) -> (Samples, Samples) {
    let mut rng = Rng::stream(seed, 1);
    let all = dataset.generate(train + val, &mut rng);
    let f = dataset.features();
    let (xt, xv) = all.x.split_at(train * f);
    let (yt, yv) = all.y.split_at(train);
    (Samples { x: xt.to_vec(), y: yt.to_vec() }, Samples { x: xv.to_vec(), y: yv.to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spirals_are_balanced_bounded_and_seeded() {
        let (train, val) = split(&Dataset::TWO_SPIRALS, 100, 50, 9);
        assert_eq!((train.len(), val.len()), (100, 50));
        assert_eq!(train.x.len(), 200);
        let ones = train.y.iter().chain(&val.y).filter(|&&c| c == 1).count();
        assert_eq!(ones, 75);
        assert!(train.x.iter().all(|v| v.is_finite() && v.abs() < 1.5));
        assert_eq!(split(&Dataset::TWO_SPIRALS, 100, 50, 9), (train.clone(), val));
        assert_ne!(split(&Dataset::TWO_SPIRALS, 100, 50, 10).0, train);
    }

    #[test]
    fn blobs_cluster_around_their_centres() {
        let d = Dataset::Blobs { classes: 4, spread: 0.05 };
        let s = d.generate(400, &mut Rng::new(1));
        for (p, &c) in s.x.chunks(2).zip(&s.y) {
            let a = std::f32::consts::TAU * c as f32 / 4.0;
            let dist = ((p[0] - 0.7 * a.cos()).powi(2) + (p[1] - 0.7 * a.sin()).powi(2)).sqrt();
            assert!(dist < 0.4, "class {c} point {p:?}");
        }
        assert_eq!(Dataset::Blobs { classes: 0, spread: 0.1 }.classes(), 2);
    }
}
