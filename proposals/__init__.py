"""每月一题 (issue of the month): candidates, scores, choice, reports; and the warning board."""
