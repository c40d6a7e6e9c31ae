//! API credentials: Alpaca's key id and secret key, Polygon's API key and Databento's API key,
//! from the environment (`APCA_API_KEY_ID`, `APCA_API_SECRET_KEY`, `POLYGON_API_KEY`,
//! `DATABENTO_API_KEY`) or from a credentials file.
//!
//! Rules: a secret is held in a [`Secret`], whose `Debug` and `Display` print `***`; it has no
//! `Serialize`, and [`Secret::expose`] is the one way to read it (for the request that sends it).
//! Errors name files, lines and keys, never a value. A credentials file must not be readable or
//! writable by group or others (mode 0600 or stricter): anything else is refused before it is read,
//! with the `chmod 600` fix in the message.
//!
//! Where they come from ([`Credentials::load`]): a file given explicitly (it must exist); else the
//! environment, when it sets any of the four variables (then it is used alone); else the default
//! file (`$XDG_CONFIG_HOME/ringtape/credentials.toml`, or `~/.config/ringtape/credentials.toml`) if
//! it exists; else none, which is fine until a feed asks for a key ([`Credentials::alpaca`],
//! [`Credentials::polygon`] then say how to provide it).
//!
//! The file uses the variables' names as TOML keys, one basic (`"..."`) or literal (`'...'`)
//! string each, with `#` comments:
//!
//! ```toml
//! APCA_API_KEY_ID = "PK..."
//! APCA_API_SECRET_KEY = "..."
//! POLYGON_API_KEY = "..."
//! DATABENTO_API_KEY = "db-..."
//! ```
//!
//! Only that subset of TOML is read (no tables, no multi-line strings), with a parser of its own:
//! every accepted file is valid TOML meaning the same thing.

use std::path::{Path, PathBuf};

/// Environment variable (and file key) of Alpaca's API key id.
pub const ALPACA_KEY_ID: &str = "APCA_API_KEY_ID";
/// Environment variable (and file key) of Alpaca's API secret key.
pub const ALPACA_SECRET_KEY: &str = "APCA_API_SECRET_KEY";
/// Environment variable (and file key) of Polygon's API key.
pub const POLYGON_API_KEY: &str = "POLYGON_API_KEY";
/// Environment variable (and file key) of Databento's API key (the variable Databento's own
/// clients read).
pub const DATABENTO_API_KEY: &str = "DATABENTO_API_KEY";

/// A secret string. `Debug` and `Display` print `***`; read it with [`Secret::expose`] only where
/// it is sent. Its memory is overwritten when dropped (best effort: copies made by the OS or by
/// the code that sends it are out of reach).
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it (an auth message or header). Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(std::mem::take(&mut self.0));
    }
}

/// Overwrite a string's bytes before freeing it.
fn wipe(s: String) {
    let mut b = s.into_bytes();
    b.iter_mut().for_each(|x| *x = 0);
    std::hint::black_box(&b);
}

/// Where a set of credentials came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Origin {
    /// Nothing was found (no variable set, no file).
    #[default]
    Nowhere,
    /// The environment variables.
    Environment,
    /// This file.
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Nowhere => f.write_str("no credentials found"),
            Origin::Environment => f.write_str("environment"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The credentials of the market-data providers and the broker. Printing it shows which keys are
/// present (as `***`) and where they came from, never a value.
#[derive(Debug, Default)]
pub struct Credentials {
    /// Alpaca API key id (`APCA_API_KEY_ID`).
    pub alpaca_key_id: Option<Secret>,
    /// Alpaca API secret key (`APCA_API_SECRET_KEY`).
    pub alpaca_secret_key: Option<Secret>,
    /// Polygon/Massive API key (`POLYGON_API_KEY`).
    pub polygon_api_key: Option<Secret>,
    /// Databento API key (`DATABENTO_API_KEY`).
    pub databento_api_key: Option<Secret>,
    /// Where they came from.
    pub origin: Origin,
    /// The default file's path (for hints in errors), when it could be worked out.
    pub default_file: Option<PathBuf>,
}

/// Alpaca's key pair, borrowed from [`Credentials`].
#[derive(Debug, Clone, Copy)]
pub struct AlpacaKeys<'a> {
    /// Key id.
    pub key_id: &'a Secret,
    /// Secret key.
    pub secret_key: &'a Secret,
}

/// Why credentials could not be loaded or are not there. Messages are one line and never
/// contain a secret.
#[derive(Debug)]
pub enum CredentialsError {
    /// The credentials file does not exist.
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file is readable or writable by group or others.
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path is not a regular file.
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Reading the file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        err: std::io::Error,
    },
    /// A line of the file is not `KEY = "value"` with a known key.
    Syntax {
        /// The file.
        path: PathBuf,
        /// Line number (1-based).
        line: usize,
        /// What is wrong (never quotes the line).
        what: String,
    },
    /// A provider's key is not set anywhere.
    Missing {
        /// The provider (`Alpaca`, `Polygon`, `Databento`).
        provider: &'static str,
        /// The variables to set.
        vars: &'static str,
        /// The default file, if known.
        file: Option<PathBuf>,
        /// Where the other credentials came from.
        origin: Origin,
    },
}

impl std::fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CredentialsError::NotFound { path } => write!(
                f,
                "{}: no such credentials file (create it with {ALPACA_KEY_ID} = \"...\" lines and run `chmod 600 {}`, \
                 or set the environment variables)",
                path.display(),
                path.display()
            ),
            CredentialsError::Permissions { path, mode } => write!(
                f,
                "{}: credentials file has mode {:04o}, readable or writable by group or others; run `chmod 600 {}`",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
            CredentialsError::NotAFile { path } => {
                write!(f, "{}: credentials path is not a regular file", path.display())
            }
            CredentialsError::Io { path, err } => write!(f, "{}: {err}", path.display()),
            CredentialsError::Syntax { path, line, what } => write!(f, "{}:{line}: {what}", path.display()),
            CredentialsError::Missing { provider, vars, file, origin } => {
                write!(f, "no {provider} credentials: set {vars}")?;
                if let Some(p) = file {
                    write!(f, ", or put them in {} (mode 0600)", p.display())?;
                }
                if *origin != Origin::Nowhere {
                    write!(f, " (credentials were read from: {origin})")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for CredentialsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CredentialsError::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// Reads an environment variable (injected so tests need not change the process environment).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Credentials {
    /// Load from `file` if given, else the environment, else the default file if it exists (see
    /// the module docs). Finding nothing is not an error here.
    pub fn load(file: Option<&Path>) -> Result<Credentials, CredentialsError> {
        Self::load_with(file, &process_env)
    }

    /// [`Credentials::load`] with the environment read through `env`.
    pub fn load_with(file: Option<&Path>, env: EnvLookup<'_>) -> Result<Credentials, CredentialsError> {
        let default_file = Self::default_path(env);
        let mut c = match file {
            Some(p) => Self::from_file(p)?,
            None => {
                let from_env = Self::from_env_with(env);
                if from_env.origin == Origin::Environment {
                    from_env
                } else {
                    match &default_file {
                        Some(p) if std::fs::symlink_metadata(p).is_ok() => Self::from_file(p)?,
                        _ => Credentials::default(),
                    }
                }
            }
        };
        c.default_file = default_file;
        Ok(c)
    }

    /// The four variables from `env` (an empty value counts as unset). `origin` is
    /// [`Origin::Environment`] when at least one is set.
    pub fn from_env_with(env: EnvLookup<'_>) -> Credentials {
        let get = |name: &str| env(name).filter(|v| !v.is_empty()).map(Secret);
        let mut c = Credentials {
            alpaca_key_id: get(ALPACA_KEY_ID),
            alpaca_secret_key: get(ALPACA_SECRET_KEY),
            polygon_api_key: get(POLYGON_API_KEY),
            databento_api_key: get(DATABENTO_API_KEY),
            ..Default::default()
        };
        if c.alpaca_key_id.is_some()
            || c.alpaca_secret_key.is_some()
            || c.polygon_api_key.is_some()
            || c.databento_api_key.is_some()
        {
            c.origin = Origin::Environment;
        }
        c
    }

    /// Read a credentials file. It must exist, be a regular file, and have no permission bits for
    /// group or others (checked on the open file, before reading).
    pub fn from_file(path: &Path) -> Result<Credentials, CredentialsError> {
        let io = |err: std::io::Error| CredentialsError::Io { path: path.into(), err };
        let mut f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CredentialsError::NotFound { path: path.into() });
            }
            Err(e) => return Err(io(e)),
        };
        let meta = f.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(CredentialsError::NotAFile { path: path.into() });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(CredentialsError::Permissions { path: path.into(), mode });
            }
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut f, &mut text).map_err(io)?;
        let r = parse(path, &text);
        wipe(text);
        r
    }

    /// The default credentials file: `$XDG_CONFIG_HOME/ringtape/credentials.toml` when that is an
    /// absolute path, else `$HOME/.config/ringtape/credentials.toml`.
    pub fn default_path(env: EnvLookup<'_>) -> Option<PathBuf> {
        let base = env("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| env("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("ringtape").join("credentials.toml"))
    }

    /// Alpaca's key pair, or an error saying how to provide it.
    pub fn alpaca(&self) -> Result<AlpacaKeys<'_>, CredentialsError> {
        match (&self.alpaca_key_id, &self.alpaca_secret_key) {
            (Some(key_id), Some(secret_key)) => Ok(AlpacaKeys { key_id, secret_key }),
            _ => Err(self.missing("Alpaca", "APCA_API_KEY_ID and APCA_API_SECRET_KEY")),
        }
    }

    /// Polygon's API key, or an error saying how to provide it.
    pub fn polygon(&self) -> Result<&Secret, CredentialsError> {
        self.polygon_api_key.as_ref().ok_or_else(|| self.missing("Polygon", POLYGON_API_KEY))
    }

    /// Databento's API key, or an error saying how to provide it.
    pub fn databento(&self) -> Result<&Secret, CredentialsError> {
        self.databento_api_key.as_ref().ok_or_else(|| self.missing("Databento", DATABENTO_API_KEY))
    }

    fn missing(&self, provider: &'static str, vars: &'static str) -> CredentialsError {
        CredentialsError::Missing { provider, vars, file: self.default_file.clone(), origin: self.origin.clone() }
    }
}

/// Parse the file's TOML subset. Errors never quote the line: a misplaced secret must not leak.
fn parse(path: &Path, text: &str) -> Result<Credentials, CredentialsError> {
    let mut c = Credentials { origin: Origin::File(path.into()), ..Default::default() };
    for (n, raw) in text.lines().enumerate() {
        let err = |what: String| CredentialsError::Syntax { path: path.into(), line: n + 1, what };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            return Err(err("tables are not used: put the keys at the top level".into()));
        }
        let Some((key, rest)) = line.split_once('=') else {
            return Err(err(format!("expected KEY = \"value\" with KEY one of {}", known())));
        };
        let key = key.trim();
        let key = key.strip_prefix('"').and_then(|k| k.strip_suffix('"')).unwrap_or(key);
        let (name, slot) = match key {
            ALPACA_KEY_ID => (ALPACA_KEY_ID, &mut c.alpaca_key_id),
            ALPACA_SECRET_KEY => (ALPACA_SECRET_KEY, &mut c.alpaca_secret_key),
            POLYGON_API_KEY => (POLYGON_API_KEY, &mut c.polygon_api_key),
            DATABENTO_API_KEY => (DATABENTO_API_KEY, &mut c.databento_api_key),
            _ => return Err(err(format!("unknown key (expected one of {})", known()))),
        };
        if slot.is_some() {
            return Err(err(format!("{name} is given twice")));
        }
        let value = string_value(rest.trim()).map_err(|what| err(format!("{name}: {what}")))?;
        if value.is_empty() {
            return Err(err(format!("{name} is empty")));
        }
        *slot = Some(Secret(value));
    }
    Ok(c)
}

fn known() -> String {
    format!("{ALPACA_KEY_ID}, {ALPACA_SECRET_KEY}, {POLYGON_API_KEY}, {DATABENTO_API_KEY}")
}

/// A TOML basic or literal string followed by nothing but an optional comment.
fn string_value(s: &str) -> Result<String, &'static str> {
    if s.starts_with("\"\"\"") || s.starts_with("'''") {
        return Err("multi-line strings are not supported");
    }
    let mut chars = s.chars();
    let quote = match chars.next() {
        Some(q @ ('"' | '\'')) => q,
        _ => return Err("the value must be a quoted string"),
    };
    let mut out = String::new();
    loop {
        let Some(ch) = chars.next() else { return Err("unterminated string") };
        match ch {
            c if c == quote => break,
            '\\' if quote == '"' => {
                let e = chars.next().ok_or("unterminated string")?;
                match e {
                    'b' => out.push('\u{8}'),
                    't' => out.push('\t'),
                    'n' => out.push('\n'),
                    'f' => out.push('\u{c}'),
                    'r' => out.push('\r'),
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'u' | 'U' => {
                        let n = if e == 'u' { 4 } else { 8 };
                        let hex: String = chars.by_ref().take(n).collect();
                        let ch = (hex.len() == n)
                            .then(|| u32::from_str_radix(&hex, 16).ok())
                            .flatten()
                            .and_then(char::from_u32)
                            .ok_or("bad unicode escape")?;
                        out.push(ch);
                    }
                    _ => return Err("unknown escape in the string"),
                }
            }
            c if c.is_control() && c != '\t' => return Err("control character in the string"),
            c => out.push(c),
        }
    }
    let rest = chars.as_str().trim_start();
    if !(rest.is_empty() || rest.starts_with('#')) {
        return Err("unexpected text after the string");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn strings_parse_as_toml_does() {
        assert_eq!(string_value(r#""a\"b\\c\u0041" # note"#).unwrap(), "a\"b\\cA");
        assert_eq!(string_value(r"'C:\raw'").unwrap(), r"C:\raw");
        for bad in ["abc", "\"open", "'''x'''", "\"x\" y", "\"\\q\"", "\"\\u12\""] {
            assert!(string_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_environment_wins_and_empty_counts_as_unset() {
        let env = env_of(&[("APCA_API_KEY_ID", "kid"), ("APCA_API_SECRET_KEY", "sk"), ("POLYGON_API_KEY", "")]);
        let c = Credentials::load_with(None, &env).unwrap();
        assert_eq!(c.origin, Origin::Environment);
        let a = c.alpaca().unwrap();
        assert_eq!((a.key_id.expose(), a.secret_key.expose()), ("kid", "sk"));
        let e = c.polygon().unwrap_err().to_string();
        assert!(e.starts_with("no Polygon credentials: set POLYGON_API_KEY"), "{e}");
        let e = c.databento().unwrap_err().to_string();
        assert!(e.starts_with("no Databento credentials: set DATABENTO_API_KEY"), "{e}");
        // Databento's variable alone is the environment too.
        let c = Credentials::load_with(None, &env_of(&[("DATABENTO_API_KEY", "db-k")])).unwrap();
        assert_eq!((&c.origin, c.databento().unwrap().expose()), (&Origin::Environment, "db-k"));
    }

    #[test]
    fn default_path_follows_xdg_then_home() {
        let p = Credentials::default_path(&env_of(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])).unwrap();
        assert_eq!(p, PathBuf::from("/x/ringtape/credentials.toml"));
        let p = Credentials::default_path(&env_of(&[("XDG_CONFIG_HOME", "rel"), ("HOME", "/h")])).unwrap();
        assert_eq!(p, PathBuf::from("/h/.config/ringtape/credentials.toml"));
        assert_eq!(Credentials::default_path(&env_of(&[])), None);
    }
}
