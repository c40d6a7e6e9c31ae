//! # ringtape strategies
//!
//! Stage: the strategy shards. Each strategy here is a per-symbol state machine implementing
//! [`engine::strategy::Strategy`]: it consumes that symbol's bars, quotes and order updates and
//! emits order intents through its [`engine::strategy::Ctx`]. It never does I/O, never reads a
//! clock, never allocates per event and never talks to a broker.
//!
//! - [`indicators`]: the shared incremental indicator library (SMA, EMA, VWAP, RSI, ATR, rolling
//!   high/low, Bollinger, MACD), each checked against a full recompute.
//! - [`sma_cross`]: the reference strategy (exact fixed-point crossover), the yardstick for
//!   correctness and speed.
//! - [`orb`]: an opening-range breakout day-trading strategy with a stop, a target and an
//!   end-of-day exit.
//!
//! ```
//! use engine::strategy::StrategyFactory;
//! let f = strategies::factory("sma_cross").unwrap();
//! assert_eq!(f.name(), "sma_cross");
//! let _per_symbol = f.build("AAPL");
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod indicators;
pub mod orb;
pub mod sma_cross;

use engine::strategy::StrategyFactory;

/// Names of the built-in strategies.
pub const NAMES: &[&str] = &["sma_cross", "orb"];

/// Errors building a strategy factory.
#[derive(Debug)]
pub enum FactoryError {
    /// No strategy of that name.
    Unknown(String),
    /// The parameters do not fit the strategy.
    Params(String),
}

impl std::fmt::Display for FactoryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FactoryError::Unknown(n) => write!(f, "unknown strategy {n:?} (built-in: {})", NAMES.join(", ")),
            FactoryError::Params(e) => write!(f, "strategy parameters: {e}"),
        }
    }
}

impl std::error::Error for FactoryError {}

/// A factory for the named strategy with its default parameters.
pub fn factory(name: &str) -> Result<Box<dyn StrategyFactory>, FactoryError> {
    build(name, None::<serde::de::value::UnitDeserializer<serde::de::value::Error>>)
}

/// A factory for the named strategy with parameters deserialized from `params` (e.g. the
/// `[strategy]` table of the config file, minus its `name` key).
pub fn factory_with<'de, D>(name: &str, params: D) -> Result<Box<dyn StrategyFactory>, FactoryError>
where
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    build(name, Some(params))
}

/// The effective parameters of a built-in strategy, defaults filled in: what a run records.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Params {
    /// `sma_cross`.
    SmaCross(sma_cross::SmaCrossParams),
    /// `orb`.
    Orb(orb::OrbParams),
}

impl Params {
    /// A factory for these parameters.
    pub fn factory(&self) -> Box<dyn StrategyFactory> {
        match self {
            Params::SmaCross(p) => Box::new(sma_cross::SmaCrossFactory(p.clone())),
            Params::Orb(p) => Box::new(orb::OrbFactory(p.clone())),
        }
    }
}

/// The named strategy's parameters: `params` deserialized (or the defaults when `None`), then
/// validated.
pub fn params<'de, D>(name: &str, params: Option<D>) -> Result<Params, FactoryError>
where
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    fn load<'de, T: serde::Deserialize<'de> + Default, D>(p: Option<D>) -> Result<T, FactoryError>
    where
        D: serde::Deserializer<'de>,
        D::Error: std::fmt::Display,
    {
        match p {
            None => Ok(T::default()),
            Some(d) => T::deserialize(d).map_err(|e| FactoryError::Params(e.to_string())),
        }
    }
    match name {
        "sma_cross" => {
            let p: sma_cross::SmaCrossParams = load(params)?;
            p.validate().map_err(FactoryError::Params)?;
            Ok(Params::SmaCross(p))
        }
        "orb" => {
            let p: orb::OrbParams = load(params)?;
            p.validate().map_err(FactoryError::Params)?;
            Ok(Params::Orb(p))
        }
        other => Err(FactoryError::Unknown(other.to_string())),
    }
}

fn build<'de, D>(name: &str, p: Option<D>) -> Result<Box<dyn StrategyFactory>, FactoryError>
where
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    Ok(params(name, p)?.factory())
}
