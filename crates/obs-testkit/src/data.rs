//! Classification datasets: synthetic ones generated from a seed, and two small real ones.

use std::sync::OnceLock;

use crate::rng::Rng;

/// Which dataset a run trains on.
///
/// The synthetic datasets have 2-D inputs in roughly `[-1, 1]²` and as many samples as asked for.
/// The real ones are small tables shipped with the crate (`data/*.csv`), with a fixed number of
/// samples and their features standardised to mean 0 and standard deviation 1.
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
    /// Fisher's Iris flowers (1936): 150 samples, 4 measurements, 3 species (two of which
    /// overlap). From the UCI Machine Learning Repository, as shipped by scikit-learn.
    Iris,
    /// Wine recognition (Forina et al., PARVUS): 178 samples, 13 chemical measurements,
    /// 3 cultivars. From the UCI Machine Learning Repository, as shipped by scikit-learn.
    Wine,
}

/// A real dataset parsed from its CSV: standardised features, row-major, and labels.
#[derive(Debug)]
struct Table {
    features: usize,
    x: Vec<f32>,
    y: Vec<usize>,
}

/// Parses scikit-learn's CSV layout: a header `rows,features,class names...`, then one row per
/// sample with the features and the class index last. The files are part of the crate, so a
/// malformed one is a build defect; it still degrades to an empty table rather than a panic.
fn parse_table(csv: &str) -> Table {
    let mut lines = csv.lines();
    let features = lines
        .next()
        .and_then(|h| h.split(',').nth(1))
        .and_then(|f| f.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let (Some((label, values)), true) = (cells.split_last(), cells.len() == features + 1)
        else {
            continue;
        };
        let (Ok(label), Ok(values)) = (
            label.parse::<usize>(),
            values.iter().map(|v| v.parse::<f64>()).collect::<Result<Vec<_>, _>>(),
        ) else {
            continue;
        };
        x.extend(values);
        y.push(label);
    }
    // Standardise each feature: the raw wine features span 0.1 to 1680.
    let rows = y.len();
    let mut out = vec![0.0f32; x.len()];
    for f in 0..features {
        let column = || (0..rows).map(|r| x[r * features + f]);
        let mean = column().sum::<f64>() / rows.max(1) as f64;
        let var = column().map(|v| (v - mean) * (v - mean)).sum::<f64>() / rows.max(1) as f64;
        let std = if var > 0.0 { var.sqrt() } else { 1.0 };
        for r in 0..rows {
            out[r * features + f] = ((x[r * features + f] - mean) / std) as f32;
        }
    }
    Table { features, x: out, y }
}

fn iris() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| parse_table(include_str!("../data/iris.csv")))
}

fn wine() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| parse_table(include_str!("../data/wine.csv")))
}

impl Dataset {
    /// Two spirals with one full turn and a little noise: learnable by a small MLP in a few
    /// hundred steps, but not linearly separable.
    pub const TWO_SPIRALS: Dataset = Dataset::Spirals { classes: 2, turns: 1.0, noise: 0.04 };

    /// Number of classes (at least 2).
    pub fn classes(&self) -> usize {
        match *self {
            Dataset::Spirals { classes, .. } | Dataset::Blobs { classes, .. } => classes.max(2),
            Dataset::Iris | Dataset::Wine => 3,
        }
    }

    /// Number of input features: 2 for the synthetic datasets, 4 for Iris, 13 for Wine.
    pub fn features(&self) -> usize {
        match self.table() {
            Some(t) => t.features,
            None => 2,
        }
    }

    /// How many samples a real dataset has (`None` for the synthetic ones, which have as many
    /// as asked for).
    pub fn sample_count(&self) -> Option<usize> {
        self.table().map(|t| t.y.len())
    }

    /// A real dataset's rows in file order (standardised features, row-major, and class
    /// indices); `None` for the synthetic datasets. For examples and tests that split the table
    /// their own way rather than drawing a seeded sample with [`Dataset::generate`].
    pub fn rows(&self) -> Option<Samples> {
        self.table().map(|t| Samples { x: t.x.clone(), y: t.y.clone() })
    }

    /// The name used in reports: `"spirals"`, `"blobs"`, `"iris"`, `"wine"`.
    pub const fn name(&self) -> &'static str {
        match self {
            Dataset::Spirals { .. } => "spirals",
            Dataset::Blobs { .. } => "blobs",
            Dataset::Iris => "iris",
            Dataset::Wine => "wine",
        }
    }

    fn table(&self) -> Option<&'static Table> {
        match self {
            Dataset::Iris => Some(iris()),
            Dataset::Wine => Some(wine()),
            Dataset::Spirals { .. } | Dataset::Blobs { .. } => None,
        }
    }

    /// `n` labelled samples in a seeded random order: synthetic points balanced over the
    /// classes, or `min(n, len)` rows of a real table.
    pub fn generate(&self, n: usize, rng: &mut Rng) -> Samples {
        if let Some(table) = self.table() {
            let f = table.features;
            let mut order: Vec<usize> = (0..table.y.len()).collect();
            rng.shuffle(&mut order);
            order.truncate(n);
            let mut samples = Samples { x: Vec::with_capacity(order.len() * f), y: Vec::new() };
            for i in order {
                samples.x.extend_from_slice(&table.x[i * f..(i + 1) * f]);
                samples.y.push(table.y[i]);
            }
            return samples;
        }
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
                // Tables returned above.
                Dataset::Iris | Dataset::Wine => (0.0, 0.0),
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

    /// The samples whose index is `rank` modulo `world` (all of them when `world` is 0 or 1;
    /// none when `rank >= world`).
    pub fn shard(&self, rank: usize, world: usize) -> Samples {
        if world <= 1 {
            return self.clone();
        }
        let features = self.x.len().checked_div(self.len()).unwrap_or(0);
        let mut out = Samples::default();
        for i in (rank..self.len()).step_by(world) {
            out.x.extend_from_slice(&self.x[i * features..(i + 1) * features]);
            out.y.push(self.y[i]);
        }
        out
    }
}

/// A train/validation split generated from one seed: both halves come from the same
/// distribution, drawn in one pass and cut after `train` samples. A real dataset with fewer
/// than `train + val` samples gives `min(train, len)` training samples and the rest (at most
/// `val`) for validation.
pub fn split(dataset: &Dataset, train: usize, val: usize, seed: u64) -> (Samples, Samples) {
    let mut rng = Rng::stream(seed, 1);
    let all = dataset.generate(train + val, &mut rng);
    let f = dataset.features();
    let train = train.min(all.len());
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

    #[test]
    fn rows_are_the_table_in_file_order() {
        let rows = Dataset::Iris.rows().unwrap();
        assert_eq!((rows.x.len(), rows.y.len()), (600, 150));
        // The file lists 50 setosa, then 50 versicolor, then 50 virginica.
        assert!(rows.y[..50].iter().all(|&c| c == 0) && rows.y[100..].iter().all(|&c| c == 2));
        assert!(Dataset::TWO_SPIRALS.rows().is_none());
    }

    #[test]
    fn real_tables_parse_whole_and_standardised() {
        for (d, rows, features, per_class) in
            [(Dataset::Iris, 150, 4, [50, 50, 50]), (Dataset::Wine, 178, 13, [59, 71, 48])]
        {
            assert_eq!((d.sample_count(), d.features(), d.classes()), (Some(rows), features, 3));
            let s = d.generate(usize::MAX, &mut Rng::new(3));
            assert_eq!((s.len(), s.x.len()), (rows, rows * features));
            for (c, &n) in per_class.iter().enumerate() {
                assert_eq!(s.y.iter().filter(|&&y| y == c).count(), n, "{d:?}");
            }
            for f in 0..features {
                let col: Vec<f64> =
                    s.x.iter().skip(f).step_by(features).map(|&v| f64::from(v)).collect();
                let mean = col.iter().sum::<f64>() / rows as f64;
                let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
                assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "{d:?} feature {f}");
            }
        }
    }

    #[test]
    fn real_split_caps_at_the_table() {
        let (train, val) = split(&Dataset::Iris, 120, 100, 1);
        assert_eq!((train.len(), val.len()), (120, 30));
        let (train, val) = split(&Dataset::Iris, 500, 10, 1);
        assert_eq!((train.len(), val.len()), (150, 0));
        assert_ne!(split(&Dataset::Iris, 120, 30, 2).0, split(&Dataset::Iris, 120, 30, 1).0);
    }

    #[test]
    fn malformed_tables_skip_bad_rows() {
        let t = parse_table("3,2,a,b\n1,2,0\nx,2,1\n1,2\n\n3,4,1\n");
        assert_eq!((t.features, t.y.clone()), (2, vec![0, 1]));
        assert!(parse_table("").y.is_empty());
    }
}
