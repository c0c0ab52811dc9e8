"""Metrics and the access log, in one place: counted cheaply where things happen, exported here.

`tallies` holds plain counters that any layer may bump (stdlib only, no I/O);
`metrics` turns them into Prometheus metrics; `middleware` wraps the whole ASGI app with
request ids, the access log and the HTTP counters.
"""
