//! `trait Store` and its sled implementation.
