//! Admin HTTP server: `/healthz`, `/api/accounts`, `/metrics`.
