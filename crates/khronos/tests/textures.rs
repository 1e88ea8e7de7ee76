//! The generated hello_triangle textures.

use khronos::hello_triangle::{TEXTURE_BYTES, textures};

fn mean(img: &[u8]) -> [f64; 3] {
    let mut sum = [0u64; 3];
    for px in img.chunks_exact(3) {
        for c in 0..3 {
            sum[c] += u64::from(px[c]);
        }
    }
    let n = (img.len() / 3) as f64;
    sum.map(|s| s as f64 / n)
}

#[test]
fn textures_are_deterministic_and_distinct() {
    let a = textures();
    let b = textures();
    assert_eq!(a, b, "generation is deterministic");
    let means: Vec<[f64; 3]> = a.iter().map(|img| mean(img)).collect();
    for (i, img) in a.iter().enumerate() {
        assert_eq!(img.len(), TEXTURE_BYTES);
        assert_eq!(img.len(), 49152);
        let m = means[i];
        assert!(
            m.iter().all(|&c| (20.0..235.0).contains(&c)),
            "texture {i} mean {m:?}"
        );
    }
    for i in 0..3 {
        for j in i + 1..3 {
            let d: f64 = (0..3)
                .map(|c| (means[i][c] - means[j][c]).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(
                d > 15.0,
                "textures {i} and {j} have similar means {:?} {:?}",
                means[i],
                means[j]
            );
        }
    }
    // Sky at the top of the façade and the tiles, peach at the top of the mosque.
    let top = |img: &[u8]| [img[3 * 64], img[3 * 64 + 1], img[3 * 64 + 2]];
    let [r, g, b] = top(&a[0]);
    assert!(b > r && b > g);
    let [r, _, b] = top(&a[1]);
    assert!(r > 230 && r > b);
    let [r, _, b] = top(&a[2]);
    assert!(b > 200 && r < 40);
}
