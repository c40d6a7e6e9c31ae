//! Credentials: secrets never printed, not by `Debug`, `Display`, nor any error about a bad file.

use feeds::credentials::{Credentials, CredentialsError, Origin, Secret};
use std::path::{Path, PathBuf};

const KEY_ID: &str = "PKTESTKEYID0000001";
const SECRET: &str = "sk-TOPSECRET-9f8e7d6c5b4a";
const POLY: &str = "poly-HIDDEN-0a1b2c3d";

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = mode;
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// Fails if any secret appears in `text`.
fn assert_clean(text: &str, what: &str) {
    for s in [KEY_ID, SECRET, POLY, "TOPSECRET", "HIDDEN"] {
        assert!(!text.contains(s), "{what} leaks {s:?}: {text}");
    }
}

fn good_file(dir: &Path) -> PathBuf {
    let p = dir.join("credentials.toml");
    let text = format!(
        "# ringtape credentials\nAPCA_API_KEY_ID = \"{KEY_ID}\"\nAPCA_API_SECRET_KEY = '{SECRET}'  # literal\n\n\
         POLYGON_API_KEY = \"{POLY}\"\n"
    );
    write(&p, &text, 0o600);
    p
}

#[test]
fn a_0600_file_loads_and_nothing_prints_a_secret() {
    let d = tempfile::tempdir().unwrap();
    let p = good_file(d.path());
    let c = Credentials::load_with(Some(&p), &no_env).unwrap();
    assert_eq!(c.origin, Origin::File(p.clone()));
    let a = c.alpaca().unwrap();
    assert_eq!((a.key_id.expose(), a.secret_key.expose()), (KEY_ID, SECRET));
    assert_eq!(c.polygon().unwrap().expose(), POLY);
    for (what, text) in [
        ("Debug", format!("{c:?}")),
        ("pretty Debug", format!("{c:#?}")),
        ("AlpacaKeys", format!("{a:?} {:?} {} {}", a.key_id, a.key_id, a.secret_key)),
        ("Polygon key", format!("{} {:?}", c.polygon().unwrap(), c.polygon().unwrap())),
        ("Secret", format!("{} {:?} {:>20}", Secret::new(SECRET), Secret::new(SECRET), Secret::new(SECRET))),
    ] {
        assert_clean(&text, what);
        assert!(text.contains("***"), "{what}: {text}");
    }
    // A stricter mode (read-only for the owner) is fine too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(Credentials::from_file(&p).is_ok());
    }
}

#[cfg(unix)]
#[test]
fn a_group_or_world_readable_file_is_refused_with_the_fix() {
    let d = tempfile::tempdir().unwrap();
    let p = good_file(d.path());
    for mode in [0o644, 0o640, 0o604, 0o660, 0o620] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = Credentials::load_with(Some(&p), &no_env).unwrap_err();
        assert!(matches!(e, CredentialsError::Permissions { .. }), "{mode:o}: {e:?}");
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(msg.contains(&p.display().to_string()), "names the file: {msg}");
        assert!(msg.contains(&format!("chmod 600 {}", p.display())), "gives the fix: {msg}");
        assert!(msg.contains(&format!("{mode:04o}")), "says the mode: {msg}");
        assert_clean(&msg, "permission error");
        assert_clean(&format!("{e:?}"), "permission error (Debug)");
    }
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("nope.toml");
    let e = Credentials::load_with(Some(&p), &no_env).unwrap_err();
    assert!(matches!(e, CredentialsError::NotFound { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&p.display().to_string()) && msg.contains("no such credentials file"), "{msg}");
    assert!(!msg.contains('\n'));
    // A directory is not a credentials file.
    assert!(matches!(Credentials::from_file(d.path()), Err(CredentialsError::NotAFile { .. })));
}

#[test]
fn a_malformed_file_never_quotes_the_secret_in_its_error() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.toml");
    for (text, needle) in [
        (format!("{SECRET}\n"), ":1: expected KEY = \"value\""),
        (format!("APCA_API_KEY_ID = \"{KEY_ID}\"\n{SECRET} = \"{POLY}\"\n"), ":2: unknown key"),
        (format!("APCA_API_SECRET_KEY = {SECRET}\n"), ":1: APCA_API_SECRET_KEY: the value must be a quoted string"),
        (format!("APCA_API_SECRET_KEY = \"{SECRET}\n"), "unterminated string"),
        (format!("APCA_API_SECRET_KEY = \"{SECRET}\" {POLY}\n"), "unexpected text after the string"),
        (
            format!("APCA_API_SECRET_KEY = \"{SECRET}\"\nAPCA_API_SECRET_KEY = \"{SECRET}\"\n"),
            ":2: APCA_API_SECRET_KEY is given twice",
        ),
        (format!("[alpaca]\nsecret = \"{SECRET}\"\n"), ":1: tables are not used"),
        (format!("APCA_API_SECRET_KEY = \"\"\"{SECRET}\"\"\"\n"), "multi-line strings are not supported"),
        (format!("APCA_API_SECRET_KEY = \"{SECRET}\\q\"\n"), "unknown escape"),
        ("POLYGON_API_KEY = ''\n".to_string(), "POLYGON_API_KEY is empty"),
    ] {
        write(&p, &text, 0o600);
        let e = Credentials::load_with(Some(&p), &no_env).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(needle), "{needle:?} not in {msg}");
        assert!(msg.starts_with(&p.display().to_string()), "names the file: {msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert_clean(&msg, "syntax error");
        assert_clean(&format!("{e:?}"), "syntax error (Debug)");
    }
}

#[test]
fn the_default_file_is_used_when_the_environment_sets_nothing() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().to_path_buf();
    let dir = home.join(".config").join("ringtape");
    std::fs::create_dir_all(&dir).unwrap();
    let env = |name: &str| (name == "HOME").then(|| home.display().to_string());
    // No file yet: nothing, and asking for a key says how to provide it (naming the default file).
    let c = Credentials::load_with(None, &env).unwrap();
    assert_eq!(c.origin, Origin::Nowhere);
    let msg = c.alpaca().unwrap_err().to_string();
    let default = dir.join("credentials.toml");
    assert!(msg.contains("set APCA_API_KEY_ID and APCA_API_SECRET_KEY"), "{msg}");
    assert!(msg.contains(&default.display().to_string()), "{msg}");
    // The default file, mode checked there too.
    good_file(&dir);
    let c = Credentials::load_with(None, &env).unwrap();
    assert_eq!(c.origin, Origin::File(default.clone()));
    assert_eq!(c.polygon().unwrap().expose(), POLY);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&default, std::fs::Permissions::from_mode(0o644)).unwrap();
        let msg = Credentials::load_with(None, &env).unwrap_err().to_string();
        assert!(msg.contains("chmod 600"), "{msg}");
        assert_clean(&msg, "default file error");
    }
    // The environment, when it sets any of the variables, is used alone.
    let env2 = |name: &str| match name {
        "HOME" => Some(home.display().to_string()),
        "POLYGON_API_KEY" => Some("from-env".to_string()),
        _ => None,
    };
    let c = Credentials::load_with(None, &env2).unwrap();
    assert_eq!(c.origin, Origin::Environment);
    assert_eq!(c.polygon().unwrap().expose(), "from-env");
    let msg = c.alpaca().unwrap_err().to_string();
    assert!(msg.contains("no Alpaca credentials") && msg.contains("read from: environment"), "{msg}");
    assert_clean(&format!("{c:?} {msg}"), "env credentials");
}
