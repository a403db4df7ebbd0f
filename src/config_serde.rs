//! Feature `serde`: every config (de)serializes as a map of its Kafka settings, the same
//! `(key, value)` pairs as `to_pairs` and `from_pairs`, so a config file in any serde format
//! (TOML, YAML, JSON) uses Kafka's names. Values may be strings, numbers or booleans; keys and
//! values are checked as `from_pairs` checks them, and a bad one is a deserialization error
//! naming it. Settings that are not Kafka's (a clock, a partitioner) are not serialized.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::config::{ConsumerConfig, LogConfig, StoreOptions, TopicConfig};

/// A setting's value as a serde format gives it, as the text `from_pairs` parses.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// Reads a map of settings as pairs.
fn pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct PairsVisitor;
    impl<'de> Visitor<'de> for PairsVisitor {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of Kafka settings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((key, Scalar(value))) = map.next_entry::<String, Scalar>()? {
                out.push((key, value));
            }
            Ok(out)
        }
    }
    d.deserialize_map(PairsVisitor)
}

fn serialize_pairs<S: Serializer>(
    pairs: &[(&'static str, String)],
    s: S,
) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(pairs.len()))?;
    for (key, value) in pairs {
        map.serialize_entry(key, value)?;
    }
    map.end()
}

impl Serialize for LogConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_pairs(&self.to_pairs(), s)
    }
}

impl<'de> Deserialize<'de> for LogConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LogConfig::from_pairs(pairs(d)?).map_err(de::Error::custom)
    }
}

impl Serialize for ConsumerConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_pairs(&self.to_pairs(), s)
    }
}

impl<'de> Deserialize<'de> for ConsumerConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ConsumerConfig::from_pairs(pairs(d)?).map_err(de::Error::custom)
    }
}

/// Deserializes from a broker-style map (see [`StoreOptions::from_pairs`]); the partitioner,
/// recovery options and clock are the defaults.
impl<'de> Deserialize<'de> for StoreOptions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        StoreOptions::from_pairs(pairs(d)?).map_err(de::Error::custom)
    }
}

/// `partitions` plus the log settings, in one map.
impl Serialize for TopicConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut pairs = vec![("partitions", self.partitions().to_string())];
        pairs.extend(self.log().to_pairs());
        serialize_pairs(&pairs, s)
    }
}

impl<'de> Deserialize<'de> for TopicConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut all = pairs(d)?;
        let at = all
            .iter()
            .position(|(k, _)| k == "partitions")
            .ok_or_else(|| de::Error::missing_field("partitions"))?;
        let (_, count) = all.remove(at);
        let partitions = count
            .parse::<u32>()
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| {
                de::Error::custom(format!("invalid partitions {count:?}: must be 1 or more"))
            })?;
        TopicConfig::from_pairs(partitions, all).map_err(de::Error::custom)
    }
}
