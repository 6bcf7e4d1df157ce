//! placeholder
pub struct MemoryCache;
