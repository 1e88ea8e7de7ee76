//! Private macros shared by the enum modules.

/// Declares a C-style protocol enum with one entry per line:
/// `Variant = value => "C_NAME",`.
///
/// Generates the enum (`#[repr($repr)]`), `ALL`, `name()`, `raw()`,
/// `from_raw()`, `TryFrom<$repr>` (rejecting unknown values with
/// [`UnknownValue`](crate::UnknownValue)), `From<Enum> for $repr` and a
/// `Display` that prints the C name.
macro_rules! abi_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident : $repr:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $cname:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr($repr)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant = $value, )+
        }

        impl $name {
            /// Every variant, in ascending value order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The C name without its prefix, for logs (e.g. `"OPENACK"`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $cname,)+
                }
            }

            /// The raw value as it appears on the wire or in the ioctl structs.
            pub const fn raw(self) -> $repr {
                self as $repr
            }

            /// The variant with raw value `value`, if there is one.
            pub const fn from_raw(value: $repr) -> Option<Self> {
                match value {
                    $($value => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl TryFrom<$repr> for $name {
            type Error = $crate::UnknownValue;

            fn try_from(value: $repr) -> core::result::Result<Self, $crate::UnknownValue> {
                Self::from_raw(value).ok_or($crate::UnknownValue {
                    ty: stringify!($name),
                    value: i64::from(value),
                })
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> $repr {
                value.raw()
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// Test helper: checks `ALL`, `raw`, `TryFrom` round trips, rejection of
/// the first values outside the range, and that names are unique.
#[cfg(test)]
macro_rules! check_abi_enum {
    ($name:ident : $repr:ident, $expected:expr, reject: [$($bad:expr),* $(,)?]) => {{
        let expected: &[($name, $repr, &str)] = $expected;
        assert_eq!($name::ALL.len(), expected.len(), "variant count of {}", stringify!($name));
        for (i, &(v, raw, name)) in expected.iter().enumerate() {
            assert_eq!($name::ALL[i], v);
            assert_eq!(v.raw(), raw, "{v:?}");
            assert_eq!($repr::from(v), raw);
            assert_eq!(v.name(), name);
            assert_eq!(v.to_string(), name);
            assert_eq!($name::try_from(raw), Ok(v));
        }
        let mut names: Vec<&str> = expected.iter().map(|e| e.2).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), expected.len(), "duplicate names");
        for bad in [$($bad),*] {
            let err = $name::try_from(bad).unwrap_err();
            assert_eq!(err.ty, stringify!($name));
            assert_eq!(err.value, i64::from(bad));
            assert_eq!($name::from_raw(bad), None);
        }
    }};
}
