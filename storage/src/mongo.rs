//! The MongoDB backend (placeholder until it lands).

/// Where the MongoDB store connects.
#[derive(Debug, Clone)]
pub struct MongoConfig {
    pub url: String,
    pub database: String,
}

/// MongoDB store.
pub struct MongoStore;
