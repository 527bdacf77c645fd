//! `--redis`: the URL of the Redis that cluster mode shares events through, parsed once at
//! start; neither `Debug` nor `Display` ever shows its password.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// A parsed `--redis` URL: `redis://[user:password@]host[:port][/db]`. Neither `Debug` nor
/// `Display` shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or IP address (a name is looked up at each connection attempt).
    pub host: String,
    /// 6379 when not given.
    pub port: u16,
    /// Empty: AUTH with the password alone (or no AUTH without one).
    pub user: String,
    pub(crate) password: String,
    /// Database number for SELECT; 0 when not given.
    pub db: u32,
}

/// Why a `--redis` URL was refused.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UrlError {
    Scheme,
    Tls,
    Host,
    Port,
    Db,
    /// `user@` without `:password`, or a bad `%` escape.
    UserInfo,
    /// A query or fragment.
    Extra,
}

impl UrlError {
    pub fn message(self) -> &'static str {
        match self {
            UrlError::Scheme => "redis URL must look like redis://[user:password@]host:port[/db]",
            UrlError::Tls => "rediss:// (TLS) is not supported; use redis://",
            UrlError::Host => "redis URL has no host",
            UrlError::Port => "redis URL port must be a number from 1 to 65535",
            UrlError::Db => "redis URL database must be a number, as in redis://host:6379/0",
            UrlError::UserInfo => "redis URL credentials must be user:password@ or :password@, %-escaped",
            UrlError::Extra => "redis URL must not have a query or fragment",
        }
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for UrlError {}

impl RedisUrl {
    /// Parses `redis://[user:password@]host[:port][/db]` (user and password %-escaped).
    pub fn parse(url: &str) -> Result<RedisUrl, UrlError> {
        let rest = match url.strip_prefix("redis://") {
            Some(rest) => rest,
            None if url.starts_with("rediss://") => return Err(UrlError::Tls),
            None => return Err(UrlError::Scheme),
        };
        // The last `@` ends the credentials: a raw `@` or `/` in a password then still works.
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        if hostpart.contains(['?', '#']) {
            return Err(UrlError::Extra);
        }
        let (authority, path) = match hostpart.find('/') {
            Some(slash) => (&hostpart[..slash], &hostpart[slash + 1..]),
            None => (hostpart, ""),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(UrlError::Host)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or(UrlError::Port)?)),
            }
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::Host);
        }
        let port = match port {
            None => 6379,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().ok().filter(|&p| p > 0).ok_or(UrlError::Port)?
            }
            Some(_) => return Err(UrlError::Port),
        };
        let db = match path {
            "" => 0,
            p if p.bytes().all(|b| b.is_ascii_digit()) => p.parse().map_err(|_| UrlError::Db)?,
            _ => return Err(UrlError::Db),
        };
        let (user, password) = match userinfo {
            None => (String::new(), String::new()),
            Some(info) => {
                let (user, password) = info.split_once(':').ok_or(UrlError::UserInfo)?;
                (percent_decode(user)?, percent_decode(password)?)
            }
        };
        Ok(RedisUrl { host: host.to_string(), port, user, password, db })
    }

    /// Whether a password was given (it is never shown).
    pub fn has_password(&self) -> bool {
        !self.password.is_empty()
    }

    /// Where to connect. A host name is looked up here (blocking), at every connection attempt,
    /// so a Redis that moved is found again; an IP address is not looked up at all.
    pub(crate) fn resolve(&self) -> io::Result<SocketAddr> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        (self.host.as_str(), self.port).to_socket_addrs()?.next().ok_or_else(|| io::ErrorKind::NotFound.into())
    }
}

fn percent_decode(s: &str) -> Result<String, UrlError> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hex = |b: Option<u8>| b.and_then(|b| (b as char).to_digit(16)).ok_or(UrlError::UserInfo);
        let (hi, lo) = (hex(bytes.next())?, hex(bytes.next())?);
        out.push((hi * 16 + lo) as u8);
    }
    String::from_utf8(out).map_err(|_| UrlError::UserInfo)
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("redis://")?;
        if !self.user.is_empty() || self.has_password() {
            write!(f, "{}:***@", self.user)?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}/{}", self.host, self.port, self.db)
        } else {
            write!(f, "{}:{}/{}", self.host, self.port, self.db)
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &if self.has_password() { "***" } else { "" })
            .field("db", &self.db)
            .finish()
    }
}
