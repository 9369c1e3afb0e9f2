//! HTTP basic authentication (RFC 7617) for the paths of a rule: users and bcrypt hashes from
//! an htpasswd-style file, checked in constant time, with successful checks remembered for a
//! while so that only a client's first request pays for bcrypt. The time bcrypt may take is
//! budgeted: a flood of wrong passwords gets `503` once it has used its share, instead of
//! holding the event loop that serves everyone else.

use crate::http::RequestHead;
use base64::Engine;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// How long a verified `Authorization` value is trusted without running bcrypt again.
pub(crate) const VERIFIED_FOR: Duration = Duration::from_secs(300);
/// Most verified values remembered at once, per realm.
const VERIFIED_MAX: usize = 1024;
/// bcrypt costs above this make a first request block its event loop for long: warned about.
const SLOW_COST: u32 = 12;
/// The share of the time a realm's credential checks may spend in bcrypt, over time.
const BCRYPT_SHARE: f64 = 0.25;
/// The most bcrypt time a realm spends in one burst, after a quiet spell.
const BCRYPT_BURST: Duration = Duration::from_millis(500);

/// What a request's credentials come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The credentials of one of the users.
    Admitted,
    /// None, or not a user's.
    Refused,
    /// Not checked: bcrypt has used its share of the time. Ask again after this many seconds.
    Busy(u64),
}

/// The bcrypt time a realm may still spend, in seconds: a bucket of [`BCRYPT_BURST`] that
/// fills at [`BCRYPT_SHARE`] of the time passing and empties by the time each check took. It
/// may go below zero; once it has run dry, no check runs until it holds a tenth of a burst
/// again, so a flood meets a steady `503` rather than one check let through now and then.
struct Budget {
    seconds: f64,
    at: Instant,
    dry: bool,
}

impl Budget {
    fn new(now: Instant) -> Budget {
        Budget {
            seconds: BCRYPT_BURST.as_secs_f64(),
            at: now,
            dry: false,
        }
    }

    /// `Ok` if a check may run now, or the seconds until one may.
    fn check(&mut self, now: Instant) -> Result<(), u64> {
        if now > self.at {
            let filled = now.duration_since(self.at).as_secs_f64() * BCRYPT_SHARE;
            self.seconds = (self.seconds + filled).min(BCRYPT_BURST.as_secs_f64());
            self.at = now;
        }
        let needed = if self.dry {
            BCRYPT_BURST.as_secs_f64() / 10.0
        } else {
            f64::MIN_POSITIVE
        };
        self.dry = self.seconds < needed;
        if self.dry {
            Err((((needed - self.seconds) / BCRYPT_SHARE).ceil() as u64).max(1))
        } else {
            Ok(())
        }
    }

    fn spend(&mut self, took: Duration) {
        self.seconds -= took.as_secs_f64();
    }
}

/// One protected realm. Cheap to clone: the users and the memory of verified credentials
/// are shared.
#[derive(Clone)]
pub(crate) struct BasicAuth(Arc<Realm>);

struct Realm {
    realm: String,
    file: PathBuf,
    users: Vec<User>,
    /// The `WWW-Authenticate` value.
    challenge: String,
    /// Keys for hashing names and credentials, random per load.
    keys: [RandomState; 2],
    verified: Mutex<HashMap<u128, Instant>>,
    budget: Mutex<Budget>,
}

struct User {
    /// A keyed hash of the name: every name compares in the same time, whatever its length.
    name: u128,
    hash: String,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the hashes.
        f.debug_struct("BasicAuth")
            .field("realm", &self.0.realm)
            .field("users_file", &self.0.file)
            .field("users", &self.0.users.len())
            .finish()
    }
}

impl BasicAuth {
    /// Loads the users of `file` for `realm`. Refuses a file any user of the machine can
    /// read, a line that is not `user:hash`, and any hash that is not bcrypt. Errors name the
    /// key they are about (`realm` or `users`).
    pub(crate) fn load(realm: &str, file: &Path) -> Result<BasicAuth, (&'static str, String)> {
        if realm.is_empty() || realm.contains(['"', '\\']) {
            return Err(("realm", "expected a name without \" or \\".into()));
        }
        super::fields::check_value(realm).map_err(|m| ("realm", m))?;
        let at = |message: String| ("users", format!("{}: {message}", file.display()));
        let metadata = std::fs::metadata(file).map_err(|e| at(format!("cannot read: {e}")))?;
        let mode = metadata.permissions().mode();
        if mode & 0o004 != 0 {
            return Err(at(format!(
                "every user of this machine can read it (mode {:o}); chmod o-r it",
                mode & 0o7777
            )));
        }
        let text = std::fs::read_to_string(file).map_err(|e| at(format!("cannot read: {e}")))?;
        let keys = [RandomState::new(), RandomState::new()];
        let mut users: Vec<User> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let here =
                |message: String| ("users", format!("{}:{}: {message}", file.display(), n + 1));
            let (name, hash) = line
                .split_once(':')
                .filter(|(name, _)| !name.is_empty())
                .ok_or_else(|| here("expected user:hash".into()))?;
            if names.contains(&name) {
                return Err(here(format!("user {name:?} appears twice")));
            }
            let cost = bcrypt_cost(hash).ok_or_else(|| {
                here(format!(
                    "the hash of user {name:?} is not bcrypt ($2y$, $2b$ or $2a$); \
                     create it with `htpasswd -B`"
                ))
            })?;
            if cost > SLOW_COST {
                log::warn!(
                    "{}:{}: bcrypt cost {cost}: the first request of each client will hold its \
                     worker for a long time; {SLOW_COST} or less is advised",
                    file.display(),
                    n + 1
                );
            }
            names.push(name);
            users.push(User {
                name: digest(&keys, name.as_bytes()),
                hash: hash.to_string(),
            });
        }
        if users.is_empty() {
            return Err(at("holds no users".into()));
        }
        Ok(BasicAuth(Arc::new(Realm {
            challenge: format!("Basic realm=\"{realm}\", charset=\"UTF-8\""),
            realm: realm.to_string(),
            file: file.to_path_buf(),
            users,
            keys,
            verified: Mutex::new(HashMap::new()),
            budget: Mutex::new(Budget::new(Instant::now())),
        })))
    }

    /// The realm's name.
    pub(crate) fn realm(&self) -> &str {
        &self.0.realm
    }

    /// The users file.
    pub(crate) fn file(&self) -> &Path {
        &self.0.file
    }

    /// How many users the file holds.
    pub(crate) fn user_count(&self) -> usize {
        self.0.users.len()
    }

    /// The `WWW-Authenticate` value for a 401.
    pub(crate) fn challenge(&self) -> &str {
        &self.0.challenge
    }

    /// Whether the request carries the credentials of one of the users.
    pub(crate) fn admits(&self, head: &RequestHead, now: Instant) -> Verdict {
        let Some(credentials) = head.header("authorization").and_then(basic_credentials) else {
            return Verdict::Refused;
        };
        let key = digest(&self.0.keys, credentials.as_bytes());
        if self.was_verified(key, now) {
            return Verdict::Admitted;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
            return Verdict::Refused;
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return Verdict::Refused;
        };
        if let Err(retry_after) = self.budget().check(now) {
            return Verdict::Busy(retry_after);
        }
        let (name, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let started = Instant::now();
        let verified = self.verify(name, password);
        self.budget().spend(started.elapsed());
        if verified {
            self.remember(key, now);
            Verdict::Admitted
        } else {
            Verdict::Refused
        }
    }

    fn budget(&self) -> std::sync::MutexGuard<'_, Budget> {
        self.0
            .budget
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Compares the name with every user's in the same time, then runs bcrypt once: against
    /// the user's hash, or (for an unknown name) the first user's, so that an unknown name
    /// costs what a wrong password does.
    fn verify(&self, name: &[u8], password: &[u8]) -> bool {
        let wanted = digest(&self.0.keys, name);
        let mut index = 0u32;
        let mut found = subtle::Choice::from(0);
        for (i, user) in self.0.users.iter().enumerate() {
            let same = user.name.to_le_bytes().ct_eq(&wanted.to_le_bytes());
            index.conditional_assign(&(i as u32), same & !found);
            found |= same;
        }
        let hash = &self.0.users[index as usize].hash;
        let matches = bcrypt::verify(password, hash).unwrap_or(false);
        matches && bool::from(found)
    }

    fn was_verified(&self, key: u128, now: Instant) -> bool {
        let verified = self
            .0
            .verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        verified.get(&key).is_some_and(|until| now < *until)
    }

    fn remember(&self, key: u128, now: Instant) {
        let mut verified = self
            .0
            .verified
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if verified.len() >= VERIFIED_MAX {
            verified.retain(|_, until| now < *until);
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(key, now + VERIFIED_FOR);
    }
}

/// The token of an `Authorization: Basic <token>` value.
fn basic_credentials(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("basic")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The cost of a bcrypt hash in one of the accepted versions, or `None`.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let accepted = ["$2y$", "$2b$", "$2a$"].iter().any(|v| hash.starts_with(v));
    let parts: bcrypt::HashParts = hash.parse().ok().filter(|_| accepted)?;
    Some(parts.get_cost())
}

/// 128 bits of keyed SipHash: names and credentials are compared and remembered by it.
fn digest(keys: &[RandomState; 2], bytes: &[u8]) -> u128 {
    (u128::from(keys[0].hash_one(bytes)) << 64) | u128::from(keys[1].hash_one(bytes))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A bcrypt hash of `password` at the lowest cost, so tests stay fast.
    pub(crate) fn quick_hash(password: &str) -> String {
        bcrypt::hash_with_salt(password, 4, [7; 16])
            .expect("hash")
            .format_for_version(bcrypt::Version::TwoY)
    }

    /// Writes `text` as a users file with `mode`.
    pub(crate) fn users_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let path = dir.join("users.htpasswd");
        let mut file = std::fs::File::create(&path).expect("create");
        file.write_all(text.as_bytes()).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    fn request(authorization: Option<&str>) -> RequestHead {
        let line = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        crate::files::test_request("GET", "/private/", &line)
    }

    fn basic(user_password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_password)
        )
    }

    #[test]
    fn users_files_that_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let good = format!("ann:{}\n", quick_hash("pw"));
        // (file text, mode, words in the error or None when accepted)
        let rows: &[(String, u32, Option<&str>)] = &[
            (good.clone(), 0o600, None),
            (
                format!("# staff\n\n{good}bob:{}\n", quick_hash("x")),
                0o640,
                None,
            ),
            (
                good.clone(),
                0o644,
                Some("every user of this machine can read it (mode 644)"),
            ),
            (good.clone(), 0o604, Some("chmod o-r")),
            (
                "ann:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n".into(),
                0o600,
                Some(":1: the hash of user \"ann\" is not bcrypt"),
            ),
            (
                format!("{good}bob:$apr1$abc$defghijklmnopqrstuv\n"),
                0o600,
                Some(":2: the hash of user \"bob\""),
            ),
            ("ann:plaintext\n".into(), 0o600, Some(":1:")),
            (
                format!("{good}{good}"),
                0o600,
                Some(":2: user \"ann\" appears twice"),
            ),
            (
                "just-a-name\n".into(),
                0o600,
                Some(":1: expected user:hash"),
            ),
            ("# nobody\n".into(), 0o600, Some("holds no users")),
        ];
        for (text, mode, error) in rows {
            let path = users_file(dir.path(), text, *mode);
            let got = BasicAuth::load("staff", &path);
            match (got, error) {
                (Ok(_), None) => {}
                (Err((key, message)), Some(words)) => {
                    assert_eq!(key, "users");
                    assert!(message.contains(words), "{message:?} lacks {words:?}");
                    assert!(
                        message.starts_with(&path.display().to_string()),
                        "{message}"
                    );
                    assert!(
                        !message.contains("W6ph5Mm5"),
                        "no hash in errors: {message}"
                    );
                }
                (got, _) => panic!("{text:?} {mode:o}: {got:?}"),
            }
        }
        assert!(BasicAuth::load("a\"b", &users_file(dir.path(), &good, 0o600)).is_err());
    }

    #[test]
    fn credentials_are_checked_and_remembered() {
        let dir = tempfile::tempdir().expect("dir");
        let text = format!(
            "ann:{}\nbob:{}\n",
            quick_hash("ann's secret"),
            quick_hash("b:b")
        );
        let auth = BasicAuth::load("staff", &users_file(dir.path(), &text, 0o600)).expect("load");
        assert_eq!(auth.challenge(), "Basic realm=\"staff\", charset=\"UTF-8\"");
        let now = Instant::now();
        // (Authorization value, admitted)
        let rows: Vec<(Option<String>, bool)> = vec![
            (None, false),
            (Some(basic("ann:ann's secret")), true),
            (Some(basic("bob:b:b")), true),
            (Some(basic("ann:wrong")), false),
            (Some(basic("ann:")), false),
            (Some(basic("carol:ann's secret")), false),
            (Some(basic("ann")), false),
            (Some(basic(":ann's secret")), false),
            (Some("Basic !!!".into()), false),
            (Some("Bearer abc".into()), false),
            (
                Some(basic("ann:ann's secret").replace("Basic", "basic")),
                true,
            ),
        ];
        for (value, admitted) in &rows {
            let head = request(value.as_deref());
            let expected = if *admitted {
                Verdict::Admitted
            } else {
                Verdict::Refused
            };
            assert_eq!(auth.admits(&head, now), expected, "{value:?}");
        }
        let good = request(Some(&basic("ann:ann's secret")));
        let key = digest(
            &auth.0.keys,
            basic_credentials(&basic("ann:ann's secret"))
                .unwrap()
                .as_bytes(),
        );
        assert!(auth.was_verified(key, now), "remembered");
        assert!(
            !auth.was_verified(key, now + VERIFIED_FOR),
            "forgotten in time"
        );
        assert_eq!(
            auth.admits(&good, now + VERIFIED_FOR),
            Verdict::Admitted,
            "and checked again"
        );
        let debug = format!("{auth:?}");
        assert!(
            debug.contains("users: 2") && !debug.contains("$2y$"),
            "{debug}"
        );
    }

    #[test]
    fn bcrypt_gets_its_share_of_the_time_and_no_more() {
        let start = Instant::now();
        let mut budget = Budget::new(start);
        let burst = BCRYPT_BURST.as_secs_f64();
        // A burst may go over by one check; then nothing runs until the debt is paid back
        // at a quarter of the time passing.
        assert_eq!(budget.check(start), Ok(()));
        budget.spend(BCRYPT_BURST + Duration::from_millis(950));
        // 0.95 s of debt and a tenth of a burst (0.05 s) to refill is 4 s at a quarter.
        assert_eq!(budget.check(start), Err(4));
        assert_eq!(budget.check(start + Duration::from_millis(3900)), Err(1));
        assert_eq!(budget.check(start + Duration::from_millis(4100)), Ok(()));
        // Once allowed, checks run until the bucket is dry again.
        budget.spend(Duration::from_millis(80));
        assert_eq!(budget.check(start + Duration::from_millis(4100)), Err(1));
        // A long quiet spell fills the bucket to one burst, not more.
        let later = start + Duration::from_secs(3600);
        assert_eq!(budget.check(later), Ok(()));
        assert!((budget.seconds - burst).abs() < 1e-9, "{}", budget.seconds);
        // Time going backwards (another thread's earlier clock reading) takes nothing.
        assert_eq!(budget.check(start), Ok(()));
        assert!((budget.seconds - burst).abs() < 1e-9);
    }
}
