//! The least-squares fit behind the attribution: a packet's transit is
//! modelled as `baseline + Σ_hop held_node · expected_hop`, and the fit finds
//! the baseline and, for each node, the share `held` of its required delay
//! that it really holds (1 for an honest node, 0 for one that skips mixing).
//!
//! The unknowns are few (one per node on the sampled paths, plus the
//! baseline), so the normal equations are formed and inverted directly
//! (Gauss–Jordan with partial pivoting). The inverse also gives each
//! estimate's standard error (heteroscedasticity-consistent, see [`fit`]).
//!
//! Every node starts from a weak prior "held = 1" (ridge regression towards
//! honesty), worth about one packet of mean delay: it keeps the system
//! solvable when a node appears in few samples, and means a node the data
//! says little about is not blamed on noise.

/// One observation: the hops' `(column, expected delay)` pairs, columns
/// counted from 1 (column 0 is the baseline), and the measured transit.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Row {
    /// `(node column ≥ 1, expected delay in ms)` for each hop.
    pub hops: Vec<(usize, f64)>,
    /// Measured transit in ms.
    pub transit_ms: f64,
}

/// The fitted model.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Fit {
    /// Column 0: the baseline (ms); column `j ≥ 1`: node `j`'s held share.
    pub coef: Vec<f64>,
    /// Standard error of each coefficient.
    pub stderr: Vec<f64>,
    /// Standard deviation of the residuals (ms).
    pub residual_sd: f64,
}

impl Fit {
    /// The transit the model predicts for `row`.
    pub(crate) fn predict(&self, row: &Row) -> f64 {
        self.coef[0] + row.hops.iter().map(|&(j, e)| self.coef[j] * e).sum::<f64>()
    }
}

/// Fits `rows` over `columns` coefficients (baseline + nodes), with the
/// prior "held = 1" of weight `prior` (in ms², i.e. one pseudo-packet whose
/// expected delay is `sqrt(prior)`). `None` if the system is singular or
/// there are no more rows than coefficients.
pub(crate) fn fit(rows: &[&Row], columns: usize, prior: f64) -> Option<Fit> {
    if rows.len() <= columns || columns == 0 {
        return None;
    }
    let mut normal = vec![vec![0.0; columns]; columns];
    let mut rhs = vec![0.0; columns];
    for row in rows {
        // x = [1, e at each hop's column]; accumulate xᵀx and xᵀy.
        let x: Vec<(usize, f64)> = std::iter::once((0, 1.0))
            .chain(row.hops.iter().copied())
            .collect();
        for &(i, xi) in &x {
            rhs[i] += xi * row.transit_ms;
            for &(j, xj) in &x {
                normal[i][j] += xi * xj;
            }
        }
    }
    for j in 1..columns {
        normal[j][j] += prior;
        rhs[j] += prior;
    }
    let inverse = invert(normal)?;
    let coef: Vec<f64> = inverse
        .iter()
        .map(|r| r.iter().zip(&rhs).map(|(a, b)| a * b).sum())
        .collect();
    let mut fitted = Fit {
        coef,
        stderr: Vec::new(),
        residual_sd: 0.0,
    };
    // Heteroscedasticity-consistent (HC1, "sandwich") errors: Var(θ) =
    // A⁻¹ (Σ r² x xᵀ) A⁻¹ · n/(n−p). A node that skips some packets but not
    // others makes the noise grow with the delay; the classical formula
    // would then claim a precision the data does not have.
    let mut sum_sq = 0.0;
    let mut var = vec![0.0; columns];
    for row in rows {
        let r2 = (row.transit_ms - fitted.predict(row)).powi(2);
        sum_sq += r2;
        for (j, v) in var.iter_mut().enumerate() {
            // (A⁻¹ x)_j, with x sparse.
            let u = inverse[j][0]
                + row
                    .hops
                    .iter()
                    .map(|&(k, e)| inverse[j][k] * e)
                    .sum::<f64>();
            *v += r2 * u * u;
        }
    }
    let dof = (rows.len() - columns) as f64;
    let hc1 = rows.len() as f64 / dof;
    fitted.residual_sd = (sum_sq / dof).sqrt();
    fitted.stderr = var.iter().map(|v| (v * hc1).sqrt()).collect();
    Some(fitted)
}

/// The inverse of a square matrix, or `None` if it is (numerically) singular.
pub(crate) fn invert(mut a: Vec<Vec<f64>>) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let scale = a
        .iter()
        .flatten()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    let mut inv: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect();
    for col in 0..n {
        let pivot = (col..n).max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))?;
        // Relative threshold: a pivot this small means the columns are
        // (nearly) dependent, and the estimates would be noise.
        if a[pivot][col].abs() <= scale * 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let p = a[col][col];
        for j in 0..n {
            a[col][j] /= p;
            inv[col][j] /= p;
        }
        for r in 0..n {
            if r == col {
                continue;
            }
            let factor = a[r][col];
            if factor == 0.0 {
                continue;
            }
            for j in 0..n {
                a[r][j] -= factor * a[col][j];
                inv[r][j] -= factor * inv[col][j];
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverts_and_refuses_singular_matrices() {
        let inv = invert(vec![vec![4.0, 7.0], vec![2.0, 6.0]]).unwrap();
        let want = [[0.6, -0.7], [-0.2, 0.4]];
        for (r, w) in inv.iter().zip(want) {
            for (a, b) in r.iter().zip(w) {
                assert!((a - b).abs() < 1e-12, "{inv:?}");
            }
        }
        assert_eq!(invert(vec![vec![1.0, 2.0], vec![2.0, 4.0]]), None);
        // A zero first pivot needs a row swap, not a failure.
        assert!(invert(vec![vec![0.0, 1.0], vec![1.0, 0.0]]).is_some());
    }

    #[test]
    fn recovers_an_exact_linear_model() {
        // transit = 3 + 1.0·e1 + 0.25·e2, exactly.
        let rows: Vec<Row> = (0..20)
            .map(|i| {
                let (e1, e2) = (f64::from(i), f64::from((i * 7) % 11));
                Row {
                    hops: vec![(1, e1), (2, e2)],
                    transit_ms: 3.0 + e1 + 0.25 * e2,
                }
            })
            .collect();
        let refs: Vec<&Row> = rows.iter().collect();
        let fitted = fit(&refs, 3, 0.0).unwrap();
        for (got, want) in fitted.coef.iter().zip([3.0, 1.0, 0.25]) {
            assert!((got - want).abs() < 1e-9, "{fitted:?}");
        }
        assert!(fitted.residual_sd < 1e-9);
    }

    #[test]
    fn the_prior_decides_a_node_without_data() {
        // Node 2 never appears: without the prior the system is singular.
        let rows: Vec<Row> = (0..10)
            .map(|i| Row {
                hops: vec![(1, f64::from(i))],
                transit_ms: 1.0 + f64::from(i),
            })
            .collect();
        let refs: Vec<&Row> = rows.iter().collect();
        assert_eq!(fit(&refs, 3, 0.0), None);
        let fitted = fit(&refs, 3, 1.0).unwrap();
        assert!((fitted.coef[2] - 1.0).abs() < 1e-9);
        assert!(fit(&refs[..2], 3, 1.0).is_none(), "too few rows");
    }
}
