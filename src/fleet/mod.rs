//! The fleet: supervised account actors.
