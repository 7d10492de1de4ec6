//! Batches of examples of different lengths as rectangular tensors: every
//! row padded to the longest of its batch (the reference pads every example
//! to max_seq_length; the extra columns would only be masked out).

use tch::{Device, Tensor};

/// `rows` as one `[rows, longest]` tensor on `device`, each padded with `fill`.
pub fn padded(rows: &[&[i64]], fill: i64, device: Device) -> Tensor {
    let len = rows.iter().map(|r| r.len()).max().unwrap_or(1);
    let mut flat = Vec::with_capacity(rows.len() * len);
    for r in rows {
        flat.extend_from_slice(r);
        flat.extend(std::iter::repeat_n(fill, len - r.len()));
    }
    Tensor::from_slice(&flat)
        .reshape([rows.len() as i64, len as i64])
        .to_device(device)
}

/// The attention mask of [`padded`]`(rows, ..)`: 1 over each row's own
/// positions, 0 over its padding.
pub fn mask(rows: &[&[i64]], device: Device) -> Tensor {
    let ones: Vec<Vec<i64>> = rows.iter().map(|r| vec![1; r.len()]).collect();
    let ones: Vec<&[i64]> = ones.iter().map(Vec::as_slice).collect();
    padded(&ones, 0, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_padded_to_the_longest_and_masked() {
        let rows: [&[i64]; 3] = [&[5, 6], &[7, 8, 9], &[]];
        let t = padded(&rows, -1, Device::Cpu);
        assert_eq!(t.size(), [3, 3]);
        assert_eq!(
            Vec::<i64>::try_from(t.reshape([-1])).unwrap(),
            [5, 6, -1, 7, 8, 9, -1, -1, -1]
        );
        let m = mask(&rows, Device::Cpu);
        assert_eq!(
            Vec::<i64>::try_from(m.reshape([-1])).unwrap(),
            [1, 1, 0, 1, 1, 1, 0, 0, 0]
        );
    }
}
