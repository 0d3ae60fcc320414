"""The web dashboard (SPEC 6.1): server-rendered pages over the daemon's `Control`.

An edge beside `gitopsd.api`: it uses the API's tokens (`api.auth`) and request rules
(`api.guards`, applied by the API app's middleware to every route it serves), and `Control`
for everything it shows or does. Only the server wiring (`gitopsd.cli.serve`) imports it.
"""
