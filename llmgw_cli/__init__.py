"""The `llmgw` command line and the embedded supervisor (`llmgw up`).

The only package that imports the gateway, the workers and metering together: it stands above
them. `llmgw/` below holds what every process shares.
"""
