"""The development set (questions.jsonl), the committed baselines, and the scripts that tuned the
defaults on them; run a script from the repository root as `python -m eval.tune`,
`python -m eval.followups`."""
