//! What a configured step prints under `nezha run --print-plan`.

use serde::Serialize;

/// A step's settings as resolved, every default filled in, in the order
/// they were set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings(pub toml::Table);

impl Settings {
    pub fn new() -> Settings {
        Settings::default()
    }

    /// Adds `key = value`. A value TOML cannot hold (a `None`) is left out.
    pub fn set(mut self, key: &str, value: impl Serialize) -> Settings {
        if let Ok(v) = toml::Value::try_from(value) {
            self.0.insert(key.to_string(), v);
        }
        self
    }
}
