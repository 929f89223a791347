"""Finished studies: a signal or a method tried, measured, and adopted or not. Each module keeps
its script beside its written-down conclusion (README.md, and the NAME.md it writes); run one
from the repository root as `python -m studies.NAME`. What `make bench` measures today is in
bench/."""
