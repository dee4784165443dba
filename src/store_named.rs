//! [`NamedTree`]: a tree of the store for a layer above the fleet (OneBot ids and event
//! queue), and [`TreeSource`], what it opens its tree from (a child module of `store.rs`).

use std::sync::Arc;

use super::{SledStore, StoreError};

/// What a [`NamedTree`] opens its tree from: the store (reopened after a disk fault), or a
/// plain sled database (unit tests of the layers above).
pub trait TreeSource: Send + Sync {
    fn open_named(&self, name: &str) -> Result<sled::Tree, StoreError>;
}

impl TreeSource for SledStore {
    fn open_named(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.open_tree(name)
    }
}

impl TreeSource for sled::Db {
    fn open_named(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.open_tree(name)?)
    }
}

/// A tree of the store for a layer above the fleet (OneBot ids and event queue), looked up
/// on every use rather than held. A held `sled::Tree` keeps its database open: after a disk
/// fault the store reopens its database, and a long-lived handle would keep writing to the
/// old one (and keep its file open) for as long as the account's bot lives. The lookup is a
/// read-locked map access in sled.
#[derive(Clone)]
pub struct NamedTree {
    src: Arc<dyn TreeSource>,
    name: &'static str,
}

impl NamedTree {
    pub fn new(src: Arc<dyn TreeSource>, name: &'static str) -> NamedTree {
        NamedTree { src, name }
    }

    /// The tree now (of the database the store has open now).
    pub fn get(&self) -> Result<sled::Tree, StoreError> {
        self.src.open_named(self.name)
    }
}
