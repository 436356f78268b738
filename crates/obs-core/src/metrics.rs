//! [`BatchMetrics`]: the metrics of one `batch_end`, carried without allocation when they are
//! a few floats with static names.

use crate::{Data, Key, Value};

/// Float metrics with static names carried inline; more spill into a [`Data`].
const INLINE: usize = 4;

/// The metrics of one batch, as [`crate::TrainingLogger::on_batch_end`] sends them.
///
/// `batch_end` is the most frequent event of a run. Up to four float metrics whose names are
/// `'static` (a loss and three metrics, named by literals or by kept names) travel inline in
/// the queue message: the training thread allocates nothing, and the map the event needs is
/// allocated and freed by the bus thread alone, which keeps either thread's allocator cache
/// local (frees across threads go through a shared arena lock, which contends at high rates).
/// Anything else (more metrics, owned names, values that are not floats) is kept as a
/// [`Data`], with the same meaning.
///
/// [`BatchMetrics::insert`] has [`Data::insert`]'s semantics: a repeated key replaces the
/// earlier value in place, and insertion order is kept.
///
/// # Examples
/// ```
/// use obs_core::{BatchMetrics, data};
///
/// let mut m = BatchMetrics::new();
/// m.insert("loss", 0.5);
/// m.insert("accuracy", 0.9);
/// m.insert("loss", 0.25);
/// assert_eq!(m.into_data(), data! { "loss" => 0.25, "accuracy" => 0.9 });
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct BatchMetrics(Repr);

#[derive(Clone, Debug, PartialEq)]
enum Repr {
    Inline { len: usize, names: [&'static str; INLINE], values: [f64; INLINE] },
    Spilled(Data),
}

impl Default for BatchMetrics {
    fn default() -> Self {
        BatchMetrics::new()
    }
}

impl BatchMetrics {
    /// No metrics.
    pub const fn new() -> Self {
        BatchMetrics(Repr::Inline { len: 0, names: [""; INLINE], values: [0.0; INLINE] })
    }

    /// Sets `key` to `value`, replacing an earlier value of the same key in place.
    pub fn insert(&mut self, key: impl Into<Key>, value: impl Into<Value>) -> &mut Self {
        let key = key.into();
        let value = value.into();
        if let Repr::Inline { len, names, values } = &mut self.0 {
            if let (Key::Borrowed(name), Value::Float(v)) = (&key, &value) {
                if let Some(i) = names[..*len].iter().position(|n| n == name) {
                    values[i] = *v;
                    return self;
                }
                if *len < INLINE {
                    names[*len] = name;
                    values[*len] = *v;
                    *len += 1;
                    return self;
                }
            }
            self.0 = Repr::Spilled(std::mem::take(self).into_data());
        }
        if let Repr::Spilled(data) = &mut self.0 {
            data.insert(key, value);
        }
        self
    }

    /// Number of metrics.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => *len,
            Repr::Spilled(data) => data.len(),
        }
    }

    /// Whether there are no metrics.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The metrics as a map, in insertion order.
    pub fn into_data(self) -> Data {
        match self.0 {
            Repr::Inline { len, .. } => {
                let mut data = Data::with_capacity(len);
                self.write_into(&mut data);
                data
            }
            Repr::Spilled(data) => data,
        }
    }

    /// Replaces the contents of `data` with the metrics, reusing its room when they are inline.
    pub(crate) fn write_into(self, data: &mut Data) {
        match self.0 {
            Repr::Inline { len, names, values } => {
                data.clear();
                for (name, value) in names.into_iter().zip(values).take(len) {
                    // Names are distinct already: `insert` would only search again.
                    data.push_distinct(Key::Borrowed(name), Value::Float(value));
                }
            }
            Repr::Spilled(spilled) => *data = spilled,
        }
    }
}

impl From<Data> for BatchMetrics {
    /// Keeps `data` inline when it fits (dropping its allocation here, on the caller's
    /// thread), as it is otherwise.
    fn from(data: Data) -> Self {
        let fits = data.len() <= INLINE
            && data
                .entries()
                .iter()
                .all(|(k, v)| matches!((k, v), (Key::Borrowed(_), Value::Float(_))));
        if !fits {
            return BatchMetrics(Repr::Spilled(data));
        }
        let mut m = BatchMetrics::new();
        for (k, v) in data.entries() {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data;

    #[test]
    fn inline_metrics_keep_order_and_replace_in_place() {
        let mut m = BatchMetrics::new();
        assert!(m.is_empty());
        m.insert("a", 1.0).insert("b", 2.0).insert("a", 3.0);
        assert!(matches!(m.0, Repr::Inline { len: 2, .. }));
        assert_eq!(m.len(), 2);
        assert_eq!(m.into_data(), data! { "a" => 3.0, "b" => 2.0 });
    }

    #[test]
    fn more_metrics_owned_names_or_other_values_spill_with_the_same_meaning() {
        let k = |s: &'static str| Key::Borrowed(s);
        let cases: [(&str, Vec<(Key, Value)>); 3] = [
            (
                "five floats and a replacement",
                ["a", "b", "c", "d", "e", "b"]
                    .into_iter()
                    .enumerate()
                    .map(|(i, n)| (k(n), Value::Float(i as f64)))
                    .collect(),
            ),
            (
                "an owned name",
                vec![
                    (k("a"), Value::Float(1.0)),
                    (Key::Owned("b".into()), Value::Float(2.0)),
                    (k("a"), Value::Float(3.0)),
                ],
            ),
            (
                "an integer",
                vec![
                    (k("a"), Value::Float(1.0)),
                    (k("n"), Value::UInt(7)),
                    (k("c"), Value::Float(f64::INFINITY)),
                ],
            ),
        ];
        for (what, inserts) in cases {
            let mut m = BatchMetrics::new();
            let mut reference = Data::new();
            for (key, value) in inserts {
                m.insert(key.clone(), value.clone());
                reference.insert(key, value);
            }
            assert!(matches!(m.0, Repr::Spilled(_)), "{what}");
            assert_eq!(m.len(), reference.len(), "{what}");
            assert_eq!(m.into_data(), reference, "{what}");
        }
    }

    #[test]
    fn writing_into_a_used_map_replaces_its_contents() {
        let mut used = data! { "old" => 1.0, "older" => "x" };
        let mut m = BatchMetrics::new();
        m.insert("loss", 0.5);
        m.write_into(&mut used);
        assert_eq!(used, data! { "loss" => 0.5 });
        let spilled = BatchMetrics::from(data! { "phase" => "warmup" });
        spilled.write_into(&mut used);
        assert_eq!(used, data! { "phase" => "warmup" });
    }

    #[test]
    fn data_converts_inline_only_when_it_fits() {
        let small = data! { "loss" => 0.5, "acc" => 0.9 };
        let m = BatchMetrics::from(small.clone());
        assert!(matches!(m.0, Repr::Inline { len: 2, .. }));
        assert_eq!(m.into_data(), small);
        let owned = data! { "epoch_time" => 1.5 }.with(String::from("x"), 1.0);
        let m = BatchMetrics::from(owned.clone());
        assert!(matches!(m.0, Repr::Spilled(_)));
        assert_eq!(m.into_data(), owned);
        let text = data! { "phase" => "warmup" };
        assert_eq!(BatchMetrics::from(text.clone()).into_data(), text);
    }
}
