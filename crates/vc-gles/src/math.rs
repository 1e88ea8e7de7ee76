//! 4×4 matrices and 4-vectors with OpenGL conventions.
//!
//! [`Mat4`] is column-major like `glLoadMatrixf` (element `(row, col)` lives at
//! `m[col * 4 + row]`) and acts on column vectors. The builders ([`Mat4::frustum`],
//! [`Mat4::rotate`], …) return exactly the matrices of the OpenGL ES 1.1 specification
//! (§2.10.2); the context right-multiplies them onto the current matrix, as GL does.

use std::ops::Mul;

/// A 4-component vector (a homogeneous point or a colour).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Vec4 {
    /// First component.
    pub x: f32,
    /// Second component.
    pub y: f32,
    /// Third component.
    pub z: f32,
    /// Fourth component (homogeneous w).
    pub w: f32,
}

impl Vec4 {
    /// Builds a vector from its components.
    pub const fn new(x: f32, y: f32, z: f32, w: f32) -> Self {
        Self { x, y, z, w }
    }

    /// The components as an array `[x, y, z, w]`.
    pub const fn to_array(self) -> [f32; 4] {
        [self.x, self.y, self.z, self.w]
    }
}

/// A column-major 4×4 `f32` matrix (`m[col * 4 + row]`), as `glLoadMatrixf` takes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mat4 {
    /// The 16 elements, column by column.
    pub m: [f32; 16],
}

impl Default for Mat4 {
    fn default() -> Self {
        Self::IDENTITY
    }
}

/// `(sin, cos)` of an angle in degrees; exact for multiples of 90° so that the
/// quarter turns hello_triangle uses produce exact 0/±1 matrices.
fn sin_cos_deg(deg: f32) -> (f32, f32) {
    let d = f64::from(deg).rem_euclid(360.0);
    if d == 0.0 {
        (0.0, 1.0)
    } else if d == 90.0 {
        (1.0, 0.0)
    } else if d == 180.0 {
        (0.0, -1.0)
    } else if d == 270.0 {
        (-1.0, 0.0)
    } else {
        let r = d.to_radians();
        (r.sin() as f32, r.cos() as f32)
    }
}

impl Mat4 {
    /// The identity matrix.
    pub const IDENTITY: Mat4 = Mat4 {
        m: [
            1.0, 0.0, 0.0, 0.0, //
            0.0, 1.0, 0.0, 0.0, //
            0.0, 0.0, 1.0, 0.0, //
            0.0, 0.0, 0.0, 1.0,
        ],
    };

    /// The identity matrix.
    pub const fn identity() -> Self {
        Self::IDENTITY
    }

    /// Wraps 16 column-major elements.
    pub const fn from_cols_array(m: &[f32; 16]) -> Self {
        Self { m: *m }
    }

    /// Builds a matrix from rows as they are written on paper (`rows[r][c]`).
    pub fn from_rows(rows: [[f32; 4]; 4]) -> Self {
        let mut m = [0.0; 16];
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                m[c * 4 + r] = *v;
            }
        }
        Self { m }
    }

    /// Element at `row`, `col` (both `0..4`; out-of-range indices wrap modulo 4).
    pub fn get(&self, row: usize, col: usize) -> f32 {
        self.m[(col % 4) * 4 + (row % 4)]
    }

    /// The matrix product `self · rhs` (apply `rhs` first, then `self`).
    #[allow(clippy::should_implement_trait)] // `Mul` is implemented too; this is the named form.
    pub fn mul(self, rhs: &Mat4) -> Mat4 {
        let a = &self.m;
        let b = &rhs.m;
        let mut out = [0.0f32; 16];
        for c in 0..4 {
            for r in 0..4 {
                let mut s = 0.0f32;
                for k in 0..4 {
                    s += a[k * 4 + r] * b[c * 4 + k];
                }
                out[c * 4 + r] = s;
            }
        }
        Mat4 { m: out }
    }

    /// `self · v` for a column vector `v`.
    pub fn mul_vec4(&self, v: Vec4) -> Vec4 {
        let m = &self.m;
        Vec4 {
            x: m[0] * v.x + m[4] * v.y + m[8] * v.z + m[12] * v.w,
            y: m[1] * v.x + m[5] * v.y + m[9] * v.z + m[13] * v.w,
            z: m[2] * v.x + m[6] * v.y + m[10] * v.z + m[14] * v.w,
            w: m[3] * v.x + m[7] * v.y + m[11] * v.z + m[15] * v.w,
        }
    }

    /// The perspective matrix of `glFrustumf(l, r, b, t, n, f)`.
    ///
    /// No validation here: [`crate::Gles11::frustumf`] rejects `n <= 0`, `f <= 0`,
    /// `l == r`, `b == t` and `n == f` with `GL_INVALID_VALUE` before calling this.
    pub fn frustum(l: f32, r: f32, b: f32, t: f32, n: f32, f: f32) -> Mat4 {
        Mat4::from_rows([
            [2.0 * n / (r - l), 0.0, (r + l) / (r - l), 0.0],
            [0.0, 2.0 * n / (t - b), (t + b) / (t - b), 0.0],
            [0.0, 0.0, -(f + n) / (f - n), -2.0 * f * n / (f - n)],
            [0.0, 0.0, -1.0, 0.0],
        ])
    }

    /// The parallel projection of `glOrthof(l, r, b, t, n, f)`.
    pub fn ortho(l: f32, r: f32, b: f32, t: f32, n: f32, f: f32) -> Mat4 {
        Mat4::from_rows([
            [2.0 / (r - l), 0.0, 0.0, -(r + l) / (r - l)],
            [0.0, 2.0 / (t - b), 0.0, -(t + b) / (t - b)],
            [0.0, 0.0, -2.0 / (f - n), -(f + n) / (f - n)],
            [0.0, 0.0, 0.0, 1.0],
        ])
    }

    /// The translation of `glTranslatef(x, y, z)`.
    pub fn translate(x: f32, y: f32, z: f32) -> Mat4 {
        Mat4::from_rows([
            [1.0, 0.0, 0.0, x],
            [0.0, 1.0, 0.0, y],
            [0.0, 0.0, 1.0, z],
            [0.0, 0.0, 0.0, 1.0],
        ])
    }

    /// The scale of `glScalef(x, y, z)`.
    pub fn scale(x: f32, y: f32, z: f32) -> Mat4 {
        Mat4::from_rows([
            [x, 0.0, 0.0, 0.0],
            [0.0, y, 0.0, 0.0],
            [0.0, 0.0, z, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ])
    }

    /// The rotation of `glRotatef(angle_deg, x, y, z)`: counter-clockwise by `angle_deg`
    /// degrees about the axis `(x, y, z)`, which is normalised first as GL does. A zero
    /// (or non-finite) axis gives the identity.
    pub fn rotate(angle_deg: f32, x: f32, y: f32, z: f32) -> Mat4 {
        let len = (x * x + y * y + z * z).sqrt();
        if len.is_nan() || len == 0.0 || !len.is_finite() {
            return Mat4::IDENTITY;
        }
        let (x, y, z) = (x / len, y / len, z / len);
        let (s, c) = sin_cos_deg(angle_deg);
        let k = 1.0 - c;
        Mat4::from_rows([
            [x * x * k + c, x * y * k - z * s, x * z * k + y * s, 0.0],
            [y * x * k + z * s, y * y * k + c, y * z * k - x * s, 0.0],
            [x * z * k - y * s, y * z * k + x * s, z * z * k + c, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ])
    }

    /// True when every element is exactly the identity's.
    pub fn is_identity(&self) -> bool {
        self.m == Self::IDENTITY.m
    }
}

impl Mul for Mat4 {
    type Output = Mat4;
    fn mul(self, rhs: Mat4) -> Mat4 {
        Mat4::mul(self, &rhs)
    }
}

impl Mul<Vec4> for Mat4 {
    type Output = Vec4;
    fn mul(self, rhs: Vec4) -> Vec4 {
        self.mul_vec4(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &Mat4, b: &Mat4) -> bool {
        a.m.iter()
            .zip(b.m.iter())
            .all(|(x, y)| (x - y).abs() < 1e-5)
    }

    #[test]
    fn identity_is_neutral() {
        let t = Mat4::translate(1.0, 2.0, 3.0);
        assert_eq!(t.mul(&Mat4::identity()), t);
        assert_eq!(Mat4::identity() * t, t);
    }

    #[test]
    fn translate_is_column_major() {
        let t = Mat4::translate(1.0, 2.0, 3.0);
        // glLoadMatrixf layout: translation in elements 12, 13, 14.
        assert_eq!(&t.m[12..16], &[1.0, 2.0, 3.0, 1.0]);
        let p = t * Vec4::new(1.0, 1.0, 1.0, 1.0);
        assert_eq!(p, Vec4::new(2.0, 3.0, 4.0, 1.0));
    }

    #[test]
    fn frustum_hand_computed() {
        // glFrustumf(-1, 1, -1, 1, 1, 3): 2n/(r-l)=1, 2n/(t-b)=1, -(f+n)/(f-n)=-2, -2fn/(f-n)=-3.
        let f = Mat4::frustum(-1.0, 1.0, -1.0, 1.0, 1.0, 3.0);
        let want = Mat4::from_rows([
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, -2.0, -3.0],
            [0.0, 0.0, -1.0, 0.0],
        ]);
        assert!(close(&f, &want), "{f:?}");
        // Asymmetric: l=0, r=2, b=-1, t=3, n=2, f=6.
        let f = Mat4::frustum(0.0, 2.0, -1.0, 3.0, 2.0, 6.0);
        let want = Mat4::from_rows([
            [2.0, 0.0, 1.0, 0.0],
            [0.0, 1.0, 0.5, 0.0],
            [0.0, 0.0, -2.0, -6.0],
            [0.0, 0.0, -1.0, 0.0],
        ]);
        assert!(close(&f, &want), "{f:?}");
        // The near plane maps to z_ndc = -1, the far plane to +1.
        let near = f * Vec4::new(0.0, 0.0, -2.0, 1.0);
        assert!((near.z / near.w + 1.0).abs() < 1e-6);
        let far = f * Vec4::new(0.0, 0.0, -6.0, 1.0);
        assert!((far.z / far.w - 1.0).abs() < 1e-6);
    }

    #[test]
    fn ortho_hand_computed() {
        let o = Mat4::ortho(0.0, 4.0, 0.0, 2.0, -1.0, 1.0);
        let want = Mat4::from_rows([
            [0.5, 0.0, 0.0, -1.0],
            [0.0, 1.0, 0.0, -1.0],
            [0.0, 0.0, -1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        assert!(close(&o, &want));
    }

    #[test]
    fn rotations_about_each_axis() {
        let (s, c) = (30f32.to_radians().sin(), 30f32.to_radians().cos());
        let rx = Mat4::rotate(30.0, 1.0, 0.0, 0.0);
        let want = Mat4::from_rows([
            [1.0, 0.0, 0.0, 0.0],
            [0.0, c, -s, 0.0],
            [0.0, s, c, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        assert!(close(&rx, &want));
        let ry = Mat4::rotate(30.0, 0.0, 2.0, 0.0); // axis is normalised
        let want = Mat4::from_rows([
            [c, 0.0, s, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [-s, 0.0, c, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        assert!(close(&ry, &want));
        let rz = Mat4::rotate(30.0, 0.0, 0.0, 1.0);
        let want = Mat4::from_rows([
            [c, -s, 0.0, 0.0],
            [s, c, 0.0, 0.0],
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        assert!(close(&rz, &want));
        // Counter-clockwise: +x rotates to +y about z.
        let p = Mat4::rotate(90.0, 0.0, 0.0, 1.0) * Vec4::new(1.0, 0.0, 0.0, 1.0);
        assert_eq!(p, Vec4::new(0.0, 1.0, 0.0, 1.0));
        // Quarter turns are exact; zero axis is the identity.
        assert_eq!(Mat4::rotate(270.0, 0.0, 0.0, 1.0).m[0], 0.0);
        assert_eq!(Mat4::rotate(360.0, 1.0, 0.0, 0.0), Mat4::IDENTITY);
        assert_eq!(Mat4::rotate(45.0, 0.0, 0.0, 0.0), Mat4::IDENTITY);
        // Arbitrary axis: rotating 120° about (1,1,1) permutes the axes x→y→z.
        let p = Mat4::rotate(120.0, 1.0, 1.0, 1.0) * Vec4::new(1.0, 0.0, 0.0, 1.0);
        assert!((p.x).abs() < 1e-6 && (p.y - 1.0).abs() < 1e-6 && p.z.abs() < 1e-6);
    }

    #[test]
    fn right_multiplication_order() {
        // GL: glTranslatef then glRotatef gives M = T · R, so a point is rotated first.
        let m = Mat4::translate(10.0, 0.0, 0.0).mul(&Mat4::rotate(90.0, 0.0, 0.0, 1.0));
        let p = m * Vec4::new(1.0, 0.0, 0.0, 1.0);
        assert!((p.x - 10.0).abs() < 1e-6 && (p.y - 1.0).abs() < 1e-6);
        // Hand-computed T·S: scale then translate.
        let m = Mat4::translate(1.0, 2.0, 3.0) * Mat4::scale(2.0, 3.0, 4.0);
        let want = Mat4::from_rows([
            [2.0, 0.0, 0.0, 1.0],
            [0.0, 3.0, 0.0, 2.0],
            [0.0, 0.0, 4.0, 3.0],
            [0.0, 0.0, 0.0, 1.0],
        ]);
        assert_eq!(m, want);
    }
}
