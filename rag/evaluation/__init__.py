"""Evaluation, one idea per module:

- questions: the development set, evidence quotes located in the clean text, qrels and runs;
- metrics: trec_eval's measures by name (nDCG@10 and friends) and their means;
- dev: each retriever scored on the development set, and its report;
- beir: BEIR datasets, their cached throwaway index, document-level scores;
- answers: the abstention study and calibration, and answers scored per mode and question type;
- baselines: the committed figures a run is checked against, written and checked;
- runs: saved runs and TREC files; stats: paired significance tests; compare: tables of
  significant differences; tables: the one markdown-table helper;
- abstention: the abstention score's precision/coverage curve; report: the HTML report (the only
  module that imports matplotlib, and only when a report is asked for);
- workflow: what `rag eval` does, composed for the CLI.
"""
