//! Serde helpers: floats that may be non-finite, and ordered name → value lists as JSON objects.

/// `f64` fields written with [`obs_core::serialize_f64`] (non-finite as `"NaN"`, `"Infinity"`,
/// `"-Infinity"`) and read back from numbers or those strings.
pub(crate) mod float {
    use obs_core::Value;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        obs_core::serialize_f64(*x, s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let v = Value::deserialize(d)?;
        v.as_f64().ok_or_else(|| D::Error::custom(format!("expected a number, got {v:?}")))
    }

    /// `Option<f64>`: `null` or a float as above.
    pub(crate) mod option {
        use obs_core::Value;
        use serde::de::Error as _;
        use serde::{Deserialize, Deserializer, Serializer};

        pub(crate) fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match x {
                Some(x) => obs_core::serialize_f64(*x, s),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<f64>, D::Error> {
            let v = Value::deserialize(d)?;
            if v.is_null() {
                return Ok(None);
            }
            v.as_f64()
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("expected a number or null, got {v:?}")))
        }
    }
}

/// `Vec<(String, T)>` written as a JSON object in list order, and read back in document order.
pub(crate) mod named {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer, T: Serialize>(
        list: &[(String, T)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(list.len()))?;
        for (k, v) in list {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }

    struct Ordered<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Ordered<T> {
        type Value = Vec<(String, T)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object keyed by name")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(256));
            while let Some((k, v)) = map.next_entry::<String, T>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<(String, T)>, D::Error> {
        d.deserialize_map(Ordered(PhantomData))
    }
}
