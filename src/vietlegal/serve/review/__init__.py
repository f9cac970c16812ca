"""The reviewers' page (docs/review.md): its routes, the verdicts it posts, and the citation check it shows."""
