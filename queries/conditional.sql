-- @description For one finding A, P(B | A) and lift for every other finding B, most likely first.
-- @param finding FINDING = Effusion
SELECT label_a, label_b, n_a, n_ab,
       round(p_b_given_a, 4) AS p_b_given_a, round(lift, 3) AS lift
FROM cooccurrence
WHERE label_a = $finding
ORDER BY p_b_given_a DESC, label_b;
