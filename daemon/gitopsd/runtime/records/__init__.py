"""Records shared by the groups above: audit events, verified revisions, redaction, reports."""
