"""The reconciler: the providers' own usage and cost reports read on a schedule (reports), kept in
ClickHouse (rows), compared with what llmgw metered (queries) and alerted on (service)."""
