//! Four-character codes that name services (spec §2.1, §5.2).
//!
//! A fourcc is a `u32` whose most significant byte is the first character
//! (`VCHIQ_MAKE_FOURCC`). On the little-endian wire the bytes of `"KHRN"`
//! therefore appear as `N R H K`; use [`FourCc::bytes`] for the characters
//! in reading order.

use core::fmt;
use core::str::FromStr;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A service fourcc, e.g. `FourCc::new(b"KHRN")`.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    IntoBytes,
    FromBytes,
    Immutable,
    KnownLayout,
)]
#[repr(transparent)]
pub struct FourCc(pub u32);

/// Why a string is not a fourcc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FourCcParseError {
    /// The string holds a character other than printable ASCII or space.
    #[error("character {ch:?} is not printable ASCII")]
    Char {
        /// The offending character.
        ch: char,
    },
    /// The string is not exactly four characters long.
    #[error("expected exactly 4 characters, got {chars}")]
    Length {
        /// Number of characters in the string.
        chars: usize,
    },
}

macro_rules! named_fourccs {
    ($( $(#[$doc:meta])* $name:ident = $bytes:literal; )+) => {
        impl FourCc {
            $( $(#[$doc])* pub const $name: FourCc = FourCc::new($bytes); )+

            /// Every named fourcc of this module.
            pub const NAMED: &'static [FourCc] = &[$(Self::$name),+];
        }

        $( $(#[$doc])* pub const $name: FourCc = FourCc::$name; )+
    };
}

named_fourccs! {
    /// `'KHRN'`: Khronos (EGL/GLES) RPC.
    KHRN = b"KHRN";
    /// `'KHHN'`: Khronos high-priority RPC.
    KHHN = b"KHHN";
    /// `'KHAN'`: Khronos asynchronous notifications.
    KHAN = b"KHAN";
    /// `'GCMD'`: general command service (`vcgencmd`).
    GCMD = b"GCMD";
    /// `'DISP'`: dispmanx.
    DISP = b"DISP";
    /// `'UPDH'`: dispmanx update handler.
    UPDH = b"UPDH";
    /// `'TVSV'`: TV service.
    TVSV = b"TVSV";
    /// `'TVNT'`: TV service notifications.
    TVNT = b"TVNT";
    /// `'CECS'`: CEC service.
    CECS = b"CECS";
    /// `'CECN'`: CEC service notifications.
    CECN = b"CECN";
    /// `'echo'`: `vchiq_test` default echo service.
    ECHO = b"echo";
    /// `'func'`: `vchiq_test` functional-test service.
    FUNC = b"func";
    /// `'fun2'`: `vchiq_test` second functional-test service.
    FUN2 = b"fun2";
    /// `'KEEP'`: the driver's keep-alive server for remote use/release.
    KEEP = b"KEEP";
    /// `'VCHI'`: the slot-zero magic (`VCHIQ_MAGIC`), not a service.
    VCHI = b"VCHI";
}

impl FourCc {
    /// The fourcc of four characters; the first goes to the most significant byte.
    pub const fn new(chars: &[u8; 4]) -> Self {
        Self(u32::from_be_bytes(*chars))
    }

    /// The raw value, as carried in OPEN payloads and `ServiceParams`.
    pub const fn as_u32(self) -> u32 {
        self.0
    }

    /// The four characters in reading order (`b"KHRN"`).
    pub const fn bytes(self) -> [u8; 4] {
        self.0.to_be_bytes()
    }
}

impl From<u32> for FourCc {
    fn from(value: u32) -> Self {
        Self(value)
    }
}

impl From<FourCc> for u32 {
    fn from(value: FourCc) -> Self {
        value.0
    }
}

/// Printable ASCII and space; backslash is escaped so that output is unambiguous.
fn is_plain(b: u8) -> bool {
    (b' '..=b'~').contains(&b) && b != b'\\'
}

impl fmt::Display for FourCc {
    /// Prints the characters; other bytes print as `\xNN` and a backslash as `\\`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.bytes() {
            if is_plain(b) {
                write!(f, "{}", char::from(b))?;
            } else if b == b'\\' {
                f.write_str("\\\\")?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCc(\"{self}\")")
    }
}

impl FromStr for FourCc {
    type Err = FourCcParseError;

    /// Parses exactly four printable ASCII characters (space allowed, e.g. `"CMA "`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(ch) = s.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(FourCcParseError::Char { ch });
        }
        let chars: [u8; 4] = s
            .as_bytes()
            .try_into()
            .map_err(|_| FourCcParseError::Length { chars: s.len() })?;
        Ok(Self::new(&chars))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defs::{VCHIQ_MAGIC, make_fourcc};

    #[test]
    fn new_matches_make_fourcc() {
        assert_eq!(FourCc::new(b"KHRN").as_u32(), 0x4B48_524E);
        assert_eq!(
            FourCc::new(b"KHRN").as_u32(),
            make_fourcc(b'K', b'H', b'R', b'N')
        );
        assert_eq!(FourCc::FUNC.0, 0x6675_6E63);
        assert_eq!(FourCc::FUN2.0, 0x6675_6E32);
        assert_eq!(FourCc::ECHO.0, 0x6563_686F);
        assert_eq!(FourCc::VCHI.0, VCHIQ_MAGIC);
        assert_eq!(FourCc::KHRN.bytes(), *b"KHRN");
        assert_eq!(u32::from(FourCc::from(7)), 7);
        // Little-endian wire order is reversed.
        assert_eq!(
            zerocopy::IntoBytes::as_bytes(&FourCc::KHRN),
            &0x4B48_524Eu32.to_ne_bytes()
        );
    }

    #[test]
    fn named_constants() {
        let named: Vec<String> = FourCc::NAMED.iter().map(|f| f.to_string()).collect();
        assert_eq!(
            named,
            [
                "KHRN", "KHHN", "KHAN", "GCMD", "DISP", "UPDH", "TVSV", "TVNT", "CECS", "CECN",
                "echo", "func", "fun2", "KEEP", "VCHI"
            ]
        );
        assert_eq!(KHRN, FourCc::KHRN);
        assert_eq!(ECHO, FourCc::new(b"echo"));
    }

    #[test]
    fn display_and_debug() {
        assert_eq!(FourCc::KHRN.to_string(), "KHRN");
        assert_eq!(format!("{:?}", FourCc::KHRN), "FourCc(\"KHRN\")");
        assert_eq!(FourCc::new(b"CMA ").to_string(), "CMA ");
        assert_eq!(FourCc(0).to_string(), "\\x00\\x00\\x00\\x00");
        assert_eq!(FourCc(0x41FF_5C0A).to_string(), "A\\xff\\\\\\x0a");
        assert_eq!(
            format!("{:?}", FourCc(0x4100_0000)),
            "FourCc(\"A\\x00\\x00\\x00\")"
        );
        // Never panics, whatever the value.
        for v in [u32::MAX, 0x8081_8283, 0x7F7F_7F7F, 0x2020_2020] {
            assert!(!FourCc(v).to_string().is_empty());
        }
    }

    #[test]
    fn parse() {
        assert_eq!("KHRN".parse(), Ok(FourCc::KHRN));
        assert_eq!("echo".parse(), Ok(FourCc::ECHO));
        assert_eq!("CMA ".parse(), Ok(FourCc::new(b"CMA ")));
        for f in FourCc::NAMED {
            assert_eq!(f.to_string().parse(), Ok(*f));
        }
        assert_eq!(
            "KHR".parse::<FourCc>(),
            Err(FourCcParseError::Length { chars: 3 })
        );
        assert_eq!(
            "KHRNX".parse::<FourCc>(),
            Err(FourCcParseError::Length { chars: 5 })
        );
        assert_eq!(
            "".parse::<FourCc>(),
            Err(FourCcParseError::Length { chars: 0 })
        );
        assert_eq!(
            "KHé".parse::<FourCc>(),
            Err(FourCcParseError::Char { ch: 'é' })
        );
        assert_eq!(
            "AB\tC".parse::<FourCc>(),
            Err(FourCcParseError::Char { ch: '\t' })
        );
        assert_eq!(
            "ABC\0".parse::<FourCc>(),
            Err(FourCcParseError::Char { ch: '\0' })
        );
    }
}
