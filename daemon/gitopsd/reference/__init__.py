"""The reference documents of docs/reference/ and the schemas of schemas/, made from the code.

Each document is a function of what the code declares (the manifest models, the click
commands, the OpenAPI document, the metrics registry), so `make docs` rewrites them and a test
fails when a committed copy differs: the reference cannot drift from the program. Nothing here
runs in the daemon or the commands; it sits above every layer because it reads them all.
"""
