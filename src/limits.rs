//! Governor limiters with named quotas.
