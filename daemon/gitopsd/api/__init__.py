"""The HTTP API of `gitopsd serve`: routes, bearer tokens and GitHub webhooks over `Control`."""
