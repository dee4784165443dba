//! Typed events; each `emit()` writes its log line and moves its metrics.
