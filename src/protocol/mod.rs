//! The WebQQ / SmartQQ client for one account, with no actors in it.

pub mod hash;
