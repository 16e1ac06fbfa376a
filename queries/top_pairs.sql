-- @description The most frequent finding pairs (each unordered pair once) with conditional probabilities, Jaccard and lift.
-- @param top INT 1.. = 20
-- @param min_n INT 0.. = 1
SELECT label_a, label_b, n_ab, n_a, n_b,
       round(p_b_given_a, 4) AS p_b_given_a, round(jaccard, 4) AS jaccard, round(lift, 3) AS lift
FROM (
    SELECT *, ROW_NUMBER() OVER (ORDER BY n_ab DESC, label_a, label_b) AS rank
    FROM cooccurrence
    WHERE label_a < label_b AND n_ab >= $min_n
) AS ranked
WHERE rank <= $top
ORDER BY rank;
