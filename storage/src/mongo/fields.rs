//! How our ids and times look inside MongoDB documents, as serde `with` modules for the document
//! mappings.
//!
//! - An id or reference of ours that has an ObjectId's shape (all ids [`new_id`] makes) is stored
//!   as an ObjectId, so documents written by mongo-init.js, mongoose or the mongo shell, which use
//!   ObjectIds, fit ours and their indexes; any other string stays a string, so an odd id still
//!   round-trips exactly. Filters must convert the same way ([`id_to_bson`]).
//! - Times (Unix ms in the model) are BSON dates, which the TTL index and the shell understand.
//!   Reading also takes plain numbers, which older documents may hold.
//!
//! [`new_id`]: crate::model::new_id

use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Bson, DateTime};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{Millis, is_id};

/// An id as stored and as compared in filters.
pub(super) fn id_to_bson(id: &str) -> Bson {
    match ObjectId::parse_str(id) {
        Ok(oid) if is_id(id) => Bson::ObjectId(oid),
        _ => Bson::String(id.to_owned()),
    }
}

fn id_from_bson(value: Bson) -> Result<Option<String>, String> {
    match value {
        Bson::ObjectId(oid) => Ok(Some(oid.to_hex())),
        Bson::String(text) => Ok(Some(text)),
        Bson::Null | Bson::Undefined => Ok(None),
        other => Err(format!("expected an ObjectId or a string id, found {other}")),
    }
}

pub(super) fn date(ms: Millis) -> Bson {
    Bson::DateTime(DateTime::from_millis(ms))
}

fn millis_from_bson(value: Bson) -> Result<Option<Millis>, String> {
    match value {
        Bson::DateTime(date) => Ok(Some(date.timestamp_millis())),
        Bson::Int64(ms) => Ok(Some(ms)),
        Bson::Int32(ms) => Ok(Some(ms.into())),
        Bson::Double(ms) if ms.is_finite() => Ok(Some(ms as Millis)),
        Bson::Null | Bson::Undefined => Ok(None),
        other => Err(format!("expected a date, found {other}")),
    }
}

/// A `String` id: ObjectId when it has the shape, else a string.
pub(super) mod id {
    use super::*;

    pub fn serialize<S: Serializer>(id: &str, serializer: S) -> Result<S::Ok, S::Error> {
        id_to_bson(id).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        id_from_bson(Bson::deserialize(deserializer)?)
            .map_err(D::Error::custom)?
            .ok_or_else(|| D::Error::custom("an id is null"))
    }
}

/// An `Option<String>` reference: null when absent.
pub(super) mod optional_id {
    use super::*;

    pub fn serialize<S: Serializer>(id: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
        id.as_deref().map_or(Bson::Null, id_to_bson).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
        id_from_bson(Bson::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}

/// A `Millis` time as a BSON date.
pub(super) mod time {
    use super::*;

    pub fn serialize<S: Serializer>(ms: &Millis, serializer: S) -> Result<S::Ok, S::Error> {
        date(*ms).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Millis, D::Error> {
        millis_from_bson(Bson::deserialize(deserializer)?)
            .map_err(D::Error::custom)?
            .ok_or_else(|| D::Error::custom("a required date is null"))
    }
}

/// An `Option<Millis>` time: null when absent.
pub(super) mod optional_time {
    use super::*;

    pub fn serialize<S: Serializer>(ms: &Option<Millis>, serializer: S) -> Result<S::Ok, S::Error> {
        ms.map_or(Bson::Null, date).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Millis>, D::Error> {
        millis_from_bson(Bson::deserialize(deserializer)?).map_err(D::Error::custom)
    }
}
