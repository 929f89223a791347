"""Comparing evaluation runs: saved runs and TREC files (runs), paired significance tests (stats),
tables of significant differences (compare), the abstention curve (abstention) and the HTML report
(report, the only module that imports matplotlib, and only when a report is asked for)."""
