"""The 产学研 matching domain: records, ranking, explanations, pairings, targets."""
