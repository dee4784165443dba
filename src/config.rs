//! Account files (`accounts/<id>.toml`) and their validation.
