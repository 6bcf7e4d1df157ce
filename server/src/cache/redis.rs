//! placeholder
pub struct RedisCache;
