//! Inter-reader agreement on a binary finding: Cohen's kappa for two readers and
//! Fleiss' kappa for several. Pure functions over counts.

/// A 2×2 table of two readers' calls on the same items (`a` first, `b` second;
/// "yes" = positive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pairs {
    pub yes_yes: u64,
    pub yes_no: u64,
    pub no_yes: u64,
    pub no_no: u64,
}

impl Pairs {
    /// Counts (a, b) calls.
    #[cfg(test)]
    fn from_calls(calls: impl IntoIterator<Item = (bool, bool)>) -> Self {
        let mut p = Pairs::default();
        for (a, b) in calls {
            match (a, b) {
                (true, true) => p.yes_yes += 1,
                (true, false) => p.yes_no += 1,
                (false, true) => p.no_yes += 1,
                (false, false) => p.no_no += 1,
            }
        }
        p
    }
}

/// Agreement of two readers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agreement {
    /// Items rated by both.
    pub n: u64,
    /// Items `a` called positive.
    pub pos_a: u64,
    /// Items `b` called positive.
    pub pos_b: u64,
    /// Items both called positive.
    pub both: u64,
    /// Observed agreement, in percent (0–100); None when n = 0.
    pub percent: Option<f64>,
    /// Cohen's kappa (p_o − p_e) / (1 − p_e); None when n = 0 or when chance
    /// agreement is 1 (both readers gave one same call to every item: undefined).
    pub kappa: Option<f64>,
}

/// Cohen's kappa from a 2×2 table.
pub fn cohen(p: Pairs) -> Agreement {
    let n = p.yes_yes + p.yes_no + p.no_yes + p.no_no;
    let pos_a = p.yes_yes + p.yes_no;
    let pos_b = p.yes_yes + p.no_yes;
    let mut out = Agreement {
        n,
        pos_a,
        pos_b,
        both: p.yes_yes,
        percent: None,
        kappa: None,
    };
    if n == 0 {
        return out;
    }
    let nf = n as f64;
    let po = (p.yes_yes + p.no_no) as f64 / nf;
    let (a1, b1) = (pos_a as f64 / nf, pos_b as f64 / nf);
    let pe = a1 * b1 + (1.0 - a1) * (1.0 - b1);
    out.percent = Some(100.0 * po);
    if (1.0 - pe).abs() > 1e-12 {
        out.kappa = Some((po - pe) / (1.0 - pe));
    }
    out
}

/// Fleiss' kappa over items each rated by the same number of raters, with any number
/// of categories: `counts[i][j]` = raters putting item i in category j.
///
/// None when there is no item, fewer than two raters per item, the raters per item
/// vary (the textbook statistic assumes a fixed number; we do not substitute a
/// generalisation silently: subset the items to one rater count first), or the
/// expected agreement is 1 (every rating in one category: undefined).
pub fn fleiss_counts(counts: &[Vec<u64>]) -> Option<f64> {
    let first = counts.first()?;
    let n: u64 = first.iter().sum();
    let k = first.len();
    if n < 2
        || counts
            .iter()
            .any(|r| r.len() != k || r.iter().sum::<u64>() != n)
    {
        return None;
    }
    let items = counts.len() as f64;
    let nf = n as f64;
    let mut p_bar = 0.0;
    let mut col = vec![0u64; k];
    for r in counts {
        let sq: f64 = r.iter().map(|&x| (x as f64) * (x as f64)).sum();
        p_bar += (sq - nf) / (nf * (nf - 1.0));
        for (c, &x) in col.iter_mut().zip(r) {
            *c += x;
        }
    }
    p_bar /= items;
    let pe: f64 = col
        .iter()
        .map(|&c| {
            let p = c as f64 / (items * nf);
            p * p
        })
        .sum();
    if (1.0 - pe).abs() <= 1e-12 {
        return None;
    }
    Some((p_bar - pe) / (1.0 - pe))
}

/// Fleiss' kappa for a binary finding: one `(n_pos, n_raters)` per item. Same rules
/// as [`fleiss_counts`] (None when raters vary between items, or `n_pos > n_raters`).
pub fn fleiss(ratings: &[(u64, u64)]) -> Option<f64> {
    if ratings.iter().any(|&(pos, n)| pos > n) {
        return None;
    }
    let counts: Vec<Vec<u64>> = ratings.iter().map(|&(pos, n)| vec![pos, n - pos]).collect();
    fleiss_counts(&counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn cohen_wikipedia_example() {
        // Wikipedia "Cohen's kappa", simple example: 50 applications, both yes 20,
        // A yes/B no 5, A no/B yes 10, both no 15. p_o = 35/50 = 0.7;
        // p_yes = 25/50 · 30/50 = 0.3, p_no = 25/50 · 20/50 = 0.2, p_e = 0.5;
        // kappa = (0.7 − 0.5)/(1 − 0.5) = 0.4.
        let a = cohen(Pairs {
            yes_yes: 20,
            yes_no: 5,
            no_yes: 10,
            no_no: 15,
        });
        assert_eq!((a.n, a.pos_a, a.pos_b, a.both), (50, 25, 30, 20));
        assert!(close(a.percent, 70.0));
        assert!(close(a.kappa, 0.4));
        let calls = [
            (true, true),
            (true, false),
            (false, true),
            (false, false),
            (true, true),
        ];
        assert_eq!(
            Pairs::from_calls(calls),
            Pairs {
                yes_yes: 2,
                yes_no: 1,
                no_yes: 1,
                no_no: 1
            }
        );
    }

    #[test]
    fn cohen_edge_cases() {
        let empty = cohen(Pairs::default());
        assert_eq!((empty.n, empty.percent, empty.kappa), (0, None, None));
        // Both readers say no to everything: agreement 100 %, kappa undefined.
        let all_no = cohen(Pairs {
            no_no: 7,
            ..Default::default()
        });
        assert!(close(all_no.percent, 100.0));
        assert_eq!(all_no.kappa, None);
        // Perfect agreement with both calls used: kappa 1. Total disagreement on a
        // balanced table: p_o = 0, p_e = 0.5, kappa −1.
        assert!(close(
            cohen(Pairs {
                yes_yes: 3,
                no_no: 5,
                ..Default::default()
            })
            .kappa,
            1.0
        ));
        assert!(close(
            cohen(Pairs {
                yes_no: 4,
                no_yes: 4,
                ..Default::default()
            })
            .kappa,
            -1.0
        ));
    }

    #[test]
    fn fleiss_wikipedia_example() {
        // Wikipedia "Fleiss' kappa", worked example: 10 items, 14 raters, 5
        // categories; P̄ = 0.378, P̄e = 0.213, kappa = 0.210 (0.20993 unrounded).
        let t: Vec<Vec<u64>> = [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
        .iter()
        .map(|r| r.to_vec())
        .collect();
        let k = fleiss_counts(&t).unwrap();
        assert!((k - 0.210).abs() < 5e-4, "{k}");
    }

    #[test]
    fn fleiss_binary_by_hand() {
        // 4 items, 3 raters, positives 3, 0, 2, 1. P_i = 1, 1, 1/3, 1/3 → P̄ = 2/3;
        // p_pos = 6/12 = 0.5 → P̄e = 0.5; kappa = (2/3 − 1/2)/(1/2) = 1/3.
        assert!(close(fleiss(&[(3, 3), (0, 3), (2, 3), (1, 3)]), 1.0 / 3.0));
        // Unanimous on every item, both categories used: 1.
        assert!(close(fleiss(&[(3, 3), (0, 3)]), 1.0));
        // Undefined or refused.
        assert_eq!(fleiss(&[]), None);
        assert_eq!(fleiss(&[(0, 3), (0, 3)]), None);
        assert_eq!(fleiss(&[(1, 3), (1, 2)]), None);
        assert_eq!(fleiss(&[(1, 1)]), None);
        assert_eq!(fleiss(&[(4, 3)]), None);
    }
}
