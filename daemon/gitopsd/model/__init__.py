"""Pure data: the manifests users write and the values derived from them."""
