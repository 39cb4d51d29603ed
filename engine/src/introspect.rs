//! Read the field names of a serde struct without a value, so "unknown param" errors can say
//! "did you mean" and `lulc` can list a kind's params. Serde's derived `Deserialize` passes its
//! field list to `deserialize_struct`; this deserializer records it and stops.

use serde::de::{self, Deserialize, Deserializer, Visitor};

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("introspection stop")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Stop {
        Stop
    }
}

struct Recorder<'a>(&'a mut Vec<&'static str>);

impl<'de> Deserializer<'de> for Recorder<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0.extend_from_slice(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Field names of `T` if it is a struct, else empty.
pub fn struct_fields<'de, T: Deserialize<'de>>() -> Vec<&'static str> {
    let mut fields = Vec::new();
    let _ = T::deserialize(Recorder(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct P {
        ed: f64,
        sad: f64,
    }

    #[test]
    fn reads_fields() {
        assert_eq!(struct_fields::<P>(), vec!["ed", "sad"]);
        assert!(struct_fields::<u32>().is_empty());
    }
}
